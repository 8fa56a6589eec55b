"""Replaced-token detection, in the paper's order: mask -> generate -> sample -> discriminate -> loss.

Each step is a small function returning a NamedTuple; `Electra` owns the generator, the discriminator,
their shared embeddings and the two heads, and runs the steps (electra-spec 1.2-1.6, checklist 7).
The same module runs the plain MLM objective (the paper's BERT baseline): mask -> generate -> loss, and the
variants the paper and the original code compare ELECTRA with, on the same path: fixed uniform / unigram
generators, the RTD loss on masked slots only, Replace MLM, All-Tokens MLM and Electric (their losses are in
`variants.py`, Electric's two-tower generator in `model.py`).

Dimensions: B batch, T tokens per row, N masked slots per row, V vocab. Suffixes name shapes (ids_BT).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from electra.config import ModelConfig, PretrainConfig, generator_config
from electra.model import (
    DiscriminatorHead,
    DisentangledEmbeddings,
    Encoder,
    GeneratorHead,
    TwoTowerGenerator,
    init_weights,
)
from electra.packing import Packing
from electra.sampler import BLOCK, from_cdf, gumbel_max, inverse_cdf, padded, uniform
from electra.variants import LMLoss, all_tokens_mlm_loss, cloze_loss, electric_logits
from electra.word_masking import choose_units, span_lengths, span_starts, word_starts


class SpecialTokens(NamedTuple):
    pad: int
    cls: int
    sep: int
    mask: int


class Masked(NamedTuple):
    input_ids: torch.Tensor  # (B, T) the generator's input: [MASK] at ~85% of the chosen slots
    positions: torch.Tensor  # (B, N) chosen positions; unused slots point at 0 ([CLS]) with weight 0
    weights: torch.Tensor  # (B, N) 1.0 for the first k slots of each row, 0.0 after
    targets: torch.Tensor  # (B, N) the original tokens at those positions


class Noise(NamedTuple):
    """The uniform numbers that one batch's masking and sampling consume. Training draws them from torch's
    generator inside the step; held-out evaluation gives every row its own, from the row's index, so that a
    row is masked and sampled alike whatever batch, rank or world size it is evaluated in."""
    position: torch.Tensor  # (B, N) float32 in [0, 1): which maskable token each slot takes; whole-word masking
    # reads one number per token instead, (B, >= T), each word taking its first piece's; span masking two,
    # (B, >= 2T): the scores, then one per word for the span lengths
    keep: torch.Tensor  # (B, N) float32 in [0, 1): the slot's token becomes [MASK] where this is < mask_token_prob
    sample: torch.Tensor  # (B, N, 1) float64 in [0, 1): the inverse-CDF draw of the slot's sample


class Sampled(NamedTuple):
    tokens: torch.Tensor  # (B, N) the generator's samples
    corrupted_ids: torch.Tensor  # (B, T) original ids with the samples written in: the discriminator's input
    labels: torch.Tensor  # (B, T) bool, True where the token differs from the original ("replaced")
    argmax: torch.Tensor | None = None  # (B, N) the generator's most likely token, when the sampler computed it


class Losses(NamedTuple):
    total: torch.Tensor  # gen_weight * mlm + disc_weight * rtd: what is backpropagated
    mlm: torch.Tensor  # generator cross-entropy, mean over masked slots (Electric trains on all candidates)
    rtd: torch.Tensor  # the discriminator's loss: BCE, mean over non-pad tokens (its LM loss for replace_mlm /
    # all_tokens_mlm; 0 for the MLM objective)


class Stats(NamedTuple):
    """Detached tensors to sum over batches; ratios are taken only when logging (no device sync per step)."""
    masked: torch.Tensor  # number of weighted masked slots
    gen_correct: torch.Tensor  # argmax == original, over masked slots
    sampled_correct: torch.Tensor  # sample == original, over masked slots
    tokens: torch.Tensor  # non-pad tokens
    replaced: torch.Tensor  # tokens whose label is "replaced"
    disc_correct: torch.Tensor  # discriminator right (logit > 0 <=> replaced)
    true_pos: torch.Tensor  # predicted replaced and replaced
    pred_pos: torch.Tensor  # predicted replaced
    lm_correct: torch.Tensor  # objective replace_mlm / all_tokens_mlm: tokens the discriminator's LM predicts right
    lm_count: torch.Tensor  # the tokens its LM loss covers (0 for the other objectives)


class StepOutput(NamedTuple):
    losses: Losses
    stats: Stats
    disc_logits: torch.Tensor | None  # (B, T) for AUC and `electra detect`; None for MLM
    labels: torch.Tensor | None  # (B, T) bool


# ---------------------------------------------------------------------------------------------------
# 1. mask


def maskable(input_ids: torch.Tensor, attention_mask: torch.Tensor, special: SpecialTokens) -> torch.Tensor:
    """(B, T) bool: the tokens masking may choose, non-pad and not [CLS]/[SEP]/[MASK] (the original's candidates)."""
    return attention_mask & (input_ids != special.cls) & (input_ids != special.sep) & (input_ids != special.mask)


def at_slots(x: torch.Tensor, positions_BN: torch.Tensor) -> torch.Tensor:
    """x (B, T) or (B, T, D) read at the masked slots: (B, N) or (B, N, D)."""
    index = positions_BN if x.dim() == 2 else positions_BN[..., None].expand(-1, -1, x.shape[-1])
    return x.gather(1, index)


def slot_hits(pred_BN: torch.Tensor, masked: Masked) -> torch.Tensor:
    """How many of the weighted masked slots `pred_BN` gets right (the original token)."""
    return ((pred_BN == masked.targets).float() * masked.weights).sum()


def any_slot(positions_BN: torch.Tensor, flags_BN: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) bool: True at a position if any slot pointing at it is flagged (a position can be drawn twice);
    counted in int32 because CUDA has no bool scatter."""
    counts = torch.zeros(positions_BN.shape[0], T, dtype=torch.int32, device=positions_BN.device)
    return counts.scatter_add_(1, positions_BN, flags_BN.int()) > 0


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special: SpecialTokens,
                max_predictions: int, mask_prob: float, mask_token_prob: float,
                rng: torch.Generator | None = None, noise: Noise | None = None,
                continues_V: torch.Tensor | None = None, span: tuple[float, int] | None = None) -> Masked:
    """Choose k = max(1, min(N, round(mask_prob * n_nonpad))) slots per row, uniformly *with replacement*
    among non-pad tokens other than [CLS]/[SEP]/[MASK]; replace 85% of them by [MASK], keep the rest
    (never a random token). As the original's pretrain_helpers.mask, so duplicates are possible: the input
    changes once but the generator loss counts the slot twice. N is fixed so shapes are static.
    `continues_V` (V,) bool, the `##` pieces: whole words instead, without replacement, or with `span` (p,
    max words) spans of whole words (word_masking.py).
    `noise`: the position and keep numbers to use (`Noise`); by default they are drawn from `rng`."""
    B, T = input_ids.shape
    N, device = max_predictions, input_ids.device
    width = N if continues_V is None else 2 * T if span else T  # words: a number per token, spans: 2
    u_pos = noise.position[:, :width] if noise is not None else uniform((B, width), rng, device)
    u_keep_BN = noise.keep if noise is not None else uniform((B, N), rng, device)
    candidates_BT = maskable(input_ids, attention_mask, special)
    count_BT = candidates_BT.long().cumsum(dim=1)
    n_cand_B = count_BT[:, -1:]  # (B, 1)
    n_nonpad_B = attention_mask.sum(dim=1).float()  # counts [CLS]/[SEP] too, as the original does
    k_B = torch.round(n_nonpad_B * mask_prob).clamp(1, N) * (n_cand_B[:, 0] > 0)  # no candidate: k = 0
    if continues_V is not None:
        words_BT = word_starts(input_ids, candidates_BT, continues_V)
        if span is None:
            positions_BN, weights_BN = choose_units(words_BT, candidates_BT, k_B, N, u_pos)
        else:  # spans first; what they leave of the budget, whole words
            spans_BT = span_starts(words_BT, candidates_BT, span_lengths(u_pos[:, T:2 * T], *span))
            positions_BN, weights_BN = choose_units(spans_BT, candidates_BT, k_B, N, u_pos[:, :T],
                                                    fill_starts_BT=words_BT)
    else:
        # a uniform draw among a row's c candidates: the j-th of them, j = floor(u * c), is the first position
        # at which the running count of candidates exceeds j
        j_BN = (u_pos * n_cand_B).long().clamp_max_((n_cand_B - 1).clamp_min(0))
        positions_BN = torch.searchsorted(count_BT, j_BN + 1).clamp_max_(T - 1)
        weights_BN = (torch.arange(N, device=device)[None, :] < k_B[:, None]).float()
        positions_BN = positions_BN * weights_BN.long()  # unused slots -> position 0, never written
    targets_BN = input_ids.gather(1, positions_BN)

    use_mask_BN = (u_keep_BN < mask_token_prob) & weights_BN.bool()
    # a position drawn twice becomes [MASK] if any of its slots says so (scatter order is otherwise undefined)
    masked_BT = any_slot(positions_BN, use_mask_BN, T)
    masked_ids = torch.where(masked_BT, special.mask, input_ids)
    return Masked(masked_ids, positions_BN, weights_BN, targets_BN)


# ---------------------------------------------------------------------------------------------------
# 2. generate


def generate(generator: Encoder, head: GeneratorHead, word_embeddings: torch.Tensor, masked: Masked,
             segment_ids: torch.Tensor, attention_mask: torch.Tensor | None, packing: Packing | None = None) -> torch.Tensor:
    """The generator reads the masked input; its vocabulary projection runs on the N chosen slots only."""
    hidden_BTD = generator(masked.input_ids, segment_ids, attention_mask, packing)
    return head(at_slots(hidden_BTD, masked.positions), word_embeddings)  # logits (B, N, V)


# ---------------------------------------------------------------------------------------------------
# 3. sample


@torch.no_grad()
def sample_tokens(logits_BNV: torch.Tensor, masked: Masked, input_ids: torch.Tensor, temperature: float,
                  disallow_correct: bool, rng: torch.Generator | None = None, method: str = "multinomial",
                  u: torch.Tensor | None = None) -> Sampled:
    """One sample per masked slot from softmax(logits / temperature) in fp32, outside autograd: the
    discriminator's loss never reaches the generator through the samples (spec 1.4; no straight-through, no
    relaxation). A sample equal to the original is labelled original (paper section 2).

    method="gumbel": the original's Gumbel-max, one uniform per vocabulary entry (B*N*V random numbers).
    method="multinomial" (default): the same distribution by exact inverse-CDF sampling of the softmax, one
    uniform per slot; also returns the argmax of the logits (the generator's accuracy) from the same pass.
    disallow_correct subtracts 1000 from the true token's scaled logit in both, as the original.
    `u` (B, N, 1): the inverse-CDF draws to use (`Noise.sample`); given, the multinomial method is used."""
    argmax = None
    if method == "gumbel" and u is None:
        logits = logits_BNV.float() / temperature
        if disallow_correct:  # the original subtracts 1000 from the true token's logit
            logits = logits.scatter_add(-1, masked.targets[..., None], torch.full_like(logits[..., :1], -1000.0))
        tokens_BN = gumbel_max(logits, rng)
    elif method in ("multinomial", "gumbel"):
        x = logits_BNV
        if disallow_correct:
            x = (x.float() / temperature).scatter_add(-1, masked.targets[..., None],
                                                       torch.full_like(x[..., :1], -1000.0, dtype=torch.float32))
            argmax = logits_BNV.argmax(dim=-1)
            tokens_BN = inverse_cdf((x - x.amax(dim=-1, keepdim=True)).exp_(), rng, u)
        else:
            top, argmax = x.max(dim=-1)  # (B, N): the shift that keeps exp() finite, and the generator's argmax
            if torch.compiler.is_compiling():  # dynamo takes no strided out=; inductor fuses the pad anyway
                V = x.shape[-1]
                buf = torch.nn.functional.pad(x - top.float()[..., None], (0, -(-V // BLOCK) * BLOCK - V),
                                              value=float("-inf"))  # exp(-inf) = 0: zero weight
                buf = (buf / temperature).exp()
                w = buf[..., :V]
            else:
                buf, w = padded(tuple(x.shape), x.device)  # zero tail
                torch.sub(x, top.float()[..., None], out=w)  # in fp32 (bf16 - fp32 promotes), into the buffer
                if temperature != 1.0:
                    w.div_(temperature)
                w.exp_()
            tokens_BN = inverse_cdf(w, rng, u, buffer=buf)
    else:
        raise ValueError(f"sampling must be 'gumbel' or 'multinomial', got {method!r}")
    return corrupt(tokens_BN, masked, input_ids, argmax)


@torch.no_grad()
def sample_fixed(prior_V: torch.Tensor, masked: Masked, input_ids: torch.Tensor, temperature: float,
                 disallow_correct: bool, rng: torch.Generator | None = None, u: torch.Tensor | None = None) -> Sampled:
    """Steps 2-3 without a generator network (objective.generator uniform or unigram): every slot draws from
    one fixed distribution, prior^(1/temperature), one uniform per slot; `disallow_correct` draws from the
    rest of it. Uniform: the original's `uniform_generator` (all-zero logits over the whole vocabulary).
    Unigram: the training split's token frequencies (the paper's Figure 3 baseline). `u` (B, N, 1) as in
    sample_tokens."""
    w_V = prior_V.double() if temperature == 1.0 else prior_V.double() ** (1.0 / temperature)
    u_BN = u.squeeze(-1) if u is not None else uniform(masked.targets.shape, rng, input_ids.device, torch.float64)
    tokens_BN = from_cdf(w_V, w_V.cumsum(0), u_BN, masked.targets if disallow_correct else None)
    return corrupt(tokens_BN, masked, input_ids, w_V.argmax().expand_as(tokens_BN))  # argmax: no host sync


def corrupt(tokens_BN: torch.Tensor, masked: Masked, input_ids: torch.Tensor, argmax: torch.Tensor | None) -> Sampled:
    """The discriminator's input: the original ids with the samples written into the chosen slots."""
    # unused slots write the token already at position 0; duplicates resolve deterministically (largest id)
    tokens_BN = torch.where(masked.weights.bool(), tokens_BN, input_ids[:, :1])
    corrupted = input_ids.scatter_reduce(1, masked.positions, tokens_BN, "amax", include_self=False)
    return Sampled(tokens_BN, corrupted, corrupted != input_ids, argmax)


