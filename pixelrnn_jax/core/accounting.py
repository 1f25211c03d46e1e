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

The cells' plane counts under this convention (c = 16 x CNN layers):

  SRNN      c + 2 kernels + 1 state (o = h~ is the plane that becomes h)     = c + 3
  LSTM      c + 8 kernels + 2 states (c, h) + the output gate o_t           = c + 11
  GRU       c + 6 kernels + 1 state (h read out)                            = c + 7
  MGU       c + 4 kernels + 1 state (h read out)                            = c + 5
  genRNN    c + 6 kernels + 1 state + o_t                                   = c + 8
  PixelRNN  c + 4 kernels + 1 state + o_t                                   = c + 6

Camera baselines (no CNN, no kernels) follow the same count, at the precision they run at:
the difference and event cameras hold their reference intensity h and their output o,
2 planes (the event camera's f_t is consumed where it is formed), 0.25 bytes at 1 bit; RAW
holds one plane, its frame, stored at `CellSpec.value_bits` = 12 bits rather than the
column's 32: Table S4's 1.50 bytes (the supplement's text calls RAW frames 8 bit; the table's
figure is 12 bits per pixel). A precision a camera does not run at has no memory figure
(None; '-' in Table S4). The per-pixel figure is per pixel of the encoder's plane (RAW: its
256 x 256 frame, everything else: the 64 x 64 grid).
"""
from __future__ import annotations

import decimal
import functools
import math

import jax
import jax.numpy as jnp

from pixelrnn_jax.core.config import PRECISIONS, ModelConfig
from pixelrnn_jax.core.model import PixelRNNModel

__all__ = ["FRAMES", "onsensor_params", "cnn_params", "decoder_params", "feature_planes",
           "feature_bytes_per_pixel", "readout_values_per_16_frames", "summary",
           "TABLE_S4_ROWS", "table_s4_models", "table_s4", "format_number", "format_table_s4",
           "format_summary"]

FRAMES = 16


@functools.lru_cache(maxsize=64)
def _encoder_shapes(config: ModelConfig) -> tuple[dict, tuple[int, ...], int]:
    """(encoder parameter shapes, readout shape, frames) from one abstract trace of `encode`.

    Tracing the in-pixel CNN dominates the cost of the accounting, so each config is traced
    once; the video has the fewest frames that hold both whole K-windows and 16 frames.
    """
    frames = math.lcm(config.K, FRAMES)
    video = jax.ShapeDtypeStruct((1, frames, config.frame_size, config.frame_size), jnp.float32)
    out, variables = jax.eval_shape(
        lambda v: PixelRNNModel(config).init_with_output(
            jax.random.key(0), v, method=PixelRNNModel.encode), video)
    return variables.get("params", {}).get("encoder", {}), tuple(out.shape), frames


def onsensor_params(config: ModelConfig) -> int:
    """Parameters stored on the sensor (Table S4 '# Model Params')."""
    spec = config.spec
    enc = _encoder_shapes(config)[0]
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
    enc = _encoder_shapes(config)[0]
    return sum(math.prod(leaf.shape) for name, tree in enc.items() if name.startswith("cnn_")
               for leaf in jax.tree.leaves(tree))


def decoder_params(config: ModelConfig, num_frames: int = FRAMES) -> int:
    """Parameters of the off-sensor decoder for `num_frames`-frame videos."""
    video = jax.ShapeDtypeStruct((1, num_frames, config.frame_size, config.frame_size),
                                 jnp.float32)
    shapes = jax.eval_shape(lambda v: PixelRNNModel(config).init(jax.random.key(0), v), video)
    return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes["params"]["decoder"]))


def feature_planes(config: ModelConfig) -> int:
    """Feature planes held during one forward step (see the module docstring)."""
    spec = config.spec
    return (16 * config.cnn_layers + len(spec.kernels) + spec.state_planes
            + int(spec.separate_output))


def feature_bytes_per_pixel(config: ModelConfig, bits: int | None = None) -> float | None:
    """Feature memory in bytes per pixel at `bits` per value (default: the config's).

    None where the cell does not run at that precision (a camera baseline's other column).
    """
    if bits is None:
        bits = 1 if config.binary else 32
    spec = config.spec
    if f"{bits}bit" in PRECISIONS and f"{bits}bit" not in spec.precisions:
        return None
    if spec.value_bits is not None:
        bits = spec.value_bits
    return feature_planes(config) * bits / 8.0


def readout_values_per_16_frames(config: ModelConfig) -> int:
    """Values read off the sensor per 16 frames, from the shape `encode` returns."""
    _, shape, frames = _encoder_shapes(config)
    return math.prod(shape[1:]) * FRAMES // frames


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


def _table_s4_rows() -> tuple[tuple[str, ModelConfig], ...]:
    names = {"srnn": "SRNN", "lstm": "LSTM", "gru": "GRU", "mgu": "MGU",
             "genrnn01": "genRNN (0,1)", "genrnn11": "genRNN (-1,1)", "pixelrnn": "PixelRNN"}
    rows = [
        ("RAW", ModelConfig(cnn_layers=0, cell="raw", precision="32bit", frame_size=256)),
        ("Difference Camera", ModelConfig(cnn_layers=0, cell="difference")),
        ("Event Camera", ModelConfig(cnn_layers=0, cell="event")),
    ]
    for layers in (1, 2):
        rows += [(f"{layers} CNN + {label}", ModelConfig(cnn_layers=layers, cell=cell))
                 for cell, label in names.items()]
    return tuple(rows)


TABLE_S4_ROWS = _table_s4_rows()
"""The 17 models of supplement Table S4, (label, config), in the table's order."""


def table_s4_models(precisions=("1bit", "32bit")) -> list[tuple[str, ModelConfig]]:
    """Every trainable model of Table S4: each row at each of `precisions` it runs at,
    as (label, config), e.g. ("1 CNN + GRU, 32bit", ...)."""
    return [(f"{label}, {prec}", cfg.replace(precision=prec))
            for label, cfg in TABLE_S4_ROWS for prec in precisions
            if prec in cfg.spec.precisions]


def table_s4() -> list[dict]:
    """Table S4's size columns, derived from the models of `TABLE_S4_ROWS`.

    Feature memory is exact (the table rounds to 2 decimals: 2.375 is printed 2.38);
    None stands for the table's '-'.
    """
    return [{
        "model": label,
        "onsensor_params": onsensor_params(cfg),
        "feature_bytes_per_pixel_1bit": feature_bytes_per_pixel(cfg, 1),
        "feature_bytes_per_pixel_32bit": feature_bytes_per_pixel(cfg, 32),
        "readout_values_per_16_frames": readout_values_per_16_frames(cfg),
    } for label, cfg in TABLE_S4_ROWS]


def format_number(v) -> str:
    """A table cell: '-' for None, floats to 2 decimals half up, ints with thousands."""
    if v is None:
        return "-"
    if isinstance(v, float):  # half up, as Table S4 prints 2.625 as 2.63
        return f"{decimal.Decimal(v).quantize(decimal.Decimal('0.01'), decimal.ROUND_HALF_UP):,}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def format_table_s4() -> str:
    """Table S4's size columns as text, one model a line."""
    header = ("model", "params", "bytes/px 1 bit", "bytes/px 32 bit", "readout / 16 frames")
    rows = [header] + [tuple(format_number(v) for v in r.values()) for r in table_s4()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def format_summary(config: ModelConfig) -> str:
    s = summary(config)
    rows = [(k, format_number(v)) for k, v in s.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
