"""Unpadded batches: the real tokens of a padded (B, T) batch laid end to end, and attention within each row.

The training loop packs each batch on the CPU (`pack`), and the encoders then run every matmul, norm and
dropout on the S real tokens only (model.py); attention runs per row (`varlen_attention`: flash attention's
variable-length kernel on CUDA).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class Packing(NamedTuple):
    """Where the real tokens of a padded (B, T) batch go when the padding is dropped."""
    index: torch.Tensor  # (S,) flat slots b * T + t of the non-pad tokens, row by row
    cu_seqlens: torch.Tensor  # (B + 1,) int32: row b's tokens are packed[cu[b]:cu[b + 1]]
    seq_len: int  # T: the padded width (positions are index % T) and a bound on every row's length

    def to(self, device: torch.device) -> Packing:
        return Packing(self.index.to(device, non_blocking=True), self.cu_seqlens.to(device, non_blocking=True),
                       self.seq_len)

    def pin_memory(self) -> Packing:
        return Packing(self.index.pin_memory(), self.cu_seqlens.pin_memory(), self.seq_len)


def pack(attention_mask: torch.Tensor) -> Packing:
    """The `Packing` of a (B, T) bool mask. `nonzero` waits for the device, so the training loop calls this on
    the CPU copy of the mask before moving the batch. A row with holes packs its real tokens in order, which
    attends exactly as masking the holes' keys (their own outputs are never read)."""
    lengths_B = attention_mask.sum(dim=1, dtype=torch.int32)
    cu = F.pad(lengths_B.cumsum(0, dtype=torch.int32), (1, 0))
    return Packing(attention_mask.flatten().nonzero().squeeze(1), cu, attention_mask.shape[1])


def varlen_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: Packing, p: float,
                     window: int | None = None) -> torch.Tensor:
    """Attention within each packed row: q, k, v (S, H, K) -> (S, H, K); `window`: only keys at most that many
    tokens away (a sliding-window layer). On CUDA in bf16/fp16 this is flash attention's variable-length kernel
    (with its fused dropout and window; autograd has its backward). Elsewhere (CPU, fp32) the rows are scattered
    into a padded (B, H, T, K) batch for `scaled_dot_product_attention` and gathered back: the same function,
    without the saving."""
    if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
        cu, T = packing.cu_seqlens, packing.seq_len
        return torch.ops.aten._flash_attention_forward(q, k, v, cu, cu, T, T, p, False, False, window_size_left=window,
                                                       window_size_right=window)[0]
    B, T = packing.cu_seqlens.shape[0] - 1, packing.seq_len
    _S, H, K = q.shape

    def padded(t: torch.Tensor) -> torch.Tensor:  # (S, H, K) -> (B, H, T, K), zeros at pads
        return t.new_zeros(B * T, H, K).index_copy(0, packing.index, t).view(B, T, H, K).transpose(1, 2)

    key_mask = torch.zeros(B * T, dtype=torch.uint8, device=q.device).index_fill_(0, packing.index, 1).bool().view(B, 1, 1, T)
    if window is not None:  # (B, 1, T, T)
        t = torch.arange(T, device=q.device)
        key_mask = key_mask & ((t[:, None] - t[None, :]).abs() <= window) | torch.eye(T, dtype=torch.bool, device=q.device)
    y = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=key_mask, dropout_p=p)
    return y.transpose(1, 2).reshape(B * T, H, K)[packing.index]
