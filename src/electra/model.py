"""The ELECTRA Transformer encoder and its two pre-training heads, top to bottom.

A post-LayerNorm BERT encoder (electra-spec 1.1): embeddings -> [attention -> add & norm -> MLP -> add & norm]
x L. The generator and the discriminator are both `Encoder`s; the generator is narrower and shares the
embedding block with the discriminator (see objective.py). Every parameter maps one-to-one onto Hugging
Face's ELECTRA weights (hf.py does the renaming; q/k/v are one fused matrix here, three there).

Dimensions: B batch, T tokens per row, V vocab, E embedding width, D hidden width, H heads, K = D / H head
width, F MLP width, N masked slots per row, S real (non-pad) tokens of a whole batch.

Unpadded mode (`Packing`, packing.py): the encoder can run on the S real tokens of a batch laid end to end
instead of on B x T slots, so that no matmul, norm or dropout is spent on padding; attention then runs per row
on the packed tokens (flash attention's variable-length kernel on CUDA), and the result is scattered back to
(B, T, D) for the heads.

`ModelConfig.backbone="modern"` swaps in ModernBERT's layer (Warner et al. 2024), the same objective on a newer
encoder: pre-LN blocks with a final norm, rotary positions instead of a position table, a GeGLU MLP, no biases
and no segment embeddings. Each switch is a branch in the module it changes; HF's ModernBertModel loads the
discriminator (hf_modern.py).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from electra.config import ModelConfig
from electra.dropout import Dropout, dropout
from electra.packing import Packing, varlen_attention


class Embeddings(nn.Module):
    """word + position + segment embeddings -> LayerNorm -> dropout. Shared between generator and
    discriminator (word, position and segment tables *and* the LayerNorm, as the original's AUTO_REUSE scope).
    Modern backbone: word embeddings only (positions are rotations inside attention) and a LayerNorm without bias."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.modern = cfg.modern
        self.word = nn.Embedding(cfg.vocab_size, cfg.embedding_size)  # (V, E); also the generator's output layer
        if not self.modern:
            self.position = nn.Embedding(cfg.max_position_embeddings, cfg.embedding_size)  # (P, E), learned
            self.segment = nn.Embedding(cfg.type_vocab_size, cfg.embedding_size)  # (2, E)
        self.norm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps, bias=not self.modern)
        self.drop = Dropout(cfg.hidden_dropout)

    def tables(self) -> tuple[torch.Tensor, ...]:
        """word (V, E), position (P, E), segment (2, E), LayerNorm weight (E,) and bias (E,); modern: word and
        LayerNorm weight."""
        if self.modern:
            return self.word.weight, self.norm.weight
        return self.word.weight, self.position.weight, self.segment.weight, self.norm.weight, self.norm.bias

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        return self.embed(self.tables(), input_ids, segment_ids, packing)

    def embed(self, tables: tuple[torch.Tensor, ...], input_ids: torch.Tensor, segment_ids: torch.Tensor,
              packing: Packing | None) -> torch.Tensor:
        if packing is not None:  # only the real tokens: (S,) ids and segments
            input_ids = input_ids.flatten()[packing.index]
            segment_ids = segment_ids.flatten()[packing.index]
        if self.modern:
            word, norm_weight = tables
            x = F.embedding(input_ids, word)  # (B, T, E) or (S, E)
            return self.drop(F.layer_norm(x, (x.shape[-1],), norm_weight, None, self.norm.eps))
        word, position, segment, norm_weight, norm_bias = tables
        # positions in the padded rows: (T,), or (S,) packed
        pos = torch.arange(input_ids.shape[1], device=input_ids.device) if packing is None else packing.index % packing.seq_len
        x = F.embedding(input_ids, word) + F.embedding(pos, position) + F.embedding(segment_ids, segment)  # (B, T, E) or (S, E)
        return self.drop(F.layer_norm(x, (x.shape[-1],), norm_weight, norm_bias, self.norm.eps))


