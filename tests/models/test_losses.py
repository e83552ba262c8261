"""Tests of dnhcli.models.losses against values computed by hand on tiny batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dnhcli.errors import InputError
from dnhcli.models.losses import (
    adversarial_term,
    cauchy_cross_entropy,
    cauchy_distance,
    classification_loss,
    discriminator_loss,
    disease_level_loss,
    order_pairs,
    organ_level_loss,
    quantization_loss,
)
from dnhcli.models.networks import PairDiscriminator

LN2, LN3, LN1_5 = math.log(2), math.log(3), math.log(1.5)


def three_codes() -> torch.Tensor:
    """h1 = (1, 0), h2 = (0, 1), h3 = (-1, 0): with K = 2, d12 = 1, d13 = 2, d23 = 1."""
    return torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], requires_grad=True)


def test_cauchy_distance_by_hand() -> None:
    # d = K/2 * (1 - cos): cos12 = 0 -> 1, cos13 = -1 -> 2, cos23 = 0 -> 1
    expected = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    torch.testing.assert_close(cauchy_distance(three_codes()), expected)
    # K = 4, cos((1,1,0,0), (1,0,0,0)) = 1/sqrt(2) -> d = 2 * (1 - 1/sqrt(2)); scale is irrelevant
    h = torch.tensor([[3.0, 3.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    assert cauchy_distance(h)[0, 1].item() == pytest.approx(2 * (1 - 1 / math.sqrt(2)), abs=1e-6)


def test_cauchy_distance_of_a_zero_vector_is_half_k() -> None:
    h = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, 1.0]])
    assert cauchy_distance(h)[0, 1].item() == pytest.approx(2.0)


def test_organ_level_loss_by_hand() -> None:
    organ = torch.tensor([0, 0, 1])
    # gamma = 1: p12 = 1/2 (similar), p13 = 1/3 (dissimilar), p23 = 1/2 (dissimilar)
    # -log(1/2), -log(1 - 1/3), -log(1 - 1/2)
    expected = (LN2 + LN1_5 + LN2) / 3
    assert organ_level_loss(three_codes(), organ).item() == pytest.approx(expected, rel=1e-5)
    # gamma = 2: p12 = 2/3, p13 = 2/4, p23 = 2/3 -> -log(2/3), -log(1/2), -log(1/3)
    expected = (LN1_5 + LN2 + LN3) / 3
    got = organ_level_loss(three_codes(), organ, gamma=2.0).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_balance_weights_by_hand() -> None:
    organ = torch.tensor([0, 0, 1])
    # 6 ordered pairs: 2 similar, 4 dissimilar. Raw weights 6/2 = 3 and 6/4 = 1.5, summing to
    # 2*3 + 4*1.5 = 12; rescaled by 6/12 to 1.5 and 0.75 (they average to 1).
    # Loss = (2 * 1.5 * ln2 + 2 * 0.75 * ln1.5 + 2 * 0.75 * ln2) / 6
    expected = (2 * 1.5 * LN2 + 2 * 0.75 * LN1_5 + 2 * 0.75 * LN2) / 6
    got = organ_level_loss(three_codes(), organ, balance=True).item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.75 * LN2 + 0.25 * LN1_5)


def test_balance_with_one_kind_of_pair_is_the_plain_mean() -> None:
    organ = torch.tensor([4, 4, 4])
    plain = organ_level_loss(three_codes(), organ)
    balanced = organ_level_loss(three_codes(), organ, balance=True)
    # all similar: -log(1/2), -log(1/3), -log(1/2)
    assert plain.item() == pytest.approx((LN2 + LN3 + LN2) / 3, rel=1e-5)
    torch.testing.assert_close(balanced, plain)


def test_mask_restricts_the_counted_pairs() -> None:
    similar = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[1, 2] = mask[2, 1] = True
    mask[0, 0] = True  # the diagonal never counts, even when the mask says so
    # only (2, 3): dissimilar, p23 = 1/2 -> -log(1 - 1/2) = ln2
    got = cauchy_cross_entropy(three_codes(), similar, mask=mask).item()
    assert got == pytest.approx(LN2, rel=1e-5)


def test_no_counted_pair_gives_a_zero_that_keeps_the_graph() -> None:
    h = three_codes()
    loss = cauchy_cross_entropy(
        h, torch.ones(3, 3, dtype=torch.bool), mask=torch.eye(3, dtype=torch.bool)
    )
    assert loss.item() == 0.0
    loss.backward()
    assert h.grad is not None
    assert torch.equal(h.grad, torch.zeros_like(h))


def test_disease_level_loss_ignores_cross_organ_pairs() -> None:
    organ = torch.tensor([0, 0, 1])
    disease = torch.tensor([0, 0, 0])
    # only pair (1, 2) counts: same disease, gamma = 2 -> p12 = 2/3 -> -log(2/3) = ln1.5;
    # counting the cross-organ pairs would give (ln1.5 + ln2 + ln1.5) / 3 instead
    h = three_codes()
    loss = disease_level_loss(h, organ, disease, gamma=2.0)
    assert loss.item() == pytest.approx(LN1_5, rel=1e-5)
    loss.backward()
    assert h.grad is not None
    assert torch.equal(h.grad[2], torch.zeros(2))
    # a different disease within the organ: -log(1 - 2/3) = ln3
    got = disease_level_loss(three_codes(), organ, torch.tensor([0, 1, 0]), gamma=2.0).item()
    assert got == pytest.approx(LN3, rel=1e-5)


def test_identical_dissimilar_codes_stay_finite() -> None:
    h = torch.tensor([[0.5, 0.5], [0.5, 0.5]], requires_grad=True)
    loss = organ_level_loss(h, torch.tensor([0, 1]))
    # d clamped at 1e-6: -log(1e-6 / (1 + 1e-6))
    assert loss.item() == pytest.approx(-math.log(1e-6 / (1 + 1e-6)), rel=1e-3)
    loss.backward()
    assert h.grad is not None and bool(torch.isfinite(h.grad).all())


def mean_cosines(h: torch.Tensor, organ: torch.Tensor) -> tuple[float, float]:
    unit = F.normalize(h.detach(), dim=1)
    cos = unit @ unit.T
    same = organ[:, None] == organ[None, :]
    off_diagonal = ~torch.eye(len(organ), dtype=torch.bool)
    return cos[same & off_diagonal].mean().item(), cos[~same].mean().item()


def test_gradient_steps_on_j1_pull_same_organ_together_and_push_others_apart() -> None:
    generator = torch.Generator().manual_seed(0)
    h = (torch.rand(8, 16, generator=generator) * 2 - 1).requires_grad_()
    organ = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    same_before, cross_before = mean_cosines(h, organ)
    optimizer = torch.optim.SGD([h], lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        organ_level_loss(h, organ).backward()
        optimizer.step()
    same_after, cross_after = mean_cosines(h, organ)
    assert same_after > same_before
    assert cross_after < cross_before


def test_classification_loss_runs_over_the_class_axis() -> None:
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    target = torch.tensor([0, 2])
    # class axis: -log(e / (e + 2)) and -log(e^2 / (e^2 + 2))
    by_class = (math.log(1 + 2 / math.e) + math.log(1 + 2 / math.e**2)) / 2
    # batch axis (the reference's bug): column 0 is (1, 0), column 2 is (0, 2)
    by_batch = (math.log(1 + 1 / math.e) + math.log(1 + 1 / math.e**2)) / 2
    got = classification_loss(logits, target).item()
    assert got == pytest.approx(by_class, rel=1e-6)
    assert got != pytest.approx(by_batch, rel=1e-3)


def test_discriminator_loss_by_hand() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    labels = torch.tensor([1.0, 0.0, 0.0])
    # -log sigmoid(0), -log(1 - sigmoid(2)), -log(1 - sigmoid(-1))
    expected = (LN2 + math.log(1 + math.e**2) + math.log(1 + math.exp(-1))) / 3
    got = discriminator_loss(logits, labels)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(got, F.binary_cross_entropy(torch.sigmoid(logits), labels))
    assert discriminator_loss(torch.zeros(0), torch.zeros(0)).item() == 0.0


def coded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Five distinct codes, row i = (i, i, i, i); classes 0 1 0 0 1."""
    h = torch.arange(5.0).repeat_interleave(4).view(5, 4)
    return h, torch.tensor([0, 1, 0, 0, 1])


