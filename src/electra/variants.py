"""The objectives the paper and the original code compare ELECTRA with, as losses on the same tensors:

    Replace MLM and All-Tokens MLM  the paper's Table 5: the discriminator is a masked LM on the corrupted text
                                    (Replace MLM's loss is the generator's, `objective.mlm_loss`, on its logits)
    Electric                        the original code's electric_objective (Clark et al., EMNLP 2020): the
                                    discriminator is an energy-based cloze model trained by noise-contrastive
                                    estimation against a two-tower generator (model.TwoTowerGenerator)

`objective.Electra` runs them in its mask -> generate -> sample -> discriminate -> loss order.
Dimensions: B batch, T tokens per row, N masked slots per row, V vocab.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


class LMLoss(NamedTuple):
    loss: torch.Tensor  # mean negative log-likelihood of the original tokens
    correct: torch.Tensor  # tokens whose most likely prediction is the original
    count: torch.Tensor  # tokens the loss covers


def all_tokens_mlm_loss(logits_BTV: torch.Tensor, gate_BT: torch.Tensor, input_ids: torch.Tensor,
                        corrupted_ids: torch.Tensor, attention_mask: torch.Tensor) -> LMLoss:
    """Table 5's All-Tokens MLM: predict every token of the corrupted input, with a copy mechanism,
        p(x_t) = D_t 1[x_t = input_t] + (1 - D_t) softmax(logits_t)[x_t],   D_t = sigmoid(-gate_t),
    where the gate's logit > 0 means "replaced", as the RTD head's. Mean -log p(original) over non-pad tokens."""
    logp_BTV = F.log_softmax(logits_BTV.float(), dim=-1)
    log_copy, log_gen = F.logsigmoid(-gate_BT.float()), F.logsigmoid(gate_BT.float())
    from_lm = log_gen + logp_BTV.gather(-1, input_ids[..., None]).squeeze(-1)
    logp_BT = torch.where(corrupted_ids == input_ids, torch.logaddexp(log_copy, from_lm), from_lm)
    w = attention_mask.float()
    loss = -(logp_BT * w).sum() / (w.sum() + 1e-6)
    with torch.no_grad():  # the mixture's mode: the input token (copy mass + its LM mass) or the LM's mode
        top_BT, mode_BT = logp_BTV.max(dim=-1)
        p_input = log_copy.exp() + log_gen.exp() * logp_BTV.gather(-1, corrupted_ids[..., None]).squeeze(-1).exp()
        pred_BT = torch.where(p_input >= log_gen.exp() * top_BT.exp(), corrupted_ids, mode_BT)
        correct = ((pred_BT == input_ids).float() * w).sum()
    return LMLoss(loss, correct, w.sum())


def cloze_loss(logits_BTV: torch.Tensor, input_ids: torch.Tensor, candidates_BT: torch.Tensor) -> torch.Tensor:
    """Electric's generator loss: cross-entropy of q(x_t | every other token) against the original token at every
    candidate position (non-pad, not [CLS]/[SEP]/[MASK]), mean over them."""
    ce_BT = F.cross_entropy(logits_BTV.float().flatten(0, 1), input_ids.flatten(), reduction="none").view_as(input_ids)
    w = candidates_BT.float()
    return (ce_BT * w).sum() / (w.sum() + 1e-6)


def electric_logits(energy_BT: torch.Tensor, logits_BTV: torch.Tensor, corrupted_ids: torch.Tensor,
                    mask_prob: float) -> torch.Tensor:
    """Noise-contrastive estimation's logit that a token is noise: with the data density exp(-E(x_t)) and the noise
    q(x_t), drawn for a mask_prob share of positions, P(noise | x_t) = k q / (exp(-E) + k q), k = p / (1 - p), so
        logit = E(x_t) + log q(x_t) + log k,
    q read at the token the discriminator sees, through a stop-gradient (the noise is not trained by this loss)."""
    log_q_BT = F.log_softmax(logits_BTV.detach().float(), dim=-1).gather(-1, corrupted_ids[..., None]).squeeze(-1)
    return energy_BT.float() + log_q_BT + math.log(mask_prob / (1.0 - mask_prob))
