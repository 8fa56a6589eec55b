"""Whole-word masking (`--masking whole_word`): the mask step choosing words, not word pieces.

ELECTRA draws each masked slot independently among the maskable tokens, so "##ing" is often masked while "walk"
stays visible and gives it away. Whole-word masking (BERT's later release) masks every piece of a chosen word
together. A word is a maskable token plus the `##` continuations right after it. The tokenizer splits Chinese into
single characters, so there a word is one character: the segmenter-based masking of Chinese BERT-wwm (Cui et al.,
2019) is not implemented.

Per row, with k = the token budget `mask_tokens` uses (mask_prob x non-pad tokens, at most N slots):

    1. every word gets one uniform score (its first piece's number); other tokens sort last
    2. tokens are sorted by their word's score, stably, so each word's pieces stay together and in order
    3. the slots take the longest run of whole words from the front of that order that fits in k tokens

So words are drawn without replacement, and a row may mask a few tokens under k where the next word would not
fit (BERT skips such a word and tries the next; taking a prefix keeps this one vectorised sort). The slots keep
the original's layout: (B, N) positions, the first L weighted 1, the rest pointing at position 0 with weight 0.
Dimensions: B batch, T tokens per row, N masked slots per row, V vocab.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def continuation_table(vocab: Mapping[str, int], vocab_size: int) -> torch.Tensor:
    """(V,) bool: True for the word pieces that continue a word (`##` prefix); ids past the vocab file (a vocab
    padded to a multiple of 64) never do."""
    table = torch.zeros(vocab_size, dtype=torch.bool)
    ids = [i for token, i in vocab.items() if token.startswith("##") and len(token) > 2 and i < vocab_size]
    table[ids] = True
    return table


def choose_whole_words(input_ids: torch.Tensor, candidates_BT: torch.Tensor, continues_V: torch.Tensor,
                       k_B: torch.Tensor, n_slots: int, u_word_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions_BN, weights_BN) for whole words (module docstring). `candidates_BT`: the maskable tokens;
    `k_B`: each row's token budget (<= n_slots <= T); `u_word_BT`: U[0, 1) numbers, one per token."""
    B, T = input_ids.shape
    t_BT = torch.arange(T, device=input_ids.device).expand(B, T)
    # a word starts at a candidate that is not the continuation of the candidate before it
    previous_BT = F.pad(candidates_BT[:, :-1], (1, 0), value=False)
    starts_BT = candidates_BT & ~(continues_V[input_ids] & previous_BT)
    start_of_BT = torch.where(starts_BT, t_BT, -1).cummax(dim=1).values  # each token's word start (-1: none yet)
    score_BT = u_word_BT.gather(1, start_of_BT.clamp_min(0))
    score_BT = torch.where(candidates_BT, score_BT, 2.0)  # not maskable: after every word
    order_BT = torch.sort(score_BT, dim=1, stable=True).indices  # equal scores keep position order: no interleaving
    word_BT, cand_BT = start_of_BT.gather(1, order_BT), candidates_BT.gather(1, order_BT)
    # in that order, a word ends where the next token is not a piece of the same word
    same_next_BT = F.pad(cand_BT[:, 1:] & (word_BT[:, 1:] == word_BT[:, :-1]), (0, 1), value=False)
    length_BT = torch.where(cand_BT & ~same_next_BT, t_BT + 1, 0)  # tokens taken if the run stops after this word
    taken_B = torch.where(length_BT <= k_B[:, None], length_BT, 0).amax(dim=1)
    weights_BN = (torch.arange(n_slots, device=input_ids.device)[None, :] < taken_B[:, None]).float()
    positions_BN = order_BT[:, :n_slots] * weights_BN.long()  # unused slots -> position 0, never written
    return positions_BN, weights_BN
