"""FLOP accounting, two ways, each for its own purpose.

1. `train_flops(cfg, steps)` / `inference_flops(cfg)`: the paper's method (electra-spec 1.9), i.e. the
   accounting of the original `flops_computation.py`, reimplemented term by term with its assumptions:
   a multiply-add is 2 FLOPs; backward = forward (so training = 2 x forward); embedding lookups are dense
   (a one-hot matmul, 2*E*V per token); the generator's output softmax runs on `output_frac` = 0.15625
   (20/128) of the positions whatever the masking rate; dropout, LayerNorm, GELU and softmax are counted
   with small per-element constants, and the script's quirks are kept (the attention-output LayerNorm
   counts 5 FLOPs per token, not 5 per element). Use these numbers for "GLUE per FLOP" comparisons with
   the paper: ELECTRA-Small 1M steps = 1.29e18 (paper 1.4e18), ELECTRA-Base = 6.42e19 (spec 6.43e19), BERT-Small
   1.45M steps = 1.42e18, BERT-Base = 6.43e19; inference at 128 tokens: Small 3.7e9, Base 2.9e10.

2. `model_flops_per_token(cfg)`: the MFU convention. Matmul FLOPs only (dense layers, the T x T score and
   mix products, the generator's vocabulary projection), forward + backward = 3 x forward, per token of
   the micro-batch; embedding lookups and elementwise work are not counted. The generator head counts
   the positions it really runs on: the N = max_predictions masked slots per row (`lm_head="masked"`,
   what `electra.objective` executes) or all T positions (`lm_head="all"`, what Hugging Face's
   `ElectraForMaskedLM` executes); so two implementations' MFUs are comparable only with the same flag.

The modern backbone (`ModelConfig.backbone="modern"`) is counted as it runs: a GeGLU MLP has three D x F
matrices instead of two, rotary positions replace the position and segment lookups, and a final LayerNorm.
Its sliding-window layers (`local_attention` W) count the keys a query needs, at most W + 1 (fewer near the
row's ends: `keys_per_query`), in both methods: what flash attention's windowed kernel computes (to within its
tiles), not the full T x T that the padded path's masked SDPA spends.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from electra.config import ModelConfig, PretrainConfig, generator_config


def keys_per_query(seq_len: int, window: int) -> float:
    """Mean over a row's positions of the keys a query attends to: all `seq_len`, or (a sliding window of
    `window` tokens, window / 2 either side) those of the row within it."""
    if not window or window >= 2 * (seq_len - 1):
        return float(seq_len)
    w = window // 2
    return sum(min(i + w, seq_len - 1) - max(i - w, 0) + 1 for i in range(seq_len)) / seq_len


def local_layers(m: ModelConfig) -> int:
    """How many of the encoder's blocks attend within the sliding window."""
    return sum(m.is_local(i) for i in range(m.num_layers))

# per-element constants of flops_computation.py
DROPOUT_FLOPS = 4  # random number, >=, multiply by mask, multiply by 1/(1-p)
LAYER_NORM_FLOPS = 5  # mean, variance (square, sum), bias, scale
ACTIVATION_FLOPS = 8  # tanh-GELU
SOFTMAX_FLOPS = 5  # max/subtract, exp, sum, divide
OUTPUT_FRAC = 0.15625  # share of positions with an output softmax (20 of 128), as the original


