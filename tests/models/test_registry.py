"""Tests of dnhcli.models.registry and networks: shapes, ranges, parameter count and the registry."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dnhcli.errors import DnhError, InputError
from dnhcli.models.networks import DNHNetwork, HashEncoder, count_parameters
from dnhcli.models.registry import create_model, list_models, model_defaults


@pytest.mark.parametrize("bits", [16, 32, 48, 64])
def test_output_shapes_and_code_range(bits: int) -> None:
    torch.manual_seed(0)
    net = create_model("lenet5-dnh", bits=bits, classes=3)
    x = torch.rand(5, 1, 28, 28)
    h, logits = net(x)
    assert h.shape == (5, bits)
    assert logits.shape == (5, 3)
    assert bool((h.abs() < 1).all())
    f, h2 = net.encoder.features(x)
    assert f.shape == (5, 120)
    torch.testing.assert_close(h2, net.encoder(x))
    assert net.discriminator(torch.rand(7, 2, bits) * 2 - 1).shape == (7,)


def test_encoder_parameter_count_at_48_bits() -> None:
    encoder = create_model("lenet5-dnh", bits=48).encoder
    # conv1 156 + conv2 2416 + fc120 30840 + fc48 5808
    assert 38_000 <= count_parameters(encoder) <= 41_000
    assert count_parameters(encoder) == 156 + 2416 + 30840 + 5808


def test_network_attributes_and_encoder_parameters() -> None:
    net = create_model("lenet5-dnh", bits=32, classes=6)
    assert isinstance(net, DNHNetwork)
    assert (net.arch, net.bits, net.classes) == ("lenet5-dnh", 32, 6)
    own = {id(p) for p in net.encoder_parameters()}
    assert own == {id(p) for p in [*net.encoder.parameters(), *net.classifier.parameters()]}
    assert not own & {id(p) for p in net.discriminator.parameters()}


def test_discriminator_mixes_over_the_pair_axis() -> None:
    torch.manual_seed(0)
    disc = create_model("lenet5-dnh", bits=16).discriminator
    bias = disc.mix.bias
    assert bias is not None
    with torch.no_grad():
        disc.mix.weight.copy_(torch.tensor([1.0, 0.0]).view(1, 2, 1))
        bias.zero_()
    first = torch.rand(1, 16).expand(3, 16)
    pairs = torch.stack([first, torch.rand(3, 16)], dim=1)
    logits = disc(pairs)
    # With weights (1, 0) only the first code of each pair matters.
    torch.testing.assert_close(logits, logits[:1].expand(3))
    swapped = disc(pairs.flip(1))
    assert not torch.allclose(swapped, logits)


def test_same_seed_gives_same_weights() -> None:
    torch.manual_seed(7)
    a = create_model("lenet5-dnh").state_dict()
    torch.manual_seed(7)
    b = create_model("lenet5-dnh").state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_registry_lists_and_describes_lenet() -> None:
    assert "lenet5-dnh" in list_models()
    defaults = model_defaults("lenet5-dnh")
    assert defaults.input_size == (1, 28, 28)
    assert defaults.input_range == (0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.bits = 16  # type: ignore[misc]


def test_unknown_model_name_is_a_dnh_error() -> None:
    with pytest.raises(DnhError, match="resnet"):
        create_model("resnet-18")
    with pytest.raises(DnhError):
        model_defaults("resnet-18")


@pytest.mark.parametrize("bits", [12, 0, 136])
def test_bad_bits_are_input_errors(bits: int) -> None:
    with pytest.raises(InputError):
        create_model("lenet5-dnh", bits=bits)
    with pytest.raises(InputError):
        HashEncoder(bits)


@pytest.mark.parametrize("classes", [1, 0, -3])
def test_bad_class_counts_are_input_errors(classes: int) -> None:
    with pytest.raises(InputError):
        create_model("lenet5-dnh", classes=classes)
