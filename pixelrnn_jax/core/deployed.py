"""The deployed weights of a trained binary model: what the sensor loads.

Latent float weights stay in the checkpoints; the deployed values are their signs
(sign(0) = +1), exactly what the forward pass uses, and the thresholds as the layers apply
them. (`pixelrnn_jax.sensor.scamp5` lays the same values out as SCAMP-5 register planes.)
"""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from pixelrnn_jax.core.config import ModelConfig
from pixelrnn_jax.core.model import unwrap_params
from pixelrnn_jax.core.quantizers import numpy_sign

__all__ = ["deployed_weights", "save_deployed_weights", "DEPLOYED_NAME"]

DEPLOYED_NAME = "weights.npz"


def deployed_weights(variables, config: ModelConfig) -> dict:
    """{name: array} of the binary kernels (int8 +-1) and thresholds (float) of the encoder."""
    enc = jax.device_get(unwrap_params(variables).get("encoder", {}))  # cameras: nothing
    out = {}
    for layer, tree in enc.items():
        for name, value in tree.items():
            v = np.asarray(value)
            key = f"{layer}/{name}"
            out[key] = numpy_sign(v) if v.ndim >= 2 and config.binary else v.astype(np.float32)
    return out


def save_deployed_weights(variables, config: ModelConfig, directory) -> Path:
    """Writes the deployed weights into `directory` (created) as `weights.npz`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / DEPLOYED_NAME, **deployed_weights(variables, config))
    return d