@dataclass(frozen=True)
class Transformer:
    """The script's `TransformerHparams`: h hidden, l layers, s sequence length, v vocab, e embedding,
    i intermediate, heads, kqv = h (attention projection width)."""

    h: int
    l: int  # the script's name
    s: int = 512
    v: int = 30522
    e: int | None = None
    i: int | None = None
    heads: int | None = None
    output_frac: float = OUTPUT_FRAC
    modern: bool = False  # the modern backbone: GeGLU (a second h x i matmul, a gating product), rotary positions
    local: int = 0  # of the l layers, those attending within a sliding window,
    window: int = 0  # of this many tokens

    @property
    def emb(self) -> int:
        return self.h if self.e is None else self.e

    @property
    def inter(self) -> int:
        return 4 * self.h if self.i is None else self.i

    @property
    def n_heads(self) -> int:
        return max(self.h // 64, 1) if self.heads is None else self.heads

    def block_flops(self, keys: float | None = None) -> float:
        """Forward FLOPs of one encoder block over the whole sequence, each query attending to `keys` keys
        (default: all s)."""
        h, s, i, a, kqv = self.h, self.s, self.inter, self.n_heads, self.h
        k = s if keys is None else keys
        per_token = (
            3 * 2 * h * kqv + 3 * kqv  # q, k, v projections and biases
            + 2 * kqv * k  # scores
            + SOFTMAX_FLOPS * k * a + DROPOUT_FLOPS * k * a + k * a  # softmax, dropout, 1/sqrt(d) scale
            + 2 * h * k  # weighted average of the values
            + 2 * h * h + h + DROPOUT_FLOPS * h + h + LAYER_NORM_FLOPS  # output dense, bias, dropout, residual, LN (sic)
            + (2 if self.modern else 1) * 2 * h * i + ACTIVATION_FLOPS * i + i  # intermediate dense(s), GELU, bias or gate
            + (2 * 3 * kqv if self.modern else 0)  # rotary positions: q and k, x cos + rotated x sin
            + 2 * h * i + h + DROPOUT_FLOPS * h + h + LAYER_NORM_FLOPS * h  # output dense, bias, dropout, residual, LN
        )
        return per_token * s

    def layers_flops(self) -> float:
        """Forward FLOPs of the l blocks: the global ones over the whole row, the sliding-window ones within it."""
        local = self.local * self.block_flops(keys_per_query(self.s, self.window)) if self.local else 0.0
        return (self.l - self.local) * self.block_flops() + local

    def embedding_flops(self, output: bool = False) -> float:
        """Forward FLOPs of the input embeddings, or (output=True) of the MLM output head."""
        e, h, v, s = self.emb, self.h, self.v, self.s
        terms = 0.0
        terms += 2 * e * v  # one-hot lookup / vocabulary projection
        if not output and self.modern:  # no position or segment tables; the final LayerNorm
            terms += LAYER_NORM_FLOPS * e + DROPOUT_FLOPS * e + LAYER_NORM_FLOPS * h
        elif not output:
            terms += 2 * e * (s + 2) + 2 * e + LAYER_NORM_FLOPS * e + DROPOUT_FLOPS * e  # positions/types, add, LN, dropout
        if e != h or output:
            terms += 2 * h * e + (e if output else h)  # projection (input) or head dense (output)
            if output:
                terms += ACTIVATION_FLOPS * e + LAYER_NORM_FLOPS * e + SOFTMAX_FLOPS * v + 2 * v
                return self.output_frac * terms * s
        return terms * s

    def classification_flops(self) -> float:
        """The discriminator's per-token binary head (dense h->h, GELU, logit)."""
        h = self.h
        return (2 * h * h + h + ACTIVATION_FLOPS * h + 2 * h) * self.s

    def train_flops(self, batch_size: int, steps: float, discriminator: bool = False) -> float:
        head = self.classification_flops() if discriminator else self.embedding_flops(output=True)
        return 2 * batch_size * steps * (self.layers_flops() + self.embedding_flops() + head)

    def infer_flops(self) -> float:
        """One example through the encoder plus a classification head (the script's definition)."""
        return self.layers_flops() + self.embedding_flops() + self.classification_flops()


def electra_train_flops(h_d: int, l_d: int, h_g: int, l_g: int, batch_size: int, steps: float,
                        tied_embeddings: bool = True, e: int | None = None, s: int = 512,
                        output_frac: float = OUTPUT_FRAC, v: int = 30522,
                        i_d: int | None = None, i_g: int | None = None,
                        heads_d: int | None = None, heads_g: int | None = None) -> float:
    """The script's `get_electra_train_flops`: discriminator (binary head) + generator (MLM head)."""
    e = h_d if e is None else e
    disc = Transformer(h_d, l_d, s=s, v=v, e=e, i=i_d, heads=heads_d, output_frac=output_frac)
    gen = Transformer(h_g, l_g, s=s, v=v, e=e if tied_embeddings else None, i=i_g, heads=heads_g,
                      output_frac=output_frac)
    return disc.train_flops(batch_size, steps, True) + gen.train_flops(batch_size, steps)


def _transformer(m: ModelConfig, seq_len: int, e: int | None, output_frac: float) -> Transformer:
    return Transformer(m.hidden_size, m.num_layers, s=seq_len, v=m.vocab_size, e=e, i=m.intermediate_size,
                       heads=m.num_heads, output_frac=output_frac, modern=m.modern, local=local_layers(m),
                       window=m.local_attention)


def train_flops(cfg: PretrainConfig, steps: float | None = None, batch_size: int | None = None,
                output_frac: float = OUTPUT_FRAC) -> float:
    """Pre-training FLOPs of a run by the paper's method (spec 1.9): `steps` optimizer steps (default
    cfg.train.max_steps) of `batch_size` sequences (default the global batch) of cfg.train.seq_len tokens.
    ELECTRA: discriminator + generator, the generator's embeddings counted at the tied width in every sharing
    mode (with sharing=none too: this project's untied generator keeps the discriminator's embedding width,
    fidelity.md difference 4, so it computes exactly what the tied one does; the script's untied case, width =
    generator hidden, is a model this project does not build). MLM objective: one full-size model with the
    output softmax (the BERT baseline). A fixed generator (uniform / unigram) adds nothing to the discriminator.
    Replace MLM: the discriminator with the MLM's output softmax (on output_frac of the positions); All-Tokens MLM:
    the softmax on every position plus the binary copy gate. Electric: the discriminator, two generator-size
    towers and the cloze softmax on every position."""
    m, o, t = cfg.model, cfg.objective, cfg.train
    steps = t.max_steps if steps is None else steps
    batch = t.global_batch_size if batch_size is None else batch_size
    if o.objective == "mlm":
        return _transformer(m, t.seq_len, m.embedding_size, output_frac).train_flops(batch, steps)
    g = generator_config(m, o.generator_hidden_fraction, o.generator_layers_fraction)
    if o.objective in ("electra", "electric"):
        disc = _transformer(m, t.seq_len, m.embedding_size, output_frac).train_flops(batch, steps, discriminator=True)
    else:  # Table 5's ablations: the discriminator is a masked LM, with the MLM's output softmax
        lm = _transformer(m, t.seq_len, m.embedding_size, output_frac if o.objective == "replace_mlm" else 1.0)
        disc = lm.train_flops(batch, steps)
        if o.objective == "all_tokens_mlm":  # on every position, plus the copy gate
            disc += 2 * batch * steps * lm.classification_flops()
    if not o.trained_generator:  # uniform / unigram fakes: a table lookup, no network
        return disc
    if o.objective == "electric":  # two towers of the generator's size; the cloze softmax on every position
        tower = _transformer(g, t.seq_len, g.embedding_size, 1.0)
        head = dataclasses.replace(tower, h=2 * g.hidden_size)  # it reads both towers' states side by side
        per_example = 2 * (tower.layers_flops() + tower.embedding_flops()) + head.embedding_flops(output=True)
        return disc + 2 * batch * steps * per_example
    # the generator's embedding width is the discriminator's in every sharing mode (generator_config keeps it;
    # sharing=all: one encoder serving as both, still two forward/backward passes of it)
    gen = _transformer(g, t.seq_len, g.embedding_size, output_frac).train_flops(batch, steps)
    return disc + gen


def inference_flops(cfg: PretrainConfig | ModelConfig, seq_len: int = 128) -> float:
    """FLOPs of one `seq_len`-token example through the discriminator with a classification head."""
    m = cfg.model if isinstance(cfg, PretrainConfig) else cfg
    return _transformer(m, seq_len, m.embedding_size, OUTPUT_FRAC).infer_flops()


# ---------------------------------------------------------------------------------------------------
# MFU convention


def encoder_matmul_flops_per_token(m: ModelConfig, seq_len: int) -> float:
    """Forward matmul FLOPs per token of one encoder: q/k/v/out, MLP (GeGLU: three D x F matrices), the score
    and mix products (T keys a query; sliding-window layers: the keys within the window), E->D projection."""
    D, F_, L = m.hidden_size, m.intermediate_size, m.num_layers
    dense = 2 * (4 * D * D + (3 if m.modern else 2) * D * F_)
    local = local_layers(m)
    attend = 2 * 2 * D * ((L - local) * seq_len + local * keys_per_query(seq_len, m.local_attention))
    project = 2 * m.embedding_size * D if m.embedding_size != D else 0
    return L * dense + attend + project


def model_flops_per_token(cfg: PretrainConfig, seq_len: int | None = None, lm_head: str = "masked") -> float:
    """Training FLOPs (forward + backward = 3 x forward matmul FLOPs) per token of a micro-batch, for MFU.

    lm_head="masked": the generator's D->E dense and E->V projection run on max_predictions slots per row
    (this project); "all": on every position (Hugging Face's ElectraForMaskedLM)."""
    if lm_head not in ("masked", "all"):
        raise ValueError(f"lm_head must be 'masked' or 'all', got {lm_head!r}")
    m, o = cfg.model, cfg.objective
    T = cfg.train.seq_len if seq_len is None else seq_len
    head_frac = 1.0 if lm_head == "all" else min(1.0, cfg.max_predictions / T)
    if o.objective == "mlm":
        g = m
        disc = 0.0
    else:
        g = generator_config(m, o.generator_hidden_fraction, o.generator_layers_fraction)
        D, E = m.hidden_size, m.embedding_size
        disc = encoder_matmul_flops_per_token(m, T)
        if o.objective in ("electra", "all_tokens_mlm", "electric"):  # the RTD head (all_tokens_mlm: its copy gate)
            disc += 2 * (D * D + D)
        if o.objective in ("replace_mlm", "all_tokens_mlm"):  # its LM head: on the masked slots, or every token
            disc += (head_frac if o.objective == "replace_mlm" else 1.0) * 2 * (D * E + E * m.vocab_size)
    if not o.trained_generator:
        return 3 * disc
    if o.objective == "electric":  # two towers, and the cloze head (2 D_gen -> E -> V) on every position
        return 3 * (disc + 2 * encoder_matmul_flops_per_token(g, T) + 2 * (2 * g.hidden_size * m.embedding_size
                                                                          + m.embedding_size * m.vocab_size))
    gen = encoder_matmul_flops_per_token(g, T)
    gen_head = head_frac * 2 * (g.hidden_size * m.embedding_size + m.embedding_size * m.vocab_size)
    return 3 * (disc + gen + gen_head)
