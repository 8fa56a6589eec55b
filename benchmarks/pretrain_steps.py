"""The two training steps that `bench_pretrain.py` times side by side, and the batches they share.

- `OursStep`: `electra.objective.Electra` driven exactly as `electra.pretrain` drives it.
- `PeerStep`: Hugging Face `ElectraForMaskedLM` + `ElectraForPreTraining`, wired as richarddwang/electra_pytorch.
- `make_batches`: ELECTRA-style examples of the Wikipedia sample (random ids when the shared data is absent);
  `load_inputs`: batches saved by `bench_pretrain.py --save-inputs`, read with `weights_only=True`.
"""
from __future__ import annotations

import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WIKI = SHARED / "pretrain" / "enwiki-2015-wikiextractor" / "sample" / "wiki_00"
VOCAB = SHARED / "vocab" / "vocab.txt"

# ---------------------------------------------------------------------------------------------------
# inputs


def load_inputs(path: str) -> dict:
    """A batch file `bench_pretrain.py` wrote (--save-inputs, or the parent's for its workers), loaded without
    running code: tensors, strings and the vocabulary's SpecialIds."""
    import torch

    from electra.data.tokenizer import SpecialIds

    with torch.serialization.safe_globals([SpecialIds]):
        return torch.load(path, weights_only=True)


def make_batches(seq_len: int, batch: int, n_batches: int, seed: int = 0):
    """`n_batches` collated batches of ELECTRA-style examples built from the Wikipedia sample
    (falls back to random ids when the shared data is absent)."""
    import numpy as np

    from electra.data.builder import ExampleBuilder, build_examples
    from electra.data.dataset import collate
    from electra.data.tokenizer import SpecialIds, load_tokenizer

    need = batch * n_batches
    if WIKI.exists() and VOCAB.exists():
        special = SpecialIds.from_vocab(VOCAB)
        tok = load_tokenizer(VOCAB)
        units: list = []
        for line in WIKI.read_text(encoding="utf-8").splitlines():
            if line.startswith("<doc"):
                continue
            if line.startswith("</doc") or not line.strip():
                units.append(None)
                continue
            units.append(line)
        texts = [u for u in units if u is not None]
        enc = iter(tok.encode_batch(texts, add_special_tokens=False))
        tokenized = [None if u is None else next(enc).ids for u in units]
        builder = ExampleBuilder(seq_len, special.cls, special.sep, random.Random(seed))
        rows = [np.asarray(ids, dtype=np.int64) for ids, _ in build_examples(tokenized, builder)]
        random.Random(seed).shuffle(rows)
        while len(rows) < need:
            rows = rows + rows
        source = f"{WIKI.relative_to(SHARED.parent)} ({len(rows)} examples)"
    else:
        special = SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)
        g = np.random.default_rng(seed)
        rows = []
        for _ in range(need):
            n = seq_len if g.random() > 0.05 else int(g.integers(5, seq_len))
            rows.append(np.concatenate([[special.cls], g.integers(1000, 30522, n - 2), [special.sep]]))
        source = "random ids (shared data absent)"
    batches = [collate(rows[i * batch:(i + 1) * batch], seq_len, special) for i in range(n_batches)]
    pad = float(sum(float((~b.attention_mask).float().mean()) for b in batches) / n_batches)
    return [tuple(t for t in b) for b in batches], special, source, pad


# ---------------------------------------------------------------------------------------------------
# the two training steps


class OursStep:
    def __init__(self, cfg, special, device, mode, unpad="auto"):
        import torch

        from electra.device import compile_model, unpadded
        from electra.model import set_residual
        from electra.objective import Electra, SpecialTokens
        from electra.optim import build_optimizer, set_lr
        t = cfg.train
        torch.manual_seed(t.seed)
        self.model = Electra(cfg, SpecialTokens(special.pad, special.cls, special.sep, special.mask)).to(device)
        set_residual(self.model, t.residual)
        self.model.train()
        self.opt = build_optimizer(self.model, t.optimizer, t.lr, t.weight_decay, (t.adam_beta1, t.adam_beta2), t.adam_eps)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        graphs = mode.startswith("graphs")
        # stepgraph*: `--compile-mode step-graph`, the whole step (forward, backward, clip, optimizer) of the model
        # compiled in Inductor's default mode, recorded once as ONE CUDA graph (`electra.device.StepGraph`)
        self.stepgraph = mode.startswith("stepgraph") and device.type == "cuda"
        compiled = mode.startswith(("compile", "stepgraph")) or graphs
        cmode = "reduce-overhead" if graphs else "step-graph" if self.stepgraph else "default"
        self.step_model = compile_model(self.model, cmode) if compiled else self.model
        self.whole = None
        self.set_lr, self.lr, self.clip = set_lr, t.lr, t.clip_norm  # constant peak lr, as the peer
        self.seed = t.seed
        # as the training loop decides it (pretrain.py): unpadded on CUDA unless replayed as CUDA graphs
        self.unpad = unpadded(unpad, device, graphs)
        self.device, self._host = device, {}
        self.graphs = graphs and device.type == "cuda"

    def __call__(self, batch, i, autocast, mask_cpu=None):
        import torch
        torch.manual_seed(self.seed + i)  # the loop seeds every micro-step
        if self.stepgraph:  # as the training loop drives it
            if self.whole is None:
                from electra.device import StepGraph, full_step
                self.whole = StepGraph(full_step(self.step_model, self.opt, self.params, self.clip, autocast), self.opt)
            self.set_lr(self.opt, self.lr)
            out, grad_norm = self.whole(*batch)
            return out.losses.total, grad_norm
        packing = self.host_packing(mask_cpu).to(self.device) if self.unpad else None
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast:
            out = self.step_model(*batch, packing=packing)
        out.losses.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.set_lr(self.opt, self.lr)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return out.losses.total.detach(), grad_norm

    def host_packing(self, mask_cpu):
        """The batch's packing as the training loop's prefetch thread prepares it (`device.host_packing`), made
        once per distinct batch: only its copy to the device is part of the step."""
        from electra.device import host_packing
        key = id(mask_cpu)
        if key not in self._host:  # the mask is kept alive with it, so its id stays unique
            self._host[key] = (host_packing(mask_cpu, pin=self.device.type == "cuda"), mask_cpu)
        return self._host[key][0]

    def modules(self):
        return self.model


