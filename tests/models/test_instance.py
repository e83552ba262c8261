"""The instance terms (dnhcli.models.instance) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from dnhcli.errors import InputError
from dnhcli.models.instance import bit_balance, decorrelation, nt_xent


def test_nt_xent_by_hand() -> None:
    # z = a (1, 0), b (0, 1), a' (1, 0), b' (-1, 0); temperature 0.5 -> similarities 2 z.z'
    h1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h2 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    e = math.exp
    expected = [
        -2 + math.log(e(0) + e(2) + e(-2)),   # a: others b, a' (its positive), b'
        0 + math.log(3.0),                     # b: all three similarities 0
        -2 + math.log(e(2) + e(0) + e(-2)),   # a'
        0 + math.log(e(-2) + e(0) + e(-2)),   # b': positive b
    ]
    assert nt_xent(h1, h2, 0.5).item() == pytest.approx(sum(expected) / 4, rel=1e-6)
    # codes are scaled to unit length first: the scale of h does not matter
    assert nt_xent(0.3 * h1, 0.7 * h2, 0.5).item() == pytest.approx(sum(expected) / 4, rel=1e-6)


def test_nt_xent_three_items_matches_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    h1, h2 = torch.randn(3, 4, generator=g).tanh(), torch.randn(3, 4, generator=g).tanh()
    z = [v / v.norm() for v in torch.cat([h1, h2])]
    total = 0.0
    for i in range(6):
        pos = (i + 3) % 6
        logits = [float(z[i] @ z[j]) / 0.3 for j in range(6) if j != i]
        total += -float(z[i] @ z[pos]) / 0.3 + math.log(sum(math.exp(v) for v in logits))
    assert nt_xent(h1, h2, 0.3).item() == pytest.approx(total / 6, rel=1e-5)


def test_nt_xent_gradient_pulls_views_together_and_checks_out() -> None:
    g = torch.Generator().manual_seed(1)
    h1 = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    h2 = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (h1, h2))
    loss = nt_xent(h1, h2, 0.3)
    loss.backward()
    with torch.no_grad():
        a, b = h1 - 0.05 * h1.grad, h2 - 0.05 * h2.grad
        assert nt_xent(a, b, 0.3) < loss
        cos = torch.nn.functional.cosine_similarity
        assert cos(a, b).mean() > cos(h1, h2).mean()   # each image's two codes move closer
    # identical views of well-separated items: a lower loss than random pairs
    eye = torch.eye(4, dtype=torch.float64)
    assert nt_xent(eye, eye, 0.3) < nt_xent(eye, eye.roll(1, 0), 0.3)


def test_balance_and_decorrelation_by_hand() -> None:
    h = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    assert bit_balance(h).item() == pytest.approx(0.5)    # bit means (0, 1) -> (0 + 1) / 2
    assert decorrelation(h).item() == pytest.approx(0.0)  # h^T h / 2 = I
    same = torch.ones(2, 2)
    assert decorrelation(same).item() == pytest.approx(1.0)  # off-diagonal 1, 1 -> 2 / 2
    assert bit_balance(torch.tensor([[1.0, -1.0], [-1.0, 1.0]])).item() == 0.0


def test_bad_views_are_refused() -> None:
    h = torch.zeros(3, 4)
    with pytest.raises(InputError, match="same shape"):
        nt_xent(h, torch.zeros(2, 4), 0.3)
    with pytest.raises(InputError, match="at least 2 images"):
        nt_xent(h[:1], h[:1], 0.3)
    with pytest.raises(InputError, match="temperature must be positive"):
        nt_xent(h, h, 0.0)
