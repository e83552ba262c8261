"""INT8 post-training quantization of the exported encoder with NNCF (optional: `pip install
nncf`, or the `int8` extra).

The hash layer's output signs are the bits, so the settings favour agreement over the last
percent of speed: NNCF's MIXED preset (symmetric weights, asymmetric activations), the full
bias correction, and the hash layer's matrix product left in f32. On the real 48-bit model
this agreed with PyTorch on 99.98% of bits (defaults: 99.78%); see docs/BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import numpy as np

from dnhcli.errors import ModelError

CALIBRATION_IMAGES = 1000
CALIBRATION_BATCH = 32


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_int8(model: Any, images: np.ndarray) -> Any:
    """An INT8 copy of an OpenVINO encoder model, calibrated on uint8 images (N, 28, 28)."""
    try:
        import nncf
    except ImportError:
        raise ModelError("INT8 export needs NNCF, which is not installed",
                         hint="pip install nncf (or pip install -e '.[int8]')") from None
    nncf.set_log_level(logging.ERROR)
    x = np.asarray(images[:CALIBRATION_IMAGES], np.float32)[:, None] * np.float32(1.0 / 255.0)
    batches = [x[i:i + CALIBRATION_BATCH] for i in range(0, len(x), CALIBRATION_BATCH)]
    products = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"]
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws its progress bars on stdout
        return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                             preset=nncf.QuantizationPreset.MIXED, fast_bias_correction=False,
                             ignored_scope=nncf.IgnoredScope(names=products[-1:]))
