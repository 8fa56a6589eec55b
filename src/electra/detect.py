"""`electra detect`: show which tokens of a sentence the discriminator believes were replaced.

    electra detect --model RUN_DIR "the chef cooked the meal"  "the chef ate the meal"
    electra detect --model HF_DIR --threshold 0.3 "..."

Prints each sentence with suspected tokens marked `[token]` and, below, every token with its
probability of having been replaced. A run folder, a checkpoint folder or a Hugging Face ELECTRA
discriminator folder all work. For an Electric run (`--objective electric`) the probability is that of noise,
P = sigmoid(E + log q + log(p / (1 - p))) with its two-tower generator's q, and each sentence also gets its
score, the sum of -E over its tokens: Electric's estimate of the text's pseudo-log-likelihood (higher = more
plausible), what the Electric paper re-ranks candidate sentences by.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import torch

from electra.checkpoint import load_discriminator, strip_prefix
from electra.data.tokenizer import SpecialIds, load_tokenizer
from electra.dist import pick_device
from electra.errors import ArgumentParser, UserError
from electra.model import DiscriminatorHead, Encoder


class Detection(NamedTuple):
    tokens: list[str]  # word pieces, without [CLS]/[SEP]
    probs: list[float]  # P(replaced) per token
    score: float | None = None  # Electric: the sum of -energy over the tokens (a pseudo-log-likelihood estimate)
    cut: int = 0  # word pieces past the model's positions, left out


class Detector:
    """A discriminator (encoder + RTD head) and its tokenizer, in eval mode."""

    def __init__(self, path: Path, device: str = "cpu", allow_pickle: bool = False):
        encoder, pre = load_discriminator(path, allow_pickle)
        self.electric = None
        if pre.cfg.objective.objective == "electric":  # the noise logit needs the generator's q as well
            if not any(k.startswith("generator.") for k in pre.weights):
                raise UserError(f"{path} is an exported Electric discriminator: its head gives energies, and the "
                                f"noise probability also needs the two-tower generator, which the export leaves "
                                f"out; run detect on the run folder")
            from electra.objective import Electra, SpecialTokens
            sp = SpecialIds.from_vocab(pre.vocab_path)
            self.electric = Electra(pre.cfg, SpecialTokens(sp.pad, sp.cls, sp.sep, sp.mask))
            self.electric.load_weights(pre.weights)
            self.electric.to(device).eval()
            encoder = self.electric.discriminator  # the whole model is loaded: its discriminator, not a second copy
        head = DiscriminatorHead(pre.cfg.model)
        sub = strip_prefix(pre.weights, "discriminator_head.")
        if not sub:
            raise UserError(f"{path} has no replaced-token detection head (an MLM or replace_mlm run, a generator, "
                            f"a fine-tuned model); detect needs an ELECTRA discriminator: a run, or an export's "
                            f"discriminator/")
        head.load_state_dict(sub)
        self.encoder: Encoder = encoder.to(device).eval()
        self.head = head.to(device).eval()
        self.device = device
        self.tokenizer = load_tokenizer(pre.vocab_path, lowercase=pre.lowercase, strip_accents=pre.strip_accents)
        self.special = SpecialIds.from_vocab(pre.vocab_path)
        self.max_len = pre.cfg.model.max_position_embeddings

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> list[Detection]:
        encs = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        rows = [[self.special.cls, *e.ids[: self.max_len - 2], self.special.sep] for e in encs]
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), self.special.pad, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        mask = ids != self.special.pad
        ids, mask = ids.to(self.device), mask.to(self.device)
        seg = torch.zeros_like(ids)
        logits = self.head(self.encoder(ids, seg, mask))
        scores = [None] * len(rows)
        if self.electric is not None:
            from electra.objective import maskable
            from electra.variants import electric_logits
            energy, m = logits, self.electric
            q_logits = m.generator(ids, seg, mask, m.generator.embeddings.word.weight)
            logits = electric_logits(energy, q_logits, ids, m.cfg.objective.mask_prob)
            scores = (-(energy.float() * maskable(ids, mask, self.special)).sum(-1)).tolist()  # words, not [CLS]/[SEP]
        probs = torch.sigmoid(logits).cpu()
        out = []
        for i, (e, r) in enumerate(zip(encs, rows)):
            n = len(r) - 2
            out.append(Detection(e.tokens[:n], probs[i, 1: n + 1].tolist(), scores[i], len(e.ids) - n))
        return out


def render(det: Detection, threshold: float) -> str:
    """The sentence with suspected tokens in brackets, then one `token  p` line per token."""
    words = []
    for tok, p in zip(det.tokens, det.probs):
        shown = f"[{tok}]" if p >= threshold else tok
        if tok.startswith("##") and words:
            words[-1] += shown.replace("##", "")
        else:
            words.append(shown)
    lines = [" ".join(words)]
    if det.score is not None:
        lines.append(f"  score (sum of -energy, Electric's pseudo-log-likelihood estimate): {det.score:.3f}")
    lines += [f"  {tok:<16} {p:6.3f}{'  <- replaced?' if p >= threshold else ''}" for tok, p in zip(det.tokens, det.probs)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="electra detect", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="run folder, checkpoint folder or HF ELECTRA folder")
    p.add_argument("--threshold", type=float, default=0.5, help="mark tokens with P(replaced) at or above this")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--allow-pickle", action="store_true",
                   help="accept a Hugging Face pytorch_model.bin (loaded with torch.load(weights_only=True))")
    p.add_argument("text", nargs="+", help="one or more sentences")
    args = p.parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:  # also refuses nan
        raise UserError(f"--threshold {args.threshold} is not a probability; pass a value in [0, 1]")
    # a shell passes bytes that are not UTF-8 as lone surrogates: show them as U+FFFD, as the tokenizer would
    texts = [t.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for t in args.text]
    if any(not t.strip() for t in texts):
        raise UserError("a sentence to check is empty; pass some text in each argument")
    detector = Detector(args.model, str(pick_device(args.device)), args.allow_pickle)
    for det in detector(texts):
        if det.cut:
            print(f"electra detect: note: a sentence of {len(det.tokens) + det.cut} word pieces is cut to the "
                  f"model's {len(det.tokens)}", file=sys.stderr)
        print(render(det, args.threshold))
        print()
    return 0
