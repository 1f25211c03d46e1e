"""Exact accounting of what the on-sensor encoder costs (supplement Table S4, paper Table 1).

Every number is derived from the model itself: parameter shapes from `jax.eval_shape` of the
initializer, readout sizes from `jax.eval_shape` of `encode`, feature planes from the cell's
structure. Counting convention (it reproduces every row of Table S4):

* On-sensor parameters: all encoder parameters (CNN kernels and thresholds, cell kernels),
  except cell scalars beyond the cell's `counted_scalars`. PixelRNN's gate threshold theta is
  a comparator setting of the sensor program, not a stored weight plane, and Table S4 does not
  count it (501 = 401 + 4 x 25); genRNN counts its two gate offsets (553 = 401 + 6 x 25 + 2).
* Feature memory per pixel: the 64x64 planes a forward step must hold, per pixel of the
  64x64 grid: 16 convolution maps per CNN layer (the pooled, tiled output overwrites them),
  one plane per cell kernel convolution, one per recurrent state, and one for an output
  plane that is not a state. At 1 bit a plane costs 1/8 byte, at 32 bit 4 bytes.
* Readout: values leaving the sensor per 16 frames, from the shape `encode` returns.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.cells import get_cell_spec
from pixelrnn_jax.config import ModelConfig
from pixelrnn_jax.model import PixelRNNModel

FRAMES = 16


def _param_shapes(config: ModelConfig) -> dict:
    video = jax.ShapeDtypeStruct((1, config.K, config.frame_size, config.frame_size), jnp.float32)
    shapes = jax.eval_shape(lambda v: PixelRNNModel(config).init(jax.random.key(0), v), video)
    return shapes["params"]


def onsensor_params(config: ModelConfig) -> int:
    """Parameters stored on the sensor (Table S4 '# Model Params')."""
    spec = get_cell_spec(config.cell)
    enc = _param_shapes(config).get("encoder", {})
    total = 0
    for name, tree in enc.items():
        leaves = jax.tree_util.tree_leaves_with_path(tree)
        for path, leaf in leaves:
            key = path[-1].key
            if name == "cell" and key in spec.scalars:
                continue
            total += math.prod(leaf.shape)
    return total + spec.counted_scalars


def cnn_params(config: ModelConfig) -> int:
    """Parameters of the in-pixel CNN layers alone (Table 1: 401 per layer)."""
    enc = _param_shapes(config).get("encoder", {})
    return sum(math.prod(leaf.shape) for name, tree in enc.items() if name.startswith("cnn_")
               for leaf in jax.tree.leaves(tree))


def decoder_params(config: ModelConfig, num_frames: int = FRAMES) -> int:
    """Parameters of the off-sensor decoder for `num_frames`-frame videos."""
    video = jax.ShapeDtypeStruct((1, num_frames, config.frame_size, config.frame_size),
                                 jnp.float32)
    shapes = jax.eval_shape(lambda v: PixelRNNModel(config).init(jax.random.key(0), v), video)
    return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes["params"]["decoder"]))


def feature_planes(config: ModelConfig) -> int:
    """64x64 feature planes held during one forward step (see the module docstring)."""
    spec = get_cell_spec(config.cell)
    if spec.feature_planes is not None:
        return spec.feature_planes
    return (16 * config.cnn_layers + len(spec.kernels) + spec.state_planes
            + int(spec.separate_output))


def feature_bytes_per_pixel(config: ModelConfig, bits: int | None = None) -> float:
    """Feature memory in bytes per pixel at `bits` per value (default: the config's)."""
    if bits is None:
        bits = 1 if config.binary else 32
    spec = get_cell_spec(config.cell)
    return feature_planes(config) * bits / 8.0 * spec.memory_scale


def readout_values_per_16_frames(config: ModelConfig) -> int:
    """Values read off the sensor per 16 frames, from the shape `encode` returns."""
    from pixelrnn_jax.model import _encode_jit
    video = jax.ShapeDtypeStruct((1, FRAMES, config.frame_size, config.frame_size), jnp.float32)
    variables = jax.eval_shape(
        lambda v: PixelRNNModel(config).init(jax.random.key(0), v), video)
    out = jax.eval_shape(lambda var, v: _encode_jit(var, v, config, None), variables, video)
    return int(np.prod(out.shape[1:]))


def summary(config: ModelConfig) -> dict:
    """Everything a user asks about the size of a model, as one dict."""
    bits = 1 if config.binary else 32
    params = onsensor_params(config)
    readout = readout_values_per_16_frames(config)
    raw = FRAMES * 256 * 256
    return {
        "cell": config.cell,
        "cnn_layers": config.cnn_layers,
        "precision": config.precision,
        "onsensor_params": params,
        "bits_per_param": bits,
        "onsensor_param_bytes": params * bits / 8.0,
        "decoder_params": decoder_params(config),
        "feature_planes": feature_planes(config),
        "feature_bytes_per_pixel_1bit": feature_bytes_per_pixel(config, 1),
        "feature_bytes_per_pixel_32bit": feature_bytes_per_pixel(config, 32),
        "readout_values_per_16_frames": readout,
        "readout_compression_vs_raw": raw / readout,
    }


def format_summary(config: ModelConfig) -> str:
    s = summary(config)
    rows = [(k, f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else v)
            for k, v in s.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
