"""Loss terms of DNH (METHOD.md, "Objective"); every pair term uses all pairs of a batch at once.

Encoder loss per batch:

    J_class + alpha1 * J1 + alpha2 * J2 - beta * J_D  (+ lambda * J_quant)

with J1 = `organ_level_loss`, J2 = `disease_level_loss`, J_D = `discriminator_loss`
on `order_pairs`, J_quant = `quantization_loss`. `adversarial_term` returns -J_D,
so the trainer adds `beta * adversarial_term(...)` to the encoder's loss and steps
only the encoder/classifier optimizer with it (zero the discriminator's gradients
before its own step); the discriminator's step minimises `discriminator_loss` on
pairs built from `h.detach()`, with its own optimizer.

About the order discriminator (METHOD.md, calibration notes): as the reference
describes it, a same-class pair (h_i, h_j) is fed in a random order and the
discriminator must tell the order. The two codes of a same-class pair are
exchangeable (i and j are two random members of a shuffled batch), so a pair in
random order carries no information about the order: the best discriminator
outputs 1/2 and its loss stays at ln 2 ~ 0.693, which is what the calibration
runs saw in every run. It then sends no useful signal to the encoder. Keep it for
fidelity (beta = 0 switches it off), or replace it with a task that carries
information, and say which one a run used.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dnhcli.errors import InputError

_COS_EPS = 1e-8
_DIST_EPS = 1e-6


def _check_labels(h: torch.Tensor, *labels: torch.Tensor) -> None:
    if h.ndim != 2:
        raise InputError(f"codes must have shape (B, K), got {tuple(h.shape)}")
    for label in labels:
        if label.shape != (h.shape[0],):
            raise InputError(
                f"labels must have shape ({h.shape[0]},) to match the codes, "
                f"got {tuple(label.shape)}"
            )


def _zero(h: torch.Tensor) -> torch.Tensor:
    """A zero scalar that stays attached to the graph of `h`."""
    return h.sum() * 0.0


def classification_loss(logits: torch.Tensor, target: torch.Tensor,
                        smoothing: float = 0.0, log_prior: torch.Tensor | None = None
                        ) -> torch.Tensor:
    """Cross-entropy over the CLASS axis: mean_b [ -log softmax(logits_b)[target_b] ].

    The softmax runs over dim 1 (classes); the reference ran it over the batch axis.
    With label smoothing eps > 0 the target is (1 - eps) one-hot + eps uniform:
    (1 - eps) * CE + eps * mean_b mean_c [ -log softmax(logits_b)[c] ].
    `log_prior` (C,), tau log pi_c, is added to every row of logits first: the logit-adjusted
    loss of Menon et al. (ICLR 2021), which gives rare classes a wider margin.
    """
    if logits.ndim != 2 or target.shape != (logits.shape[0],):
        raise InputError(
            f"expected logits (B, C) and targets (B,), got {tuple(logits.shape)} and "
            f"{tuple(target.shape)}"
        )
    if log_prior is not None:
        logits = logits + log_prior
    log_probs = torch.log_softmax(logits, dim=1)
    nll = -log_probs.gather(1, target.long().unsqueeze(1)).mean()
    if smoothing > 0:
        return (1.0 - smoothing) * nll - smoothing * log_probs.mean()
    return nll


def cauchy_distance(h: torch.Tensor) -> torch.Tensor:
    """Pairwise distances (B, B): d_ij = (K / 2) * (1 - cos(h_i, h_j)), in [0, K].

    A zero vector has cosine 0 with every code (its norm is clamped at a small eps).
    """
    if h.ndim != 2:
        raise InputError(f"codes must have shape (B, K), got {tuple(h.shape)}")
    unit = F.normalize(h, dim=1, eps=_COS_EPS)
    cos = (unit @ unit.T).clamp(-1.0, 1.0)
    return 0.5 * h.shape[1] * (1.0 - cos)


def _pair_weights(
    similar: torch.Tensor, mask: torch.Tensor | None, balance: bool
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Constant weights (w_sim, w_dis), each (B, B), summing to 1 over the counted pairs
    (i != j and mask); None if no pair is counted."""
    size = similar.shape[0]
    counted = ~torch.eye(size, dtype=torch.bool, device=similar.device)
    if mask is not None:
        counted &= mask.bool()
    n = int(counted.sum())
    if n == 0:
        return None
    sim = counted & similar.bool()
    n_sim = int(sim.sum())
    w_sim, w_dis = 1.0 / n, 1.0 / n
    if balance and 0 < n_sim < n:  # DCH weights n/n_sim and n/n_dis, rescaled to average 1
        raw_sim, raw_dis = n / n_sim, n / (n - n_sim)
        norm = n / (raw_sim * n_sim + raw_dis * (n - n_sim))
        w_sim, w_dis = raw_sim * norm / n, raw_dis * norm / n
    return sim * w_sim, (counted & ~sim) * w_dis