class DisentangledEmbeddings(nn.Module):
    """Gradient-disentangled embedding sharing (DeBERTa-v3, He et al. 2021): the discriminator reads the
    generator's embedding block through a stop-gradient, plus a residual block of its own that starts at zero:
        tables_D = sg(tables_G) + delta
    so the generator's MLM loss alone trains the shared tables, and the RTD loss only `delta`. The pull of the
    two losses on one table (the "tug of war" of plain sharing) is gone, yet the discriminator starts from, and
    keeps, what the generator learned. Exports and fine-tuning see the sum (`objective.encoder_weights`)."""

    def __init__(self, cfg: ModelConfig, base: Embeddings):
        super().__init__()
        self.delta = Embeddings(cfg)  # zeroed by Electra after init: the sum starts equal to the generator's
        self._base = (base,)  # a tuple, not a submodule: the generator owns and saves these tensors

    def tables(self) -> tuple[torch.Tensor, ...]:
        return tuple(b.detach() + d for b, d in zip(self._base[0].tables(), self.delta.tables()))

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        return self.delta.embed(self.tables(), input_ids, segment_ids, packing)


class Rope(NamedTuple):
    """Rotary position embeddings (Su et al. 2021) for the modern backbone: cos and signed sin of position x
    frequency, fp32, (N, 1, 1, K) for the N = T (padded) or S (packed) positions of a batch; the K / 2
    frequencies theta^(-2j / K) appear twice, and the first half of `sin` is negated (see `rotate`)."""
    cos: torch.Tensor
    sin: torch.Tensor


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float) -> Rope:
    """The `Rope` of integer positions (N,): angle[t, j] = position_t * theta^(-2j / K)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq  # (N, K / 2)
    sin = angles.sin()
    cos, sin = torch.cat((angles.cos(),) * 2, dim=-1), torch.cat((-sin, sin), dim=-1)  # (N, K)
    return Rope(cos[:, None, None], sin[:, None, None])


def rotate(qk: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Queries and keys (N, 2, H, K) or (B, N, 2, H, K) turned pair by pair, (x_j, x_{j + K/2}), by their
    position's angle, in fp32 as ModernBERT: x cos + [-x2, x1] sin, where [-x2, x1] sin = roll(x, K/2) x signed sin."""
    x = qk.float()
    return (x * rope.cos + x.roll(x.shape[-1] // 2, dims=-1) * rope.sin).to(qk.dtype)


class Attention(nn.Module):
    """Multi-head self-attention; padded keys are masked out. SDPA (fused kernels) wherever it can run
    fused: always on CUDA, and on CPU without attention dropout (eval). CPU training with attention
    dropout would run SDPA's unfused math path anyway (its CPU flash kernel has no dropout), so there the
    same math is spelled out with the faster dropout above and the original's additive -10000 mask
    (SDPA's boolean mask is -inf; the two differ by < 1e-30 after the softmax)."""

    def __init__(self, cfg: ModelConfig, window: int | None = None):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=not cfg.modern)  # q, k, v stacked: (3D, D)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=not cfg.modern)
        self.attn_dropout = cfg.attention_dropout
        self.window = window  # sliding-window layer: keys at most this many tokens away (the padded path's mask says so)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None, packing: Packing | None = None,
                rope: Rope | None = None) -> torch.Tensor:
        p = self.attn_dropout if self.training else 0.0
        D = x.shape[-1]
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, D // self.num_heads))  # (B, T, 3, H, K) or (S, 3, H, K)
        q, k, v = qkv.unbind(-3)  # 3 x (B, T, H, K) or (S, H, K)
        if rope is not None:  # the modern backbone turns queries and keys by their positions, both in one op
            q, k = rotate(qkv[..., :2, :, :], rope).unbind(-3)
        if packing is not None:  # x: (S, D), rows end to end; q, k, v: (S, H, K)
            return self.proj(varlen_attention(q, k, v, packing, p, self.window).flatten(1))
        B, T, D = x.shape
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, K)
        if p > 0.0 and x.device.type == "cpu":
            y = _attention_math(q, k, v, key_mask, p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p)
        # softmax(q k^T / sqrt(K) + mask) v: (B, H, T, K)
        y = y.transpose(1, 2).reshape(B, T, D)  # heads side by side again: (B, T, D)
        return self.proj(y)


