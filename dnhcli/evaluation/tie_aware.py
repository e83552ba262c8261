"""Expected figures over random orders of tied items, computed exactly (no sampling).

A query's ranking is a sequence of tie groups (e.g. all gallery codes at one Hamming distance):
the groups are in a fixed order, and the items inside a group in a uniformly random order. For a
cut-off k, the groups that end by rank k are full, and at most one group (the boundary) is cut.

- P@k and DCG@k are linear in the relevance of each rank: rank m in group g is relevant with
  probability r_g / n_g (gain: the group's mean gain).
- AP@k divides by the number of relevant items in the top k, which depends on how many
  relevant items x of the boundary group fall inside the cut (hypergeometric). For each x the
  numerator's expectation is exact (McSherry and Najork, ECIR 2008): rank m, j-th in its group
  of n items with r relevant, after R earlier relevant ones, contributes
  (r / n) (R + 1 + (j - 1)(r - 1)/(n - 1)) / m; inside the boundary, use x and the t included
  ranks instead of r and n. E[AP@k] = sum_x P(x) E[numerator | x] / (R0 + x), 0 when R0 + x = 0.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import gammaln

from dnhcli.evaluation.metrics import discounts


@lru_cache(maxsize=4)
def _log_factorials(size: int) -> np.ndarray:
    return gammaln(np.arange(size + 1, dtype=np.float64) + 1)


def _log_choose(n: np.ndarray, r: np.ndarray) -> np.ndarray:
    """log C(n, r) for integer-valued arrays with 0 <= r <= n."""
    n, r = np.asarray(n, np.int64), np.asarray(r, np.int64)
    table = _log_factorials(1 << max(10, int(n.max(initial=0)).bit_length()))
    return table[n] - table[r] - table[n - r]


@lru_cache(maxsize=4)
def _tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic numbers H[m] = sum_{i<=m} 1/i and cumulative discounts C[m] = sum_{i<=m} 1/log2(i+1)."""
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, size + 1, dtype=np.float64))])
    return harmonic, np.cumsum(discounts(size))


class TieGroups:
    """The tie groups (Q, G) of a block of queries, cut at rank k; all sums are per group, with
    closed forms over the ranks a group covers (harmonic numbers), so the cost is O(Q G)."""

    def __init__(self, sizes: np.ndarray, k: int) -> None:
        sizes = np.asarray(sizes, np.int64)
        total = sizes.sum(axis=1)
        self.k = int(min(k, int(total.min()))) if len(sizes) else int(k)
        if len(sizes) and (total < self.k).any():
            raise ValueError("every query needs at least k ranked items")
        self.n = sizes
        self.start = np.cumsum(sizes, axis=1) - sizes
        self.inside = np.clip(np.minimum(self.start + sizes, self.k) - self.start, 0, None)  # t
        self.full = (self.inside == sizes) & (sizes > 0)
        self.cut = (self.inside > 0) & (self.inside < sizes)
        self.boundary = self.cut.any(axis=1)  # the k-th rank falls inside a tie
        harmonic, self._cumulative = _tables(int(self.start.max(initial=0) + sizes.max(initial=0)) + 1)
        # S0 = sum over the group's ranks inside the cut of 1/m; S1 = of (j - 1)/m, j the rank in the group
        self._s0 = harmonic[self.start + self.inside] - harmonic[self.start]
        self._s1 = self.inside - (self.start + 1) * self._s0

    def _ratio(self, per_group: np.ndarray) -> np.ndarray:
        n = self.n.astype(np.float64)
        return np.divide(per_group, n, out=np.zeros_like(n), where=n > 0)

    def expected_precision(self, relevant: np.ndarray) -> np.ndarray:
        """E[P@k] (Q,)."""
        return (self._ratio(relevant) * self.inside).sum(axis=1) / max(self.k, 1)

    def expected_dcg(self, gains: np.ndarray) -> np.ndarray:
        """E[DCG@k] (Q,) from each group's summed gains (Q, G), discount 1/log2(m + 1)."""
        c = self._cumulative
        return (self._ratio(gains) * (c[self.start + self.inside] - c[self.start])).sum(axis=1)

    def expected_ap(self, relevant: np.ndarray) -> np.ndarray:
        """E[AP@k] (Q,), AP normalised by the relevant items inside the top k (0 if none)."""
        r = np.asarray(relevant, np.float64)
        before = np.cumsum(r, axis=1) - r
        n = self.n.astype(np.float64)
        pair = np.divide(r - 1, n - 1, out=np.zeros_like(r), where=n > 1)
        term = self._ratio(r) * ((before + 1) * self._s0 + pair * self._s1)
        numerator = np.where(self.full, term, 0.0).sum(axis=1)
        result = np.zeros(len(r))
        cut = self.boundary
        whole = ~cut
        total = np.where(self.full, r, 0.0).sum(axis=1)
        ok = whole & (total > 0)
        result[ok] = numerator[ok] / total[ok]
        if cut.any():
            g = self.cut[cut].argmax(axis=1)
            rows = np.arange(int(cut.sum()))

            def at(a: np.ndarray) -> np.ndarray:
                return np.asarray(a)[cut][rows, g].astype(np.float64)

            result[cut] = _boundary_ap(numerator[cut], at(r), at(n), at(before), at(self.inside),
                                       at(self._s0), at(self._s1))
        return result


def _boundary_ap(numerator: np.ndarray, r: np.ndarray, n: np.ndarray, before: np.ndarray,
                 t: np.ndarray, s0: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """E[AP] for queries whose boundary group (n items, r relevant, t of them inside the cut,
    `before` relevant items ahead of it) is cut: a sum over x, the relevant items inside the cut."""
    top = int(np.minimum(r, t).max())
    x = np.arange(top + 1, dtype=np.float64)[None, :]
    r_, n_, t_ = r[:, None], n[:, None], t[:, None]
    valid = (x <= r_) & (x <= t_) & (t_ - x <= n_ - r_)
    safe = np.where(valid, x, 0.0)
    logp = (_log_choose(r_, np.minimum(safe, r_)) + _log_choose(n_ - r_, np.clip(t_ - safe, 0, n_ - r_))
            - _log_choose(n_, t_))
    p = np.where(valid, np.exp(logp), 0.0)
    p /= p.sum(axis=1, keepdims=True)
    pairs = np.divide(x * (x - 1), t_ * (t_ - 1), out=np.zeros_like(x * t_), where=t_ > 1)
    num = numerator[:, None] + x / t_ * (before[:, None] + 1) * s0[:, None] + pairs * s1[:, None]
    denom = before[:, None] + x
    value = np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)
    return (p * value).sum(axis=1)
