"""`electra export` writes a model card per folder, from what the run recorded, and is all or nothing."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import test_hf
import torch
from safetensors.torch import load_file
from test_hf import electra_model, tiny_cfg, write_run

from electra.checkpoint import save_checkpoint
from electra.errors import UserError
from electra.flops import train_flops
from electra.hf import export

vocab = test_hf.vocab  # the module-scoped fixture: a small vocabulary file


def card_metadata(folder: Path) -> dict:
    """The YAML block as the Hugging Face Hub reads it (huggingface_hub's own parser), when installed."""
    hub = pytest.importorskip("huggingface_hub")
    return hub.ModelCard.load(folder / "README.md").data.to_dict()


def test_export_writes_cards_from_the_run_record(vocab, tmp_path):
    model = electra_model(tiny_cfg(), vocab)
    run = write_run(tmp_path / "run", model, vocab, step=7)
    # the checkpoint at step 7 again, now with what the training loop records in its state
    save_checkpoint(run, 7, model.weights(), torch.optim.SGD(model.parameters(), lr=0.1),
                    {"tokens_seen": 7 * 128 * 64, "elapsed": 5400.0}, keep_last=1)
    records = [{"step": 5, "train/loss": 9.0}, {"step": 5, "eval/disc_auc": 0.61, "eval/gen_acc": 0.25},
               {"step": 7, "eval/disc_auc": 0.734, "eval/gen_acc": 0.3125}, {"step": 9, "eval/disc_auc": 0.99}]
    (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n{\"step\": 1")  # a torn last line
    export(run, tmp_path / "out")

    disc = (tmp_path / "out" / "discriminator" / "README.md").read_text()
    gen = (tmp_path / "out" / "generator" / "README.md").read_text()
    assert card_metadata(tmp_path / "out" / "generator")["pipeline_tag"] == "fill-mask"
    meta = card_metadata(tmp_path / "out" / "discriminator")
    assert meta["library_name"] == "transformers" and "electra" in meta["tags"] and "pipeline_tag" not in meta
    assert "discriminator AUC | 0.7340" in disc and "0.99" not in disc  # the evaluation at the exported step
    assert "generator accuracy (masked slots) | 0.3125" in disc and "7 steps, 57,344 tokens, 1.50 h" in disc
    assert "50 x RTD" in disc and "15% of tokens" in disc and "ElectraForMaskedLM.from_pretrained" in gen
    assert f"| compute | {train_flops(model.cfg, steps=7):.2e} FLOPs" in disc  # spec 1.9, for the steps trained
    for sub, text in (("discriminator", disc), ("generator", gen)):  # the parameters actually written
        n = sum(t.numel() for t in load_file(str(tmp_path / "out" / sub / "model.safetensors")).values())
        assert f"{n / 1e6:.2f} M parameters" in text


def test_card_states_the_schedule_that_trained_the_checkpoint(vocab, tmp_path):
    """A resume rewrites config.json with its overrides (a longer --max-steps, another --lr) before it saves
    anything, or while an earlier checkpoint folder is kept: the card of a checkpoint states the schedule in its
    own state.json, the one its steps were trained with."""
    import dataclasses

    model = electra_model(tiny_cfg(), vocab)
    run = write_run(tmp_path / "run", model, vocab, step=7)
    trained = dataclasses.replace(model.cfg, train=dataclasses.replace(model.cfg.train, lr=3e-3, warmup_steps=2,
                                                                       max_steps=7))
    save_checkpoint(run, 7, model.weights(), torch.optim.SGD(model.parameters(), lr=0.1),
                    {"config": trained.to_dict()}, keep_last=1)
    later = dataclasses.replace(trained, train=dataclasses.replace(trained.train, lr=5e-4, warmup_steps=0,
                                                                   max_steps=20))
    (run / "config.json").write_text(later.to_json())  # what `--max-steps 20 --lr 5e-4 ...` writes on resuming
    export(run, tmp_path / "out")
    disc = (tmp_path / "out" / "discriminator" / "README.md").read_text()
    assert "peak lr 0.003, 2 warmup steps, decay to 0 at step 7 |" in disc and "0.0005" not in disc


def test_card_without_a_run_record(vocab, tmp_path):
    """A checkpoint folder copied alone (no metrics.jsonl, no state facts) still gets a card, minus those."""
    run = write_run(tmp_path / "run", electra_model(tiny_cfg(objective="mlm"), vocab), vocab, step=3)
    export(run, tmp_path / "out")
    text = (tmp_path / "out" / "generator" / "README.md").read_text()
    assert "masked-language model of an MLM" in text and "3 steps |" in text and "Held-out" not in text


def test_failed_export_leaves_the_output_as_it_was(vocab, tmp_path):
    model = electra_model(tiny_cfg(), vocab)
    good = write_run(tmp_path / "good", model, vocab)
    export(good, tmp_path / "out")
    before = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}

    weights = {k: v for k, v in model.weights().items() if not k.startswith("generator.blocks.0.")}
    broken = tmp_path / "broken"  # the discriminator converts; the generator, written second, fails
    write_run(broken, model, vocab)
    save_checkpoint(broken, 7, weights, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), {}, 1)
    with pytest.raises(UserError, match="generator"):
        export(broken, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(UserError, match="generator"):
        export(broken, tmp_path / "out", overwrite=True)
    after = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no staging folder left behind
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".")]  # beside OUT or inside it