# ---------------------------------------------------------------------------------------------------
# 4. discriminate and 5. loss


def mlm_loss(logits_BNV: torch.Tensor, masked: Masked) -> torch.Tensor:
    """Cross-entropy summed over weighted slots / (their count + 1e-6): a token-level mean over the batch."""
    ce_BN = F.cross_entropy(logits_BNV.float().flatten(0, 1), masked.targets.flatten(), reduction="none")
    return (ce_BN * masked.weights.flatten()).sum() / (masked.weights.sum() + 1e-6)


def rtd_loss(disc_logits_BT: torch.Tensor, labels_BT: torch.Tensor, attention_mask: torch.Tensor,
             masked: Masked | None = None) -> torch.Tensor:
    """Sigmoid BCE on every non-pad token ([CLS]/[SEP] included), mean over the batch's non-pad tokens.
    `masked` given (objective.rtd_tokens=masked, the paper's "ELECTRA 15%"): on the masked slots only, weighted
    as the generator's loss (a position drawn twice counts twice)."""
    if masked is not None:
        disc_logits_BT, labels_BT = at_slots(disc_logits_BT, masked.positions), at_slots(labels_BT, masked.positions)
        w = masked.weights
    else:
        w = attention_mask.float()
    bce = F.binary_cross_entropy_with_logits(disc_logits_BT.float(), labels_BT.float(), reduction="none")
    return (bce * w).sum() / (w.sum() + 1e-6)