def _attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                    p: float) -> torch.Tensor:
    """dropout(softmax(q k^T / sqrt(K) + mask)) v in the dtype of q (bf16 under autocast, as SDPA)."""
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-1, -2))  # (B, H, T, T)
    if key_mask is not None:  # in place (matmul keeps no output for backward) and additive: no backward pass
        scores.add_(torch.zeros(key_mask.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~key_mask, -10000.0))
    probs = torch.softmax(scores, dim=-1, dtype=scores.dtype)
    return torch.matmul(dropout(probs, p, True), v.to(probs.dtype))


class MLP(nn.Module):
    """D -> F -> D with the exact (erf) GELU, as BERT and the original ELECTRA. Modern: GeGLU without biases,
    D -> 2F (a value and a gate) -> GELU(value) * gate -> D, one and a half times the matmuls for the same F."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.glu = cfg.modern
        self.fc = nn.Linear(cfg.hidden_size, (2 if self.glu else 1) * cfg.intermediate_size, bias=not self.glu)
        self.proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=not self.glu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.glu:
            value, gate = self.fc(x).chunk(2, dim=-1)  # 2 x (B, T, F)
            return self.proj(F.gelu(value) * gate)
        return self.proj(F.gelu(self.fc(x)))  # (B, T, D)


class Block(nn.Module):
    """Post-LN: x = LN(x + drop(attn(x))); x = LN(x + drop(mlp(x))).
    Modern, pre-LN: x = x + drop(attn(LN(x))); x = x + drop(mlp(LN(x))); the first block's LN is the embeddings'
    (ModernBERT's), and the encoder norms the last block's output.

    Under autocast LayerNorm computes and returns fp32, so the residual stream x between blocks is fp32 (the
    default). `low_precision_residual` (set by `set_residual`) stores each LayerNorm's output in the autocast
    dtype instead: the norm still computes in fp32, but every read and write of x moves half the bytes (on an
    H100: x1.00-1.16 with CUDA graphs, x0.92 eager; docs/fidelity.md)."""

    low_precision_residual = False

    def __init__(self, cfg: ModelConfig, index: int = 0):
        super().__init__()
        self.pre_norm, self.local = cfg.modern, cfg.is_local(index)
        self.attn = Attention(cfg, cfg.local_attention // 2 if self.local else None)
        norm = functools.partial(nn.LayerNorm, cfg.hidden_size, eps=cfg.layer_norm_eps, bias=not cfg.modern)
        self.norm1 = nn.Identity() if self.pre_norm and index == 0 else norm()
        self.mlp = MLP(cfg)
        self.norm2 = norm()
        self.drop = Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None, packing: Packing | None = None,
                rope: Rope | None = None) -> torch.Tensor:
        if self.pre_norm:
            x = self.stored(x + self.drop(self.attn(self.norm1(x), key_mask, packing, rope)))
            return self.stored(x + self.drop(self.mlp(self.norm2(x))))
        x = self.stored(self.norm1(x + self.drop(self.attn(x, key_mask, packing))))
        return self.stored(self.norm2(x + self.drop(self.mlp(x))))

    def stored(self, x: torch.Tensor) -> torch.Tensor:
        """x as the residual stream keeps it under autocast: as computed (post-LN: what the LayerNorm returns;
        pre-LN: the sum, cast to fp32), or in the autocast dtype (`low_precision_residual`)."""
        if torch.is_autocast_enabled(x.device.type):
            if self.low_precision_residual:
                return x.to(torch.get_autocast_dtype(x.device.type))
            if self.pre_norm:
                return x.float()
        return x


def set_residual(model: nn.Module, dtype: str) -> None:
    """The residual stream's dtype under autocast for every block of `model`: "fp32" (autocast's) or "bf16"
    (`Block.low_precision_residual`). Without autocast the stream is fp32 either way."""
    if dtype not in ("fp32", "bf16"):
        raise ValueError(f"residual dtype must be 'fp32' or 'bf16', got {dtype!r}")
    for m in model.modules():
        if isinstance(m, Block):
            m.low_precision_residual = dtype == "bf16"


def set_activation_checkpointing(model: nn.Module, on: bool) -> None:
    """Every Encoder of `model` keeps only each block's input during training and recomputes the block in the
    backward pass (`--activation-checkpointing`): activation memory of one block instead of L, for about a third
    more compute. The recomputation replays the same dropout masks (torch restores the RNG state), so the
    gradients are the ones without it."""
    for m in model.modules():
        if isinstance(m, Encoder):
            m.checkpointing = on


class Encoder(nn.Module):
    """Embeddings (owned or shared), an E -> D projection when the widths differ (never shared: each model
    has its own, as the original), and L blocks. Returns the final hidden states (B, T, D); with a `Packing`
    the blocks see only the real tokens (S, D), and pad slots of the output are zero. `direction` "ltr" / "rtl":
    causal attention, each position reading only itself and the tokens to its left / right (Electric's towers).
    `checkpointing` (set_activation_checkpointing): the blocks recompute their activations in the backward pass."""

    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | DisentangledEmbeddings | None = None,
                 direction: str | None = None):
        super().__init__()
        if direction not in (None, "ltr", "rtl"):
            raise ValueError(f"direction must be None, 'ltr' or 'rtl', got {direction!r}")
        self.cfg, self.direction = cfg, direction
        self.embeddings = embeddings if embeddings is not None else Embeddings(cfg)
        E = cfg.embedding_size
        self.project = nn.Linear(E, cfg.hidden_size, bias=not cfg.modern) if E != cfg.hidden_size else None
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, bias=False) if cfg.modern else None
        self.checkpointing = False

    def run_block(self, block: Block, *args: object) -> torch.Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None, packing: Packing | None = None) -> torch.Tensor:
        if self.direction is not None:
            packing = None  # causal masks run on the padded batch
        x = self.embeddings(input_ids, segment_ids, packing)  # (B, T, E), or (S, E) packed
        if self.project is not None:
            x = self.project(x)  # (B, T, D) or (S, D)
        if packing is not None:
            ropes = self.ropes(packing.index % packing.seq_len)  # the packed tokens' positions in their rows
            for block in self.blocks:
                x = self.run_block(block, x, None, packing, ropes[block.local])
            x = self.final(x)
            B, T = input_ids.shape
            return x.new_zeros(B * T, x.shape[-1]).index_copy(0, packing.index, x).view(B, T, -1)  # (B, T, D)
        # (B, 1, 1, T): every query may look at every real key; None when nothing is padded (faster kernels).
        # Whether a batch is unpadded is only asked on CPU, where it costs no device sync.
        if attention_mask is not None and attention_mask.device.type == "cpu" and not torch.compiler.is_compiling() \
                and bool(attention_mask.all()):
            attention_mask = None
        key_mask = None if attention_mask is None else attention_mask[:, None, None, :]
        if self.direction is not None:  # (B or 1, 1, T, T): key j <= query i (ltr) or j >= i (rtl), and real
            T = input_ids.shape[1]
            order = torch.ones(T, T, dtype=torch.bool, device=input_ids.device)
            causal = order.tril() if self.direction == "ltr" else order.triu()
            key_mask = causal[None, None] if key_mask is None else key_mask & causal
            key_mask = key_mask | torch.eye(T, dtype=torch.bool, device=input_ids.device)  # no row left empty (pads)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        masks = {False: key_mask}
        if self.cfg.local_attention:  # (B or 1, 1, T, T): also keys at most local_attention / 2 tokens away
            band = ((positions[:, None] - positions[None, :]).abs() <= self.cfg.local_attention // 2)[None, None]
            eye = torch.eye(len(positions), dtype=torch.bool, device=band.device)  # a pad slot far from every real
            masks[True] = band if key_mask is None else key_mask & band | eye  # token keeps itself: no keyless row
        ropes = self.ropes(positions)
        for block in self.blocks:
            x = self.run_block(block, x, masks[block.local], None, ropes[block.local])
        return self.final(x)

    @property
    def head_dim(self) -> int:
        return self.cfg.hidden_size // self.cfg.num_heads

    def ropes(self, positions: torch.Tensor) -> dict[bool, Rope | None]:
        """The rotary tables of `positions` for global (False) and sliding-window (True) layers; None without."""
        c = self.cfg
        if not c.modern:
            return {False: None}
        ropes = {False: rope_tables(positions, self.head_dim, c.rope_theta)}
        if c.local_attention:
            ropes[True] = rope_tables(positions, self.head_dim, c.local_rope_theta)
        return ropes

    def final(self, x: torch.Tensor) -> torch.Tensor:
        """The modern backbone's last LayerNorm (pre-LN leaves the residual sum un-normed); identity otherwise."""
        return x if self.final_norm is None else self.final_norm(x)


class GeneratorHead(nn.Module):
    """MLM head: dense(D_gen -> E) -> GELU -> LayerNorm -> logits against the word-embedding table (tied,
    as the original always does) plus a per-token bias. Runs only on the N masked slots of each row,
    never on all T positions: the V-wide projection is the most expensive matmul of the generator."""

    def __init__(self, cfg: ModelConfig, embedding_size: int):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, embedding_size)
        self.norm = nn.LayerNorm(embedding_size, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))  # (V,)

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.gelu(self.dense(hidden)))  # (..., E)
        return F.linear(h, word_embeddings, self.bias)  # (..., V)