def _other_filesystem(tmp_path: Path) -> Path | None:
    """A writable folder on another filesystem than tmp_path (tmpfs /dev/shm on Linux), or None."""
    for root in (Path("/dev/shm"), Path("/run/user") / str(os.getuid())):
        try:
            if root.is_dir() and os.stat(root).st_dev != os.stat(tmp_path).st_dev and os.access(root, os.W_OK):
                return root
        except OSError:
            continue
    return None


def test_export_into_a_symlink_to_another_filesystem(vocab, tmp_path):
    """OUT a symlink to a folder on another filesystem: staged where the files will live, not beside the link
    (a rename across filesystems fails with EXDEV, which left a traceback and half an export)."""
    import shutil
    import tempfile

    root = _other_filesystem(tmp_path)
    if root is None:
        pytest.skip("no writable folder on another filesystem")
    real = Path(tempfile.mkdtemp(dir=root))
    try:
        run = write_run(tmp_path / "run", electra_model(tiny_cfg(), vocab), vocab)
        (tmp_path / "out").symlink_to(real)
        result = export(run, tmp_path / "out")
        assert [f for f, _ in result.folders] == [tmp_path / "out" / "discriminator", tmp_path / "out" / "generator"]
        assert sorted(os.listdir(real)) == ["discriminator", "generator"]
        assert (real / "discriminator" / "README.md").is_file()
        assert sorted(os.listdir(tmp_path)) == ["out", "run"]  # nothing staged beside the link
    finally:
        shutil.rmtree(real, ignore_errors=True)


def test_export_into_an_existing_folder_whose_parent_is_read_only(vocab, tmp_path):
    """OUT exists and is writable, its parent is not: the export works (nothing is created beside OUT), and a
    new OUT there is a one-line error, not a PermissionError traceback."""
    import shutil

    from data_helpers import electra_argv, electra_env

    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores file modes: drop the capability that lets it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    run = write_run(tmp_path / "run", electra_model(tiny_cfg(), vocab), vocab)
    parent = tmp_path / "ro"
    (parent / "out").mkdir(parents=True)
    parent.chmod(0o555)
    try:
        probe = subprocess.run([*prefix, "mkdir", str(parent / "probe")], capture_output=True, check=False)
        if probe.returncode == 0:  # the folder mode is not enforced here (or setpriv could not drop the capability)
            pytest.skip("cannot make a folder read-only for this user")
        ok = subprocess.run([*prefix, *electra_argv("export", str(run), str(parent / "out"))], capture_output=True,
                            text=True, env=electra_env(), timeout=300, check=False)
        assert ok.returncode == 0, ok.stderr
        assert sorted(os.listdir(parent / "out")) == ["discriminator", "generator"]
        new = subprocess.run([*prefix, *electra_argv("export", str(run), str(parent / "new"))], capture_output=True,
                             text=True, env=electra_env(), timeout=300, check=False)
        assert new.returncode == 2 and "Traceback" not in new.stderr, new.stderr
        assert "cannot write the export into" in new.stderr and len(new.stderr.strip().splitlines()) == 1
        assert sorted(os.listdir(parent)) == ["out"]
    finally:
        parent.chmod(0o755)


