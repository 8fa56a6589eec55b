"""Task heads on top of the discriminator encoder, and the model that joins them (electra-spec 3.2).

    ClassificationHead  dropout -> Linear(D, n_labels) on the final [CLS] vector; no pooler; softmax CE
                        (--cls-head hf: transformers' dense + GELU layer first, exportable as is)
    RegressionHead      the same with Linear(D, 1); target / 5, squared error; predictions x 5 (STS-B)
    TaggingHead         Linear(D, n_tags) on every token (no extra dropout, as tagging_tasks.py); CE over
                        first sub-tokens only
    SimpleQAHead        Linear(D, 2): start / end logits (HF's ElectraForQuestionAnswering.qa_outputs)
    ElectraQAHead       the original's XLNet-style head (qa_tasks.py): end conditioned on the start, and
                        an "impossible" classifier for SQuAD 2.0
The QA and tagging heads read the encoder output directly, without the extra dropout the classifier has,
as the original's qa_tasks.py / tagging_tasks.py (and HF's QA / token-classification heads' qa_outputs).

Every head has forward(h, batch) -> outputs, losses(outputs, batch) -> the unreduced loss terms (one per
example; for tagging, `Terms`: one per token, of which the labelled words count) and predict(outputs, batch) ->
one result per example. The training loop reduces the terms (train.reduce_loss, FinetuneConfig.loss_reduction),
so no head needs to.

Each head's final layer is `out` (`head.out.weight`, `head.out.bias` in the saved model: the exporter
relies on these names). Final layers use TF's default init, Glorot uniform with zero bias, as the
original's `tf.layers.dense` does (spec 1.1); the QA head's hidden layers too.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100  # label of positions that carry no loss (non-first sub-tokens, padding, [CLS]/[SEP])
NEG = -1000.0  # the original's additive logit mask for positions outside the allowed answer span


class Terms(NamedTuple):
    """Loss terms of a fixed size, of which only `count` are real (tagging: the labelled words); the others
    are 0. Selecting the real ones would make the host wait for the device every step (a boolean index)."""
    values: torch.Tensor  # (n,)
    count: torch.Tensor  # () the number of real terms


def glorot_(linear: nn.Linear) -> nn.Linear:
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class ClassificationHead(nn.Module):
    """`dense=False` (the original): dropout -> Linear(D, n) on the final [CLS] vector. `dense=True`
    (`--cls-head hf`): dropout -> Linear(D, D) -> GELU -> dropout -> Linear(D, n), transformers'
    ElectraClassificationHead layer for layer, so `electra export` writes it as ElectraForSequenceClassification."""

    def __init__(self, hidden: int, num_labels: int, dropout: float, dense: bool = False):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.dense = glorot_(nn.Linear(hidden, hidden)) if dense else None
        self.out = glorot_(nn.Linear(hidden, num_labels))

    def forward(self, h: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.drop(h[:, 0])  # (B, D) the raw final [CLS] vector
        if self.dense is not None:
            x = self.drop(F.gelu(self.dense(x)))
        return self.out(x)  # (B, n_labels)

    def losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits.float(), batch["label"].long(), reduction="none")  # (B,)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        return logits.float().cpu().numpy().tolist()  # per example: logits; argmax taken by the caller


class RegressionHead(ClassificationHead):
    """`target_range` (lo, hi) is mapped onto [0, 1] for training: (0, 5) for STS-B as the original; a user's
    regression task takes the range of its training targets (finetune.json records it as `target_range`)."""

    def __init__(self, hidden: int, dropout: float, target_range: tuple[float, float] = (0.0, 5.0), dense: bool = False):
        super().__init__(hidden, 1, dropout, dense)
        self.lo, self.hi = float(target_range[0]), float(target_range[1])

    def forward(self, h: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().forward(h, batch).squeeze(-1)  # (B,)

    def losses(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # spec 3.2: the target is normalised to [0, 1] ((y - 0) / 5 for STS-B) and the loss is the squared error
        target = (batch["label"].float() - self.lo) / (self.hi - self.lo)
        return F.mse_loss(pred.float(), target, reduction="none")  # (B,)

    def predict(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        return (pred.float() * (self.hi - self.lo) + self.lo).cpu().numpy().tolist()  # back on the target scale


class TaggingHead(ClassificationHead):
    def forward(self, h: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.out(h)  # (B, T, n_tags)

    def losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> Terms:
        # one term per labelled word (first pieces only; other positions give 0): the original sums them (per
        # sentence, then over the batch), and `mean` averages over words, not sentences
        labels = batch["labels"].flatten()
        losses = F.cross_entropy(logits.float().flatten(0, 1), labels, ignore_index=IGNORE, reduction="none")
        return Terms(losses, (labels != IGNORE).sum())

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        return logits.argmax(-1).cpu().numpy().tolist()  # per example: a tag id per token


def _masked(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Positions outside segment B (context + final [SEP]) and [CLS] get -1000 added: the original's answer_mask."""
    return logits + (1.0 - allowed.float()) * NEG


