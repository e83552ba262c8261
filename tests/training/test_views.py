"""The two random views of the instance term (dnhcli.training.views): shapes, ranges,
determinism under a seed, and what each alteration does."""

from __future__ import annotations

import pytest
import torch

from dnhcli.training import views


def _batch(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_views_shape_range_layout_and_determinism() -> None:
    x = _batch()
    a1, b1 = views.two_views(x, torch.Generator().manual_seed(5))
    a2, b2 = views.two_views(x, torch.Generator().manual_seed(5))
    for v in (a1, b1):
        assert v.shape == x.shape and v.dtype == torch.float32
        assert v.min() >= 0 and v.max() <= 1
        assert v.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a1, a2) and torch.equal(b1, b2)          # same seed, same views
    c, _ = views.two_views(x, torch.Generator().manual_seed(6))
    assert not torch.equal(a1, c) and not torch.equal(a1, b1)   # other draws differ
    # mild: a view of a smooth image stays close to it (mean absolute change under 0.1)
    smooth = torch.linspace(0.2, 0.8, 28).view(1, 1, 28, 1).expand(4, 1, 28, 28)
    view, _ = views.two_views(smooth, torch.Generator().manual_seed(7))
    assert (view - smooth).abs().mean() < 0.1


def test_affine_with_no_change_is_the_identity_and_a_shift_moves_pixels() -> None:
    x = _batch()
    same = views.random_affine(x, torch.Generator(), shift=0, rotate=0, scale=0)
    torch.testing.assert_close(same, x, rtol=0, atol=1e-5)
    moved = views.random_affine(x, torch.Generator().manual_seed(1), shift=2, rotate=0, scale=0)
    assert not torch.allclose(moved, x)


def test_photometric_without_change_is_the_identity() -> None:
    x = _batch()
    same = views.random_photometric(x, torch.Generator(), intensity=0, noise=0, blur=False)
    torch.testing.assert_close(same, x, rtol=0, atol=1e-6)
    brighter = views.random_photometric(torch.full((4, 1, 28, 28), 0.5), torch.Generator().manual_seed(2),
                                        noise=0, blur=False)
    assert ((brighter - 0.5).abs().amax(dim=(1, 2, 3)) <= 0.5 * 0.15 + 1e-6).all()


def test_flip_is_shared_by_both_views(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "random_affine", lambda x, generator, shift: x)
    monkeypatch.setattr(views, "random_photometric", lambda x, generator: x)
    x = _batch(16)
    a, b = views.two_views(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    flipped = [not torch.equal(a[i], x[i]) for i in range(16)]
    assert all(torch.equal(a[i], x[i].flip(2)) for i in range(16) if flipped[i])
    assert 0 < sum(flipped) < 16
    a, b = views.two_views(x, torch.Generator().manual_seed(3), hflip=False)
    assert torch.equal(a, x)