def test_order_pairs_builds_exactly_the_same_class_pairs() -> None:
    h, klass = coded_batch()
    pairs, labels = order_pairs(h, klass, torch.Generator().manual_seed(0))
    assert pairs.shape == (4, 2, 4)
    first, second = pairs[:, 0, 0].long(), pairs[:, 1, 0].long()
    index_pairs = zip(first.tolist(), second.tolist(), strict=True)
    unordered = {(min(a, b), max(a, b)) for a, b in index_pairs}
    assert unordered == {(0, 2), (0, 3), (2, 3), (1, 4)}
    # label 1 = swapped, i.e. the later batch item comes first
    torch.testing.assert_close(labels, (first > second).float())


def test_order_pairs_is_deterministic_and_capped() -> None:
    h, klass = coded_batch()
    a = order_pairs(h, klass, torch.Generator().manual_seed(3), max_pairs=2)
    b = order_pairs(h, klass, torch.Generator().manual_seed(3), max_pairs=2)
    assert a[0].shape == (2, 2, 4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    big = torch.randn(40, 8)
    one_class = torch.zeros(40, dtype=torch.long)
    _, labels = order_pairs(big, one_class, torch.Generator().manual_seed(1))
    assert len(labels) == 40 * 39 // 2
    assert 0.35 < labels.mean().item() < 0.65
    with pytest.raises(InputError):
        order_pairs(h, klass, torch.Generator(), max_pairs=0)


def test_adversarial_term_is_minus_the_discriminator_loss() -> None:
    torch.manual_seed(0)
    disc = PairDiscriminator(bits=8)
    h = torch.randn(6, 8, requires_grad=True)
    klass = torch.tensor([0, 0, 0, 1, 1, 2])
    pairs, labels = order_pairs(h, klass, torch.Generator().manual_seed(5))
    expected = -discriminator_loss(disc(pairs), labels)
    got = adversarial_term(disc, h, klass, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, expected)
    got.backward()
    assert h.grad is not None and bool(h.grad.abs().sum() > 0)
    lonely = adversarial_term(disc, h, torch.arange(6), torch.Generator())
    assert lonely.item() == 0.0


def test_quantization_loss_by_hand() -> None:
    h = torch.tensor([[1.0, -1.0, 0.0, 0.5]])
    # (0^2 + 0^2 + 1^2 + 0.5^2) / 4
    assert quantization_loss(h).item() == pytest.approx(1.25 / 4)


def test_bad_shapes_are_input_errors() -> None:
    with pytest.raises(InputError):
        organ_level_loss(three_codes(), torch.tensor([0, 1]))
    with pytest.raises(InputError):
        cauchy_cross_entropy(three_codes(), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(InputError):
        classification_loss(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(InputError):
        cauchy_cross_entropy(three_codes(), torch.ones(3, 3, dtype=torch.bool), gamma=0.0)


@pytest.mark.parametrize("balance", [False, True])
def test_pair_losses_equal_the_two_separate_losses(balance: bool) -> None:
    from dnhcli.models.losses import disease_level_loss, organ_level_loss, pair_losses

    gen = torch.Generator().manual_seed(0)
    h = torch.tanh(torch.randn(12, 16, generator=gen))
    organ = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    disease = torch.tensor([0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1])
    j1, j2 = pair_losses(h, organ, disease, gamma=2.0, balance=balance)
    assert j1.item() == pytest.approx(organ_level_loss(h, organ, 2.0, balance).item(), rel=1e-6)
    assert j2.item() == pytest.approx(
        disease_level_loss(h, organ, disease, 2.0, balance).item(), rel=1e-6)


def test_grad_reverse_is_identity_forward_and_flips_scaled_gradients() -> None:
    from dnhcli.models.losses import grad_reverse

    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = grad_reverse(x, 0.6)
    assert torch.equal(y, x)
    (y * torch.tensor([3.0, 5.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-1.8, -3.0]))
