"""Every registered architecture: shapes, exact export with BatchNorm folded, and training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dnhcli.models.networks import count_parameters
from dnhcli.models.registry import create_model, list_models

ARCHS = list_models()


def test_the_stronger_encoders_are_registered() -> None:
    assert {"lenet5-dnh", "bncnn", "resnet18"} <= set(ARCHS)


@pytest.mark.parametrize("bits", [8, 48, 128])
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shapes_and_ranges(arch: str, bits: int) -> None:
    torch.manual_seed(0)
    net = create_model(arch, bits=bits, classes=9)
    net.eval()
    x = torch.rand(4, 1, 28, 28)
    h, logits = net(x)
    f, h2 = net.encoder.features(x)
    assert h.shape == (4, bits) and logits.shape == (4, 9) and f.shape == (4, net.encoder.feature_dim)
    assert bool((h.abs() <= 1).all()) and torch.allclose(h, h2)


def test_parameter_counts() -> None:
    counts = {arch: count_parameters(create_model(arch, bits=48, classes=9).encoder) for arch in ARCHS}
    assert counts["lenet5-dnh"] == 39_220
    assert 250_000 < counts["bncnn"] < 350_000
    assert 11_000_000 < counts["resnet18"] < 11_400_000


@pytest.mark.parametrize("arch", ARCHS)
def test_export_round_trip_agrees_bit_for_bit(arch: str, tmp_path: Path) -> None:
    """A checkpoint with trained-looking BatchNorm statistics exports to ONNX and OpenVINO IR
    whose sign bits match PyTorch's on random images."""
    from dnhcli.deploy.backends import load_backend
    from dnhcli.deploy.export import ExportConfig, export_model
    from dnhcli.models.checkpoint import save_checkpoint

    torch.manual_seed(1)
    net = create_model(arch, bits=32, classes=3)
    for module in net.modules():  # running statistics away from 0/1, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    payload = {"arch": arch, "bits": 32, "class_names": ["A", "B", "C"], "classes_mode": "organ",
               "organ_names": ["A", "B", "C"], "disease_names": [["x"], ["y"], ["z"]], "epoch": 1,
               "model": net.state_dict(), "dataset": {"fingerprint": "0" * 64},
               "hparams": {"objective": "centres"}}
    save_checkpoint(tmp_path / "model.pt", payload)
    result = export_model(ExportConfig(model=tmp_path / "model.pt", out=tmp_path / "export", verify_count=64))
    assert result.bit_agreement >= 0.999
    import onnx

    graph = onnx.load(str(tmp_path / "export" / "encoder.onnx")).graph
    assert "BatchNormalization" not in {node.op_type for node in graph.node}  # folded into Conv
    images = np.random.default_rng(2).integers(0, 256, (48, 28, 28), dtype=np.uint8)
    reference = load_backend(tmp_path / "model.pt").encode(images)
    for name in ("encoder.xml", "encoder.onnx"):
        if name.endswith(".onnx"):
            pytest.importorskip("onnxruntime")
        exported = load_backend(tmp_path / "export" / name).encode(images)
        assert ((exported >= 0) == (reference >= 0)).mean() >= 0.999
        assert np.abs(exported - reference).max() < 1e-3