def _organ_balanced_weights(
    similar: torch.Tensor, organ: torch.Tensor, balance: bool
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Pair weights of J2 that give each organ with a counted pair the same total weight."""
    parts = []
    for value in organ.unique():
        member = organ == value
        weights = _pair_weights(similar, member.unsqueeze(0) & member.unsqueeze(1), balance)
        if weights is not None:
            parts.append(weights)
    if not parts:
        return None
    return (torch.stack([p[0] for p in parts]).mean(0), torch.stack([p[1] for p in parts]).mean(0))


def _weighted_cauchy(log_den: torch.Tensor, log_d: torch.Tensor,
                     weights: tuple[torch.Tensor, torch.Tensor], gamma: float) -> torch.Tensor:
    """sum_ij w_ij * loss_ij with loss = log(gamma + d) - (log gamma if similar else log d)."""
    w_sim, w_dis = weights
    w_sim, w_dis = w_sim.to(log_den.dtype), w_dis.to(log_den.dtype)
    return ((w_sim + w_dis) * log_den).sum() - math.log(gamma) * w_sim.sum() - (w_dis * log_d).sum()


def _log_terms(d: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    d = d.clamp_min(_DIST_EPS)
    return torch.log(gamma + d), torch.log(d)


def cauchy_cross_entropy(
    h: torch.Tensor,
    similar: torch.Tensor,
    gamma: float = 1.0,
    mask: torch.Tensor | None = None,
    balance: bool = False,
) -> torch.Tensor:
    """Cauchy cross-entropy (DCH) averaged over the counted pairs.

    p_ij = gamma / (gamma + d_ij),  loss_ij = -[s_ij log p_ij + (1 - s_ij) log(1 - p_ij)],
    with log p = log gamma - log(gamma + d) and log(1 - p) = log d - log(gamma + d),
    d clamped at 1e-6. Counted pairs: i != j and mask_ij. Result: sum w_ij loss_ij / n.
    Without balance w_ij = 1; with balance w_ij = n / n_sim for similar and n / n_dis for
    dissimilar pairs, rescaled so that the weights average to 1 over the n counted pairs.
    Returns a graph-attached zero if no pair is counted. Computed densely with constant
    weight matrices (boolean indexing has a slow backward pass on CPU).
    """
    _check_labels(h)
    size = h.shape[0]
    if similar.shape != (size, size) or (mask is not None and mask.shape != (size, size)):
        raise InputError(f"pair matrices must have shape ({size}, {size})")
    if not gamma > 0:
        raise InputError(f"gamma must be positive, got {gamma}")
    weights = _pair_weights(similar, mask, balance)
    if weights is None:
        return _zero(h)
    return _weighted_cauchy(*_log_terms(cauchy_distance(h), gamma), weights, gamma)


def pair_losses(
    h: torch.Tensor,
    organ: torch.Tensor,
    disease: torch.Tensor,
    gamma: float = 1.0,
    balance: bool = False,
    organ_balance: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(J1, J2) of one batch from one distance matrix: the values of `organ_level_loss` and
    `disease_level_loss`, at the cost of one.

    With `organ_balance`, J2 is the mean over the organs of the batch of each organ's own
    J2 (its same-organ pairs only), so a small organ weighs as much as a large one; without
    it, J2 averages over all same-organ pairs and the largest organ dominates."""
    _check_labels(h, organ, disease)
    if not gamma > 0:
        raise InputError(f"gamma must be positive, got {gamma}")
    log_den, log_d = _log_terms(cauchy_distance(h), gamma)
    same_organ = organ.unsqueeze(0) == organ.unsqueeze(1)
    same_disease = same_organ & (disease.unsqueeze(0) == disease.unsqueeze(1))
    terms = []
    for similar, mask in ((same_organ, None), (same_disease, same_organ)):
        weights = (_organ_balanced_weights(similar, organ, balance) if organ_balance and
                   mask is not None else _pair_weights(similar, mask, balance))
        terms.append(_zero(h) if weights is None else
                     _weighted_cauchy(log_den, log_d, weights, gamma))
    return terms[0], terms[1]


def organ_level_loss(
    h: torch.Tensor, organ: torch.Tensor, gamma: float = 1.0, balance: bool = False
) -> torch.Tensor:
    """J1: Cauchy cross-entropy over all pairs, s_ij = 1 iff organ_i == organ_j."""
    _check_labels(h, organ)
    same_organ = organ.unsqueeze(0) == organ.unsqueeze(1)
    return cauchy_cross_entropy(h, same_organ, gamma=gamma, balance=balance)


def disease_level_loss(
    h: torch.Tensor,
    organ: torch.Tensor,
    disease: torch.Tensor,
    gamma: float = 1.0,
    balance: bool = False,
) -> torch.Tensor:
    """J2: Cauchy cross-entropy over same-organ pairs only, r_ij = 1 iff the disease matches too."""
    return pair_losses(h, organ, disease, gamma, balance)[1]


def order_pairs(
    h: torch.Tensor,
    klass: torch.Tensor,
    generator: torch.Generator,
    max_pairs: int | None = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-class pairs in random order: pairs (P, 2, K) and order labels (P,) float.

    All pairs i < j of the batch with klass_i == klass_j are built; if there are more
    than `max_pairs`, a random subset of that size is kept (in batch order). Each pair
    is then swapped to (h_j, h_i) with probability 1/2, label 1 = swapped. All draws
    come from `generator` (a CPU torch.Generator), so the result is deterministic.
    """
    _check_labels(h, klass)
    if max_pairs is not None and max_pairs < 1:
        raise InputError(f"max_pairs must be at least 1, got {max_pairs}")
    first, second = torch.triu_indices(h.shape[0], h.shape[0], offset=1)
    klass_cpu = klass.cpu()
    keep = klass_cpu[first] == klass_cpu[second]
    first, second = first[keep], second[keep]
    if max_pairs is not None and len(first) > max_pairs:
        chosen = torch.randperm(len(first), generator=generator)[:max_pairs].sort().values
        first, second = first[chosen], second[chosen]
    swapped = torch.rand(len(first), generator=generator) < 0.5
    left = torch.where(swapped, second, first).to(h.device)
    right = torch.where(swapped, first, second).to(h.device)
    pairs = torch.stack([h.index_select(0, left), h.index_select(0, right)], dim=1)
    return pairs, swapped.to(device=h.device, dtype=h.dtype)


def discriminator_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """J_D = mean BCE-with-logits(input = logits, target = order labels); zero if there is no pair.

    -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], averaged over pairs; the reference
    swapped the arguments.
    """
    if logits.shape != labels.shape:
        raise InputError(
            f"logits and labels must have the same shape, got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if logits.numel() == 0:
        return _zero(logits)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def adversarial_term(
    discriminator: nn.Module,
    h: torch.Tensor,
    klass: torch.Tensor,
    generator: torch.Generator,
    max_pairs: int | None = 4096,
) -> torch.Tensor:
    """The encoder's adversarial term, -J_D: the encoder maximises the discriminator's loss.

    Add `beta * adversarial_term(...)` to the encoder's loss. Gradients also reach the
    discriminator's parameters; its own step must not use them (zero them first).
    """
    pairs, labels = order_pairs(h, klass, generator, max_pairs=max_pairs)
    if len(labels) == 0:
        return _zero(h)
    return -discriminator_loss(discriminator(pairs), labels)


def quantization_loss(h: torch.Tensor) -> torch.Tensor:
    """J_quant = mean((|h| - 1)^2): pulls components to +-1 so sign bits survive export."""
    return ((h.abs() - 1.0) ** 2).mean()


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the backward pass multiplies the gradient by -scale.

    With `J_D(disc(grad_reverse(h, beta)))` in the summed loss, one backward pass
    steps the discriminator down J_D while the encoder receives -beta * dJ_D/dh,
    i.e. it maximises the discriminator's loss with weight beta.
    """
    return _GradReverse.apply(x, scale)
