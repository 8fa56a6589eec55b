"""Checkpoint folders: saving the same step again replaces it whole, and a run killed in the middle of that
keeps the step's previous copy."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from electra.checkpoint import latest_checkpoint, read_state, read_weights, save_checkpoint
from electra.errors import UserError


def save(run: Path, step: int, value: float, keep_last: int = 3, keep_every: int = 0) -> Path:
    w = {"w": torch.full((3,), value)}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    return save_checkpoint(run, step, w, opt, {"note": value}, keep_last, keep_every)


def test_saving_a_step_again_replaces_it(tmp_path) -> None:
    save(tmp_path, 5, 1.0)
    path = save(tmp_path, 5, 2.0)
    assert latest_checkpoint(tmp_path) == path and read_state(path)["note"] == 2.0
    assert torch.equal(read_weights(path / "model.safetensors")["w"], torch.full((3,), 2.0))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["LATEST", "step_00000005"]


def test_killed_between_the_two_renames_resumes_from_the_previous_copy(tmp_path) -> None:
    path = save(tmp_path, 5, 1.0)
    os.replace(path, path.parent / ".old_step_00000005")  # the moment after the old copy was moved aside
    assert latest_checkpoint(tmp_path) == path and read_state(path)["note"] == 1.0
    save(tmp_path, 6, 3.0)
    for p in list((tmp_path / "checkpoints").glob("step_*")):
        os.rename(p, p.parent / f"gone_{p.name}")
    with pytest.raises(UserError, match="LATEST names step_00000006, which is missing") as e:
        latest_checkpoint(tmp_path)
    assert "\n" not in str(e.value)


def test_a_save_clears_what_killed_saves_left(tmp_path) -> None:
    save(tmp_path, 5, 1.0)
    root = tmp_path / "checkpoints"
    (root / ".tmp_step_00000006").mkdir()  # killed while writing step 6
    (root / ".old_step_00000005").mkdir()  # killed after re-saving step 5, before dropping its old copy
    save(tmp_path, 7, 2.0)
    assert sorted(os.listdir(root)) == ["LATEST", "step_00000005", "step_00000007"]



def test_a_lost_latest_falls_back_to_the_newest_step_folder(tmp_path) -> None:
    assert latest_checkpoint(tmp_path) is None
    save(tmp_path, 2, 1.0)
    newest = save(tmp_path, 3, 2.0)
    (tmp_path / "checkpoints" / "LATEST").unlink()
    assert latest_checkpoint(tmp_path) == newest
    (tmp_path / "checkpoints" / "LATEST").write_text("\n")  # emptied (a full disk, an editor): as if lost
    assert latest_checkpoint(tmp_path) == newest
    (newest / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"model.safetensors is missing; restore it, or use an earlier checkpoint"):
        read_weights(newest / "model.safetensors")


def test_flipped_bytes_fail_the_recorded_checksum(tmp_path) -> None:
    """Bit rot inside the tensor data keeps the file's size and header: only the sha256 saved with the checkpoint
    can tell, and loading names the file instead of training on (or exporting) damaged weights."""
    from electra.checkpoint import checkpoint_weights
    path = save(tmp_path, 4, 1.0)
    assert set(read_state(path)["sha256"]) == {"model.safetensors", "optimizer.safetensors"}
    assert torch.equal(checkpoint_weights(path)["w"], torch.ones(3))
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-4] ^= 0x40  # inside the last float of `w`
    (path / "model.safetensors").write_bytes(bytes(data))
    assert read_weights(path / "model.safetensors")["w"][-1] != 1.0  # safetensors alone loads it
    with pytest.raises(UserError, match="model.safetensors is damaged \\(its bytes do not match the sha256") as e:
        checkpoint_weights(path)
    assert "\n" not in str(e.value)


def test_equal_checkpoints_are_equal_bytes_across_processes(tmp_path) -> None:
    """The same weights, optimizer and state written by separate processes (each with its own hash-map seeds)
    give the same files; two safetensors metadata keys used to come out in either order."""
    import subprocess
    import sys
    code = ("import sys, torch; from pathlib import Path; from electra.checkpoint import save_checkpoint; "
            "w = {f'w{i}': torch.arange(6.0) * i for i in range(8)}; "
            "opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1); "
            "save_checkpoint(Path(sys.argv[1]), 3, w, opt, {'note': 1}, 2)")
    for i in range(4):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"r{i}")], check=True, timeout=120)
    files = [{p.name: p.read_bytes() for p in (tmp_path / f"r{i}" / "checkpoints" / "step_00000003").iterdir()}
             for i in range(4)]
    assert all(f == files[0] for f in files[1:])


def test_milestones_outlive_the_rolling_window(tmp_path) -> None:
    for step in range(100, 1100, 100):  # keep the newest 2, and every 400th step for good
        save(tmp_path, step, float(step), keep_last=2, keep_every=400)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert names == ["step_00000400", "step_00000800", "step_00000900", "step_00001000"]
    save(tmp_path, 1100, 0.0, keep_last=2)  # a resume without keep_every: the window alone
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_00001000", "step_00001100"]


def test_a_folder_of_another_kind_is_named_with_what_to_do(tmp_path) -> None:
    """A model argument that is one of this project's other folders gets told which it is and what takes it."""
    from electra.checkpoint import folder_kind, resolve_checkpoint
    from electra.hf_read import locate
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": {}, "train": {}}')  # a pretrain that has not saved yet
    for model in ("ft/model", "multi/sst2/model", "multi/cola/model"):  # one task's OUT; several tasks' OUT
        (tmp_path / model).mkdir(parents=True)
        (tmp_path / model / "finetune.json").write_text("{}")
    tuned, multi, empty = tmp_path / "ft" / "model", tmp_path / "multi", tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert [folder_kind(p) for p in (run, tuned, tuned.parent, multi, empty)] == [
        "run", "finetuned", "finetuned", "finetuned_tasks", None]
    for path, says in ((run, "has no checkpoint yet"), (tuned.parent, "is a fine-tuned model"),
                       (multi, r"holds the fine-tuned models of several tasks \(.*cola, .*sst2\); pass one"),
                       (tmp_path / "notes.txt", "is a file"), (empty, "is neither an electra run folder")):
        with pytest.raises(UserError, match=says):
            resolve_checkpoint(path)
    with pytest.raises(UserError, match="is an `electra pretrain` run or checkpoint, not a Hugging Face folder"):
        locate(run)  # pretrain --init RUN
