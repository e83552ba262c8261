"""Instance terms: codes that keep the image, not only its class (issue 24).

`nt_xent(h1, h2, t)` is SimCLR's normalized-temperature cross-entropy between the continuous
codes of two views of the same B images. With z the 2B codes scaled to unit length (view 1
then view 2) and s_ij = z_i . z_j / t, item i's positive is its other view p(i) and

    loss = mean_i [ -s_i,p(i) + log sum_{j != i} exp(s_ij) ]

so each code must be nearer its own other view than the 2B - 2 views of other images: distinct
images get distinct codes and an altered copy stays a few bits away.

`bit_balance(h)` = mean over bits of (mean over the batch of h_k)^2 (each bit +1 for half the
images) and `decorrelation(h)` = mean of the squared off-diagonal entries of h^T h / B (bits
carry different information), as in the bit-balance and decorrelation terms of unsupervised
hashing (e.g. CIBHash, SSDH).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnhcli.errors import InputError

_NORM_EPS = 1e-8


def _check_views(h1: torch.Tensor, h2: torch.Tensor) -> None:
    if h1.ndim != 2 or h1.shape != h2.shape:
        raise InputError(f"the two views' codes must have the same shape (B, K), got "
                         f"{tuple(h1.shape)} and {tuple(h2.shape)}")
    if h1.shape[0] < 2:
        raise InputError(f"the instance term needs at least 2 images a batch, got {h1.shape[0]}")


def nt_xent(h1: torch.Tensor, h2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent between two views (B, K) of the same B images (row b of each is image b)."""
    _check_views(h1, h2)
    if not temperature > 0:
        raise InputError(f"the instance temperature must be positive, got {temperature}")
    n = h1.shape[0]
    z = F.normalize(torch.cat([h1, h2]), dim=1, eps=_NORM_EPS)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, positive)


def bit_balance(h: torch.Tensor) -> torch.Tensor:
    """mean_k (mean_b h_bk)^2: zero when every bit is +1 for as many images as -1."""
    return (h.mean(dim=0) ** 2).mean()


def decorrelation(h: torch.Tensor) -> torch.Tensor:
    """Mean of the squared off-diagonal entries of h^T h / B (zero for uncorrelated bits)."""
    k = h.shape[1]
    gram = h.t() @ h / h.shape[0]
    off = gram - torch.diag(torch.diagonal(gram))
    return (off ** 2).sum() / max(k * (k - 1), 1)