def test_a_killed_exports_staging_folder_does_not_block_the_next(vocab, tmp_path):
    run = write_run(tmp_path / "run", electra_model(tiny_cfg(), vocab), vocab)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a PID that no longer runs
    (out / f".export-{dead.pid}" / "discriminator").mkdir(parents=True)  # what a SIGKILLed export leaves
    export(run, out)
    assert sorted(os.listdir(out)) == ["discriminator", "generator"]

    # a killed export into a new OUT leaves `.OUT.export-PID` beside it: the next export there clears it, and
    # leaves a live one (this process's PID stands in for an export in progress) and other OUTs' alone
    fresh = tmp_path / "fresh"
    (tmp_path / f".fresh.export-{dead.pid}" / "generator").mkdir(parents=True)
    live, other = tmp_path / f".fresh.export-{os.getppid()}", tmp_path / f".other.export-{dead.pid}"
    live.mkdir()
    other.mkdir()
    export(run, fresh)
    assert sorted(os.listdir(fresh)) == ["discriminator", "generator"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted([live.name, other.name])


@pytest.mark.parametrize("objective, generator, shown, absent", [
    ("electra", "mlm", ["generator accuracy", "discriminator AUC", "RTD loss"], ["copy gate", "LM accuracy"]),
    ("electra", "uniform", ["discriminator AUC", "RTD loss"], ["generator accuracy", "MLM loss", "[MASK]"]),
    ("mlm", "mlm", ["masked-LM accuracy", "masked-LM loss"], ["discriminator", "RTD", "replaced-token rate"]),
    ("replace_mlm", "mlm", ["discriminator LM accuracy", "discriminator LM loss"], ["AUC", "RTD loss", "precision"]),
    ("all_tokens_mlm", "mlm", ["copy gate AUC", "discriminator LM + copy loss"], ["RTD loss"]),
    ("electric", "mlm", ["noise detector AUC", "NCE loss", "Electric"], ["RTD loss"]),
])
def test_a_card_shows_the_metrics_its_objective_has(vocab, tmp_path, objective, generator, shown, absent):
    """Metrics a run logs as 0 for parts it lacks (no generator, no binary head) are not shown, and each objective's
    second loss is named for what it is; a continued pre-training run names the model it started from."""
    import dataclasses
    cfg = tiny_cfg(objective=objective)
    model = electra_model(dataclasses.replace(cfg, objective=dataclasses.replace(cfg.objective, generator=generator)),
                          vocab)
    run = write_run(tmp_path / "run", model, vocab, step=3)
    save_checkpoint(run, 3, model.weights(), torch.optim.SGD(model.parameters(), lr=0.1),
                    {"config": model.cfg.to_dict(), "init": "/somewhere/hf/released-small"}, keep_last=1)
    keys = ("gen_acc", "mlm_loss", "replaced_rate", "disc_auc", "disc_precision", "disc_recall", "rtd_loss",
            "disc_lm_acc")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3, **{f"eval/{k}": 0.5 for k in keys}}) + "\n")
    export(run, tmp_path / "out")
    card = next((tmp_path / "out").glob("*/README.md")).read_text()
    held_out = card[card.index("Held-out metrics"):]
    assert all(s in card for s in shown) and not any(a in held_out for a in absent), held_out
    assert "| started from | `released-small` (continued pre-training" in card and "/somewhere" not in card


def test_finetuned_cards_name_the_exported_seed_and_what_stayed_behind():
    from electra.config import ModelConfig
    from electra.model_card import finetuned_card

    cfg = ModelConfig(vocab_size=50, hidden_size=16, embedding_size=16, num_layers=1, num_heads=1,
                      intermediate_size=32, max_position_embeddings=16)
    results = {"summary": {"accuracy": {"median": 54.25, "mean": 54.25, "std": 5.3, "n": 2}}, "best_seed": 1,
               "main_metric": "accuracy", "runs": [{"seed": 1, "metrics": {"accuracy": 58.0}},
                                                   {"seed": 2, "metrics": {"accuracy": 50.5}}]}
    meta = {"task": "regress", "head": "regression", "target_range": [10, 20]}
    card = finetuned_card("ElectraModel", cfg, meta, {}, results)
    assert "seed 1's (accuracy 58.00), the best on the dev set" in card
    assert "holds the encoder only: the regression head" in card and "scaled from [10, 20] to [0, 1]" in card
    tagger = finetuned_card("ElectraForTokenClassification", cfg,
                            {"task": "tag", "head": "tagging", "labels": ["O", "S-LOC", "B-PER", "E-PER"]}, {}, {})
    assert "segment 0's embedding is a copy" in tagger and "BIOES" in tagger and "aggregation_strategy" in tagger


def test_card_says_the_schedule_was_fitted_to_a_time_budget_and_whole_words_masked(vocab, tmp_path):
    import dataclasses

    model = electra_model(tiny_cfg(), vocab)
    run = write_run(tmp_path / "run", model, vocab, step=7)
    fitted = dataclasses.replace(model.cfg, train=dataclasses.replace(model.cfg.train, max_steps=7, warmup_steps=2,
                                                                      time_budget=5400.0, lr_schedule="wsd"),
                                 objective=dataclasses.replace(model.cfg.objective, masking="whole_word"))
    save_checkpoint(run, 7, model.weights(), torch.optim.SGD(model.parameters(), lr=0.1),
                    {"config": fitted.to_dict()}, keep_last=1)
    export(run, tmp_path / "out")
    disc = (tmp_path / "out" / "discriminator" / "README.md").read_text()
    assert "2 warmup steps, flat, then over the last 10% decay to 0 at step 7, fitted to a time budget of 1.5 h |" in disc
    assert "| masking | 15% of tokens in whole words, 85% of them shown as [MASK] |" in disc


def test_card_names_span_masking_and_its_lengths(vocab, tmp_path):
    import dataclasses

    model = electra_model(tiny_cfg(), vocab)
    run = write_run(tmp_path / "run", model, vocab, step=3)
    spans = dataclasses.replace(model.cfg, objective=dataclasses.replace(model.cfg.objective, masking="span",
                                                                         span_p=0.25, max_span=6))
    save_checkpoint(run, 3, model.weights(), torch.optim.SGD(model.parameters(), lr=0.1),
                    {"config": spans.to_dict()}, keep_last=1)
    export(run, tmp_path / "out")
    disc = (tmp_path / "out" / "discriminator" / "README.md").read_text()
    assert "| masking | 15% of tokens in spans of whole words (Geo(0.25), at most 6 words), 85% of them" in disc
