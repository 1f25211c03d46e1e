"""What the sensor loads: the deployed binary weights of a trained model.

Latent float weights stay in the checkpoints; the deployed values are their signs
(sign(0) = +1), exactly what the forward pass uses.
"""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from pixelrnn_jax.config import ModelConfig


def deployed_weights(variables, config: ModelConfig) -> dict:
    """{name: array} of the binary kernels (int8 +-1) and thresholds (float) of the encoder."""
    params = variables["params"] if "params" in variables else variables
    enc = jax.device_get(params.get("encoder", {}))  # camera baselines store nothing
    out = {}
    for layer, tree in enc.items():
        for name, value in tree.items():
            v = np.asarray(value)
            key = f"{layer}/{name}"
            if v.ndim >= 2 and config.binary:
                out[key] = np.where(v >= 0, 1, -1).astype(np.int8)
            else:
                out[key] = v.astype(np.float32)
    return out


def export_for_sensor(variables, config: ModelConfig, directory) -> Path:
    """Writes the deployed weights into `directory` (created): `weights.npz` always."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / "weights.npz", **deployed_weights(variables, config))
    return d
