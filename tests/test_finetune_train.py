"""The fine-tuning loop: batch padding, the loss reduction it applies, the smoothed loss it reports and its
stop on a non-finite loss."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from electra.config import ModelConfig
from electra.errors import UserError
from electra.finetune.config import FinetuneConfig
from electra.finetune.heads import IGNORE, FinetuneModel, RegressionHead, TaggingHead, Terms
from electra.finetune.train import LossTracker, collate, train
from electra.model import Encoder

CPU = torch.device("cpu")


def test_collate_pads_every_field_to_the_longest_row() -> None:
    feats = [{"input_ids": [2, 7, 8, 3], "segment_ids": [0, 0, 1, 1], "labels": [IGNORE, 1, 0, IGNORE],
              "allowed": [1, 0, 1, 1], "start": 2, "end": 3, "is_impossible": 0, "example": 0},
             {"input_ids": [2, 9, 3], "segment_ids": [0, 1, 1], "labels": [IGNORE, 2, IGNORE],
              "allowed": [1, 1, 1], "start": 0, "end": 0, "is_impossible": 1, "example": 1}]
    b = collate(feats, pad_id=0)
    assert b["input_ids"].tolist() == [[2, 7, 8, 3], [2, 9, 3, 0]]
    assert b["segment_ids"].tolist() == [[0, 0, 1, 1], [0, 1, 1, 0]]
    assert b["attention_mask"].tolist() == [[True] * 4, [True, True, True, False]]
    assert b["labels"].tolist() == [[IGNORE, 1, 0, IGNORE], [IGNORE, 2, IGNORE, IGNORE]]
    assert b["allowed"].tolist() == [[1, 0, 1, 1], [1, 1, 1, 0]]
    assert (b["start"].tolist(), b["end"].tolist(), b["is_impossible"].tolist()) == ([2, 0], [3, 0], [0, 1])
    assert "example" not in b  # bookkeeping fields stay out of the batch
    for key in ("input_ids", "segment_ids", "labels", "allowed", "start"):
        assert b[key].dtype == torch.long, key
    # equal lengths: no mask at all; float targets stay float; test rows (label None) carry no label
    same = collate([{"input_ids": [2, 3], "segment_ids": [0, 0], "label": 2.5}] * 3, pad_id=0)
    assert same["attention_mask"] is None and same["label"].dtype == torch.float32
    assert "label" not in collate([{"input_ids": [2, 3], "segment_ids": [0, 0], "label": None}], pad_id=0)


def _model(head: torch.nn.Module) -> FinetuneModel:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=20, hidden_size=8, embedding_size=8, num_layers=1, num_heads=2,
                      intermediate_size=16, max_position_embeddings=16)
    return FinetuneModel(Encoder(cfg), head)


def _tagging_feats(n: int) -> list[dict]:
    return [{"input_ids": [2] + [5 + (i + k) % 9 for k in range(1 + i % 4)] + [3],
             "segment_ids": [1] * (3 + i % 4), "labels": [IGNORE] + [(i + k) % 3 for k in range(1 + i % 4)] + [IGNORE]}
            for i in range(n)]


class RecordingHead(TaggingHead):
    """A tagging head that keeps a copy of the loss terms it hands to the loop."""

    def __init__(self) -> None:
        super().__init__(8, 3, 0.0)
        self.seen: list[Terms] = []

    def losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> Terms:
        terms = super().losses(logits, batch)
        self.seen.append(Terms(terms.values.detach().clone(), terms.count.clone()))
        return terms


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loop_reduces_the_terms_and_reports_their_smoothed_loss(reduction: str) -> None:
    head = RecordingHead()
    model = _model(head)
    lines: list[str] = []
    cfg = FinetuneConfig(lr=1e-3, layer_decay=1.0, epochs=3, batch_size=4, log_every=2, loss_reduction=reduction)
    stats = train(model, _tagging_feats(12), cfg, pad_id=0, device=CPU, seed=1, log=lines.append)
    assert stats["steps"] == 9 and len(head.seen) == 9
    ema = None  # the documented smoothing: EMA 0.9 / 0.1 of the per-step batch losses, in Python floats
    for terms in head.seen:  # summed over the labelled words, or averaged over them
        total = terms.values.sum()
        value = float(total if reduction == "sum" else total / terms.count)
        ema = value if ema is None else 0.9 * ema + 0.1 * value
    assert stats["final_loss"] == ema  # the same arithmetic, not just close
    assert [line.split()[1] for line in lines] == ["2/9", "4/9", "6/9", "8/9", "9/9"]
    assert lines[-1].split()[3] == f"{ema:.4f}"


def test_non_finite_loss_stops_at_its_step() -> None:
    model = _model(RegressionHead(8, 0.0))
    feats = [{"input_ids": [2, 5, 3], "segment_ids": [0, 0, 0], "label": float("nan")}] * 8
    cfg = FinetuneConfig(lr=1e-3, layer_decay=1.0, epochs=1, batch_size=4)
    with pytest.raises(UserError, match=r"loss became nan at step 0 \(lr 0.001\); lower --lr"):
        train(model, feats, cfg, pad_id=0, device=CPU, seed=1)


def test_loss_tracker_reports_the_first_bad_step_when_read_later() -> None:
    # on a GPU the loop reads the tracker on logging steps only: the error must still name the first bad step
    tracker = LossTracker(CPU)
    for step, value in enumerate([2.0, 1.0, float("inf"), float("nan"), 1.0]):
        tracker.add(torch.tensor(value), step)
    with pytest.raises(UserError, match=r"loss became inf at step 2 \(lr 0.1\)"):
        tracker.value(0.1)
    tracker = LossTracker(CPU)
    tracker.add(torch.tensor(2.0), 0)
    tracker.add(torch.tensor(1.0), 1)
    assert tracker.value(0.1) == 0.9 * 2.0 + 0.1 * 1.0


def test_save_model_replaces_the_folder_whole(tmp_path, monkeypatch) -> None:
    """model/ is written aside and renamed in: a second save replaces the first, and a save that fails half-way
    leaves the previous model as it was and no temporary folder."""
    from electra.finetune import train as train_mod

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    out = tmp_path / "ft" / "model"
    train_mod.save_model(_model(TaggingHead(8, 3, 0.1)), out, {"task": "first"}, vocab)
    train_mod.save_model(_model(TaggingHead(8, 5, 0.1)), out, {"task": "second"}, vocab)
    assert '"second"' in (out / "finetune.json").read_text()
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(train_mod, "save_tensors", fail)
    with pytest.raises(OSError):
        train_mod.save_model(_model(TaggingHead(8, 7, 0.1)), out, {"task": "third"}, vocab)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]


def test_save_model_cut_short_while_removing_the_old_model_leaves_a_whole_one(tmp_path, monkeypatch) -> None:
    """A kill while the previous model/ is being deleted must not leave half of a model under model/: the old
    one is moved aside first, and only that copy is deleted."""
    from electra.finetune import train as train_mod

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    out = tmp_path / "ft" / "model"
    train_mod.save_model(_model(TaggingHead(8, 3, 0.1)), out, {"task": "first"}, vocab)
    real_rmtree = train_mod.shutil.rmtree

    def cut_short(path, *args, **kwargs):  # deletes the weights, then the process is interrupted
        path = Path(path)
        if (path / "model.safetensors").exists():
            (path / "model.safetensors").unlink()
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)
    monkeypatch.setattr(train_mod.shutil, "rmtree", cut_short)
    try:
        train_mod.save_model(_model(TaggingHead(8, 5, 0.1)), out, {"task": "second"}, vocab)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["finetune.json", "model.safetensors", "vocab.txt"]
    assert '"second"' in (out / "finetune.json").read_text()


def test_precision_chooses_the_autocast() -> None:
    from electra.finetune.train import autocast
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    for precision, dtype in (("auto", torch.float32), ("fp32", torch.float32), ("bf16", torch.bfloat16),
                             ("fp16", torch.float16)):
        with autocast(CPU, precision):
            assert (a @ b).dtype == dtype, precision
    with pytest.raises(UserError, match="precision must be auto, fp32, bf16 or fp16"):
        FinetuneConfig(precision="fp8")
