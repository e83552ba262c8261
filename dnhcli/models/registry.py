"""The model registry: `create_model(name, bits, classes)`, `list_models()`, `model_defaults(name)`.

Registered: "lenet5-dnh" (the reference, METHOD.md "Network"), "bncnn" (a compact BatchNorm
CNN) and "resnet18" (MedMNIST's ResNet-18 for 28 px); see `dnhcli.models.encoders`. Names and
defaults are known without importing torch; a builder imports its networks when it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dnhcli.errors import InputError

if TYPE_CHECKING:
    from dnhcli.models.networks import DNHNetwork


@dataclass(frozen=True)
class ModelDefaults:
    """What a registered architecture expects and builds by default."""

    arch: str
    description: str
    input_size: tuple[int, int, int] = (1, 28, 28)
    input_range: tuple[float, float] = (0.0, 1.0)
    bits: int = 48
    classes: int = 4
    preprocessing: str = "uint8 grey 28x28 -> float /255 in [0, 1], shape (N, 1, 28, 28)"


# Training objectives: what `dnh train --objective` takes (the trainer implements them).
OBJECTIVES = {
    "dnh": "the reference: classification + Cauchy J1/J2 + order discriminator (+ quantization)",
    "centres": "hierarchical hash centres (organ block + disease block, BCE) + classification "
               "(+ quantization, + the instance term between two views of each image)",
}

_Builder = Callable[[int, int], "DNHNetwork"]
_REGISTRY: dict[str, tuple[ModelDefaults, _Builder]] = {}


def register_model(defaults: ModelDefaults) -> Callable[[_Builder], _Builder]:
    """Register a builder `(bits, classes) -> DNHNetwork` under `defaults.arch`."""

    def decorate(builder: _Builder) -> _Builder:
        if defaults.arch in _REGISTRY:
            raise ValueError(f"model {defaults.arch!r} is registered twice")  # programming error
        _REGISTRY[defaults.arch] = (defaults, builder)
        return builder

    return decorate


@register_model(
    ModelDefaults(
        arch="lenet5-dnh",
        description="LeNet-5 hash encoder (about 40k parameters at 48 bits) for 28x28 grey images",
    )
)
def _lenet5_dnh(bits: int, classes: int) -> DNHNetwork:
    from dnhcli.models.networks import DNHNetwork

    return DNHNetwork(bits=bits, classes=classes, arch="lenet5-dnh")


def _with_linear_head(arch: str, encoder_class: str) -> _Builder:
    """A builder of an encoder from `dnhcli.models.encoders` with a linear classifier."""

    def build(bits: int, classes: int) -> DNHNetwork:
        from dnhcli.models import encoders
        from dnhcli.models.networks import DNHNetwork, LinearHead

        encoder = getattr(encoders, encoder_class)(bits)
        return DNHNetwork(bits=bits, classes=classes, arch=arch, encoder=encoder,
                          classifier=LinearHead(classes, encoder.feature_dim))

    return build


register_model(ModelDefaults(
    arch="bncnn",
    description="BatchNorm CNN, 3 stages of two 3x3 conv-BN-ReLU (32/64/128), about 0.29M parameters "
                "at 48 bits",
))(_with_linear_head("bncnn", "BNCNNEncoder"))
register_model(ModelDefaults(
    arch="resnet18",
    description="ResNet-18 for 28x28 (3x3 stem, no max-pooling), as in MedMNIST v2; about 11.2M "
                "parameters",
))(_with_linear_head("resnet18", "ResNet18Encoder"))


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> tuple[ModelDefaults, _Builder]:
    if name not in _REGISTRY:
        raise InputError(
            f"unknown model {name!r}", hint=f"available models: {', '.join(list_models())}"
        )
    return _REGISTRY[name]


def model_defaults(name: str) -> ModelDefaults:
    """The defaults (input size, input range, bits, classes) of a registered architecture."""
    return _lookup(name)[0]


def create_model(name: str, bits: int = 48, classes: int = 4) -> DNHNetwork:
    """Build a registered architecture with K = `bits` and C = `classes` (seed torch first)."""
    return _lookup(name)[1](bits, classes)