class PeerStep:
    """richarddwang/electra_pytorch's ELECTRAModel + ELECTRALoss on HF transformers models."""

    def __init__(self, cfg, special, device, mode, attn="sdpa"):
        import torch
        from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

        from electra.config import generator_config
        m, o = cfg.model, cfg.objective
        g = generator_config(m, o.generator_hidden_fraction, o.generator_layers_fraction)

        def hf(c):
            return ElectraConfig(vocab_size=c.vocab_size, embedding_size=m.embedding_size, hidden_size=c.hidden_size,
                                 num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
                                 intermediate_size=c.intermediate_size, hidden_act="gelu",
                                 hidden_dropout_prob=c.hidden_dropout, attention_probs_dropout_prob=c.attention_dropout,
                                 max_position_embeddings=c.max_position_embeddings, type_vocab_size=c.type_vocab_size,
                                 layer_norm_eps=c.layer_norm_eps, attn_implementation=attn)

        torch.manual_seed(cfg.train.seed)
        self.gen = ElectraForMaskedLM(hf(g)).to(device)
        self.disc = ElectraForPreTraining(hf(m)).to(device)
        self.disc.electra.embeddings = self.gen.electra.embeddings
        self.gen.generator_lm_head.weight = self.disc.electra.embeddings.word_embeddings.weight
        both = torch.nn.ModuleDict({"gen": self.gen, "disc": self.disc}).train()
        self.both = both
        self.params = list({id(p): p for p in both.parameters()}.values())
        self.opt = torch.optim.AdamW(self.params, lr=cfg.train.lr, eps=1e-6, weight_decay=0.01)
        if mode.startswith(("compile", "graphs")):  # as the peer baseline: each model compiled on its own
            cmode = "reduce-overhead" if mode.startswith("graphs") else None
            self.gen_fwd, self.disc_fwd = torch.compile(self.gen, mode=cmode), torch.compile(self.disc, mode=cmode)
        else:
            self.gen_fwd, self.disc_fwd = self.gen, self.disc
        self.graphs = mode.startswith("graphs") and device.type == "cuda"
        self.special, self.vocab = special, m.vocab_size
        self.mask_prob, self.seed = o.mask_prob, cfg.train.seed
        self.gumbel = torch.distributions.gumbel.Gumbel(torch.tensor(0.0, device=device), torch.tensor(1.0, device=device))

    def mask_tokens(self, inputs):
        """richarddwang's `mask_tokens(..., replace_prob=0.0, orginal_prob=0.15)`."""
        import torch
        sp = self.special
        inputs = inputs.clone()
        labels = inputs.clone()
        prob = torch.full(labels.shape, self.mask_prob, device=inputs.device)
        special = torch.zeros_like(inputs, dtype=torch.bool)
        for t in (sp.pad, sp.cls, sp.sep):
            special |= inputs == t
        prob.masked_fill_(special, 0.0)
        mlm_mask = torch.bernoulli(prob).bool()
        labels[~mlm_mask] = -100
        mask_token_mask = torch.bernoulli(torch.full(labels.shape, 0.85, device=inputs.device)).bool() & mlm_mask
        inputs[mask_token_mask] = sp.mask
        return inputs, labels, mlm_mask

    def __call__(self, batch, i, autocast, mask_cpu=None):
        import torch
        ids, seg, am = batch
        torch.manual_seed(self.seed + i)
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast:
            masked, labels, is_mlm = self.mask_tokens(ids)
            gen_out = self.gen_fwd(input_ids=masked, attention_mask=am, token_type_ids=seg, labels=labels)
            gen_logits = gen_out.logits  # (B, T, V): the LM head ran on every position
            mlm_logits = gen_logits[is_mlm, :]
            with torch.no_grad():
                pred = (mlm_logits.float() + self.gumbel.sample(mlm_logits.shape)).argmax(dim=-1)
                generated = ids.clone()
                generated[is_mlm] = pred
                is_replaced = is_mlm.clone()
                is_replaced[is_mlm] = pred != ids[is_mlm]
            disc_logits = self.disc_fwd(input_ids=generated, attention_mask=am, token_type_ids=seg).logits
            disc_loss = torch.nn.functional.binary_cross_entropy_with_logits(
                disc_logits.masked_select(am).float(), is_replaced.masked_select(am).float())
            loss = gen_out.loss * 1.0 + disc_loss * 50.0
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach(), grad_norm

    def modules(self):
        return self.both