class SimpleQAHead(nn.Module):
    """Start / end logits from one Linear(D, 2); row 0 = start, row 1 = end. The SQuAD 2.0 'no answer'
    is the [CLS] span (start = end = 0), scored against the best real span at inference."""

    def __init__(self, hidden: int):
        super().__init__()
        self.out = glorot_(nn.Linear(hidden, 2))

    def forward(self, h: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        start, end = self.out(h).float().unbind(-1)  # 2 x (B, T)
        allowed = batch["allowed"]
        return {"start": _masked(start, allowed), "end": _masked(end, allowed)}

    def losses(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ce = lambda k: F.cross_entropy(out[k], batch[k], reduction="none")
        return 0.5 * (ce("start") + ce("end"))  # (B,)

    def predict(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> list[Any]:
        s, e = out["start"].cpu().numpy(), out["end"].cpu().numpy()
        return [{"start": s[i], "end": e[i]} for i in range(s.shape[0])]


class ElectraQAHead(nn.Module):
    """The original's head (finetune/qa/qa_tasks.py, spec 3.2): start = Linear(D, 1); end logits from
    concat(start-token vector, each token vector) -> Linear(2D, 512) GELU -> Linear(512, 1), with the gold
    start at training time and each of the top-k starts at inference (beam); SQuAD 2.0: an "impossible"
    logit (label = the question has no answer, the same for all its windows) from concat([CLS],
    start-probability-weighted vector) -> Linear(2D, 512) GELU -> Linear(512, 1), sigmoid BCE x 0.5.
    `answerable` (SQuAD 2.0) turns that branch on; SQuAD 1.1 never computes it."""

    def __init__(self, hidden: int, beam: int = 20, answerable: bool = False):
        super().__init__()
        self.beam, self.answerable = beam, answerable
        self.start = glorot_(nn.Linear(hidden, 1))
        self.end_dense = glorot_(nn.Linear(2 * hidden, 512))
        self.out = glorot_(nn.Linear(512, 1))  # the end logit
        # built even when unused (SQuAD 1.1): skipping their random init would shift the seed's random
        # stream, and with it the encoder's dropout masks and every SQuAD 1.1 result; they get no gradient
        self.ans_dense = glorot_(nn.Linear(2 * hidden, 512))
        self.ans_out = glorot_(nn.Linear(512, 1))

    def _end_logits(self, h: torch.Tensor, start_vec: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """h (B, T, D), start_vec (B, K, D) -> end logits (B, K, T)."""
        D = h.shape[-1]
        # dense(concat(s, h_t)) = W_s s + W_h h_t + b: project both halves once instead of materialising
        # the (B, K, T, 2D) concatenation
        w_s, w_h = self.end_dense.weight[:, :D], self.end_dense.weight[:, D:]
        x = (start_vec @ w_s.T)[:, :, None] + (h @ w_h.T)[:, None] + self.end_dense.bias  # (B, K, T, 512)
        logits = self.out(F.gelu(x)).squeeze(-1).float()  # (B, K, T)
        return _masked(logits, allowed[:, None, :])

    def forward(self, h: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        allowed = batch["allowed"]
        start = _masked(self.start(h).squeeze(-1).float(), allowed)  # (B, T)
        out = {"start": start}
        if self.training:
            idx = batch["start"]  # teacher forcing: the end is conditioned on the gold start
            out["end"] = self._end_logits(h, h[torch.arange(h.shape[0]), idx][:, None], allowed)[:, 0]
        else:
            k = min(self.beam, h.shape[1])
            top = start.topk(k, dim=-1).indices  # (B, K)
            start_vec = torch.gather(h, 1, top[..., None].expand(-1, -1, h.shape[-1]))
            out["top_start"] = top
            out["end"] = self._end_logits(h, start_vec, allowed)  # (B, K, T)
        if self.answerable:
            out["impossible"] = self._impossible_logit(h, start)
        return out

    def _impossible_logit(self, h: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """(B,) "no answer" logits from [CLS] and the start-probability-weighted token vector."""
        probs = torch.softmax(start, dim=-1).to(h.dtype)  # (B, T)
        summary = torch.einsum("bt,btd->bd", probs, h)
        return self.ans_out(F.gelu(self.ans_dense(torch.cat([h[:, 0], summary], -1)))).squeeze(-1).float()

    def losses(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ce = lambda k: F.cross_entropy(out[k], batch[k], reduction="none")
        loss = 0.5 * (ce("start") + ce("end"))
        if self.answerable:
            loss = loss + 0.5 * F.binary_cross_entropy_with_logits(out["impossible"], batch["is_impossible"].float(),
                                                                   reduction="none")
        return loss  # (B,)

    def predict(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> list[Any]:
        s, e, top = out["start"].cpu().numpy(), out["end"].cpu().numpy(), out["top_start"].cpu().numpy()
        rows = [{"start": s[i], "end_beam": e[i], "top_start": top[i]} for i in range(s.shape[0])]
        if self.answerable:
            for row, a in zip(rows, out["impossible"].cpu().numpy()):
                row["impossible"] = float(a)
        return rows


def build_head(kind: str, hidden: int, n_labels: int = 0, dropout: float = 0.1,
               target_range: tuple[float, float] = (0.0, 5.0), beam: int = 20, answerable: bool = False,
               dense: bool = False) -> nn.Module:
    """The head of one `finetune.json` "head" kind: the one place where the task jobs (to train it) and
    `electra predict` (to load it) build it. `dense`: the sentence heads in transformers' layout (--cls-head hf)."""
    if kind == "classification":
        return ClassificationHead(hidden, n_labels, dropout, dense)
    if kind == "regression":
        return RegressionHead(hidden, dropout, target_range, dense)
    if kind == "tagging":
        return TaggingHead(hidden, n_labels, 0.0)  # no extra dropout, as tagging_tasks.py
    if kind == "qa_simple":
        return SimpleQAHead(hidden)
    if kind == "qa_electra":
        return ElectraQAHead(hidden, beam=beam, answerable=answerable)
    raise ValueError(f"unknown head kind {kind!r}")


class FinetuneModel(nn.Module):
    """encoder + head; parameter names `encoder.*` (the Encoder's own) and `head.*`, the saved layout."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        h = self.encoder(batch["input_ids"], batch["segment_ids"], batch["attention_mask"])  # (B, T, D)
        return self.head(h, batch)


def encoder_depth(name: str) -> int | None:
    """Layer depth for layer-wise LR decay (spec 1.7): embeddings / projection 0, block i -> i + 1,
    head None (the top), and so the modern backbone's final LayerNorm, which norms the last block's output for
    the head. Any other encoder name is an error, as in the original."""
    if name.startswith(("head.", "encoder.final_norm.")):
        return None
    sub = name.removeprefix("encoder.")
    if sub.startswith(("embeddings.", "project.")):
        return 0
    if sub.startswith("blocks."):
        return int(sub.split(".")[1]) + 1
    raise ValueError(f"parameter {name} has no layer depth")