# ---------------------------------------------------------------------------------------------------


class Electra(nn.Module):
    """Generator + discriminator trained jointly. Sharing (spec 1.6):
    `embeddings` both encoders use one Embeddings block (tables and LayerNorm); `none` each its own;
    `all` one encoder serves as both (equal size required), with separate heads; `gdes` the discriminator reads
    the generator's block through a stop-gradient plus a zero-started residual of its own (DeBERTa-v3).
    For objective=mlm the generator is full size and there is no discriminator; for replace_mlm and
    all_tokens_mlm the discriminator is a masked LM (`discriminator_lm_head`, tied to its word table; all_tokens_mlm
    keeps the RTD head as its copy gate). With a fixed generator
    (objective.generator uniform or unigram) there is no generator network: the fakes come from the
    `generator_prior` buffer (V,), token weights saved with the checkpoint."""

    def __init__(self, cfg: PretrainConfig, special: SpecialTokens):
        super().__init__()
        self.cfg, self.special = cfg, special
        o = cfg.objective
        joint = o.joint
        d_cfg: ModelConfig = cfg.model
        g_cfg = generator_config(d_cfg, o.generator_hidden_fraction, o.generator_layers_fraction) if joint else d_cfg
        # the MLM baseline has a generator only; a fixed generator has nothing to share with
        self.sharing = sharing = o.sharing if joint and o.trained_generator else "none"
        self.generator, self.generator_head = None, None
        if sharing == "gdes":  # the generator owns the embedding tables; the discriminator adds its residual to them
            self.generator = Encoder(g_cfg)
            self.discriminator = Encoder(d_cfg, embeddings=DisentangledEmbeddings(d_cfg, self.generator.embeddings))
        else:
            self.discriminator = Encoder(d_cfg) if joint else None
        self.discriminator_head = (DiscriminatorHead(d_cfg) if o.objective in ("electra", "all_tokens_mlm", "electric")
                                   else None)
        self.discriminator_lm_head = (GeneratorHead(d_cfg, d_cfg.embedding_size)
                                      if o.objective in ("replace_mlm", "all_tokens_mlm") else None)
        if not o.trained_generator:
            self.register_buffer("generator_prior", torch.ones(d_cfg.vocab_size))  # uniform until set_prior
        elif o.objective == "electric":  # its towers share the discriminator's embedding block, or own one
            self.generator = TwoTowerGenerator(g_cfg, d_cfg.embedding_size,
                                               self.discriminator.embeddings if sharing == "embeddings" else None)
        elif sharing == "all":
            self.generator = self.discriminator
        elif sharing == "embeddings":
            self.generator = Encoder(g_cfg, embeddings=self.discriminator.embeddings)
        elif sharing == "none":
            self.generator = Encoder(g_cfg)
        if o.trained_generator and o.objective != "electric":  # Electric's cloze head is the generator's own
            self.generator_head = GeneratorHead(g_cfg, d_cfg.embedding_size)
        if o.masking != "token":  # its `##` table, from the vocabulary (set_word_pieces); not saved with
            # the weights, and absent otherwise (DDP would broadcast it every step)
            self.register_buffer("continues", torch.zeros(d_cfg.vocab_size, dtype=torch.bool), persistent=False)
        self.apply_init()

    def apply_init(self) -> None:
        init_weights(self, self.cfg.model.initializer_range)
        if self.discriminator is not None and isinstance(self.discriminator.embeddings, DisentangledEmbeddings):
            for p in self.discriminator.embeddings.delta.parameters():
                nn.init.zeros_(p)

    def set_word_pieces(self, continues_V: torch.Tensor) -> None:
        """Which token ids continue a word (`word_masking.continuation_table`), for --masking whole_word | span."""
        if self.cfg.objective.masking == "token":
            raise ValueError("set_word_pieces is for objective.masking=whole_word or span")
        self.continues.copy_(continues_V.to(self.continues))

    def set_prior(self, counts_V: torch.Tensor) -> None:
        """The unigram generator's token weights (counts; zero = never drawn)."""
        if self.cfg.objective.generator != "unigram":
            raise ValueError("set_prior is for objective.generator=unigram")
        self.generator_prior.copy_(counts_V.to(self.generator_prior))

    @property
    def aliases(self) -> list[str]:
        """State-dict prefixes that name a tensor already saved under another name (the discriminator's, or for
        Electric's towers the left tower's)."""
        if self.cfg.objective.objective == "electric":
            towers = ["generator.ltr.embeddings.", "generator.rtl.embeddings."]
            return towers if self.sharing == "embeddings" else towers[1:]
        return {"all": ["generator."], "embeddings": ["generator.embeddings."]}.get(self.sharing, [])

    def weights(self) -> dict[str, torch.Tensor]:
        """The state dict with every shared tensor once (under its discriminator name): safetensors-ready."""
        return {k: v for k, v in self.state_dict().items() if not any(k.startswith(a) for a in self.aliases)}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not any(k.startswith(a) for a in self.aliases)]
        if missing or unexpected:
            raise KeyError(f"missing {missing[:5]} unexpected {unexpected[:5]}")

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor, attention_mask: torch.Tensor,
                rng: torch.Generator | None = None, packing: Packing | None = None,
                noise: Noise | None = None) -> StepOutput:
        """One joint step on a padded batch. `packing` (packing.pack of the same mask) runs both encoders on
        the real tokens only; the losses and statistics are the same function of the inputs either way.
        `noise`: the masking and sampling draws to use instead of drawing them from `rng` (evaluation)."""
        o = self.cfg.objective
        electric = o.objective == "electric"
        # 1. mask
        masked = mask_tokens(input_ids, attention_mask, self.special, self.cfg.max_predictions,
                             o.mask_prob, o.mask_token_prob, rng, noise,
                             self.continues if o.masking != "token" else None,
                             (o.span_p, o.max_span) if o.masking == "span" else None)
        u = noise.sample if noise is not None else None
        w = masked.weights
        tokens = attention_mask.sum()
        zero = torch.zeros((), device=input_ids.device)
        if self.generator is None:  # 2-3. a fixed distribution stands in for the generator: nothing to train
            sampled = sample_fixed(self.generator_prior, masked, input_ids, o.temperature, o.disallow_correct, rng, u)
            gen_loss, argmax_BN = zero, sampled.argmax
        else:
            # 2. generate (the generator's output layer is the shared word-embedding table)
            word = self.generator.embeddings.word.weight
            if electric:  # q(x_t | every other token) at every position, read from the unmasked text
                cloze_BTV = self.generator(input_ids, segment_ids, attention_mask, word)
                logits_BNV = at_slots(cloze_BTV, masked.positions)
                trained_gen_loss = cloze_loss(cloze_BTV, input_ids, maskable(input_ids, attention_mask, self.special))
            else:
                logits_BNV = generate(self.generator, self.generator_head, word, masked, segment_ids, attention_mask,
                                      packing)
            gen_loss = mlm_loss(logits_BNV, masked)
            if self.discriminator is None:
                stats = Stats(w.sum(), slot_hits(logits_BNV.detach().argmax(-1), masked), zero, tokens.float(), *[zero] * 6)
                return StepOutput(Losses(o.gen_weight * gen_loss, gen_loss, zero), stats, None, None)
            # 3. sample
            sampled = sample_tokens(logits_BNV.detach(), masked, input_ids, o.temperature, o.disallow_correct, rng,
                                    o.sampling, u)
            argmax_BN = sampled.argmax if sampled.argmax is not None else logits_BNV.detach().argmax(-1)
            if electric:  # every sampled slot is noise, even a sample equal to the original
                sampled = sampled._replace(labels=any_slot(masked.positions, w, input_ids.shape[1]))
        # 4. discriminate
        hidden_BTD = self.discriminator(sampled.corrupted_ids, segment_ids, attention_mask, packing)
        disc_logits_BT = self.discriminator_head(hidden_BTD) if self.discriminator_head is not None else None
        if electric:  # the head gives the energy; the noise logit adds the generator's log q and the noise ratio
            disc_logits_BT = electric_logits(disc_logits_BT, cloze_BTV, sampled.corrupted_ids, o.mask_prob)
        # 5. loss
        lm = None
        if o.objective in ("electra", "electric"):
            disc_loss = rtd_loss(disc_logits_BT, sampled.labels, attention_mask,
                                 masked if o.rtd_tokens == "masked" else None)
        else:  # Table 5's ablations: the discriminator is a masked LM on the corrupted text
            word = self.discriminator.embeddings.tables()[0]
            if o.objective == "replace_mlm":
                lm_BNV = self.discriminator_lm_head(at_slots(hidden_BTD, masked.positions), word)
                lm = LMLoss(mlm_loss(lm_BNV, masked), slot_hits(lm_BNV.detach().argmax(-1), masked), w.sum())
            else:
                lm = all_tokens_mlm_loss(self.discriminator_lm_head(hidden_BTD, word), disc_logits_BT, input_ids,
                                         sampled.corrupted_ids, attention_mask)
            disc_loss = lm.loss
        # Electric trains its generator on every candidate; `mlm` still reports the masked slots, as the original
        total = o.gen_weight * (trained_gen_loss if electric else gen_loss) + o.disc_loss_weight * disc_loss
        with torch.no_grad():
            real = attention_mask.float()
            labels = sampled.labels
            if disc_logits_BT is not None:
                pred = (disc_logits_BT > 0) & attention_mask
                detected = ((pred == labels).float() * real).sum(), (pred & labels).float().sum(), pred.float().sum()
            else:  # replace_mlm: no detector
                detected = zero, zero, zero
            stats = Stats(
                w.sum(), slot_hits(argmax_BN, masked), slot_hits(sampled.tokens, masked), real.sum(), labels.float().sum(),
                *detected, *((lm.correct, lm.count) if lm is not None else (zero, zero)),
            )
        return StepOutput(Losses(total, gen_loss, disc_loss), stats, disc_logits_BT, labels)