class DiscriminatorHead(nn.Module):
    """RTD head: dense(D -> D) -> GELU -> dense(D -> 1): one logit per token, > 0 means 'replaced'."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.dense(hidden))).squeeze(-1)  # (B, T)


class TwoTowerGenerator(nn.Module):
    """Electric's generator, a cloze model q(x_t | all other tokens) at every position of the *unmasked* text: a
    left-to-right and a right-to-left encoder (causal attention) of the generator's size, read at t - 1 and t + 1,
    side by side, through an MLM head (input width 2 x D_gen) tied to the word table. Position 0 ([CLS]) reads
    the towers' wrapped-around last states; it is never a candidate."""

    def __init__(self, cfg: ModelConfig, embedding_size: int, embeddings: Embeddings | None = None):
        super().__init__()
        self.ltr = Encoder(cfg, embeddings=embeddings, direction="ltr")
        self.rtl = Encoder(cfg, embeddings=self.ltr.embeddings, direction="rtl")  # one embedding block for both
        self.head = GeneratorHead(dataclasses.replace(cfg, hidden_size=2 * cfg.hidden_size), embedding_size)

    @property
    def embeddings(self) -> Embeddings:  # a view, not a second registration: saved under ltr.embeddings only
        return self.ltr.embeddings

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                word_embeddings: torch.Tensor) -> torch.Tensor:
        left = self.ltr(input_ids, segment_ids, attention_mask).roll(1, dims=1)  # left[:, t] saw tokens < t
        right = self.rtl(input_ids, segment_ids, attention_mask).roll(-1, dims=1)  # right[:, t] saw tokens > t
        return self.head(torch.cat([left, right], dim=-1), word_embeddings)  # logits (B, T, V)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Truncated normal (+-2 std) for embeddings and dense layers, zero biases, unit LayerNorm: the
    original's initializer. Two layers the original builds without an initializer keep TF's default, Glorot
    uniform: the discriminator's final 1-unit layer and each encoder's `embeddings_project` (E -> D)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, DiscriminatorHead):
            nn.init.xavier_uniform_(m.out.weight)
        elif isinstance(m, Encoder) and m.project is not None:
            nn.init.xavier_uniform_(m.project.weight)


def count_params(module: nn.Module) -> int:
    """Parameters of a module, each shared tensor counted once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
