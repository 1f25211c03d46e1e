"""The authors' PixelRNN program as it runs on the SCAMP-5 chip: its settings, its kernels as
the chip holds them, and the videos it takes (shared by the machine program `chip_machine`
and its fast emulation `chip_program`).

Facts (the data folder's `SCAMP5_PROGRAM.md`; coordinates (Y, X) of the 256 x 256 readout
image, 4 x 4 blocks of 64 x 64):

* Upload: the 64 x 64 frame tiled 4 x 4, its top four bit-planes written; the chip rebuilds
  -120 + sum_i bit_i * (16 * 2^i - 1) (16 levels, -120 .. 116) and binarises it (> 1 unit:
  8-bit pixel >= 128).
* CNN: block (by, bx) holds conv filter 4 by + bx of the header, PyTorch channel 4 bx + by.
  The 25 taps (bottom kernel row first) add +-10 where image XNOR weight: C(Y, X) =
  10 xcorr(Y - 2, X + 2), the neighbouring blocks' pixels as padding, -1 beyond the array;
  grid lines (Y % 64 == 0, X % 64 == 63) never accumulate.
* ReLU, max-pool over rows Y-3..Y and columns X..X+3, the pooled value spread over its 4 x 4
  cell, the map moved 1 right and 1 down, threshold > 10 units, recentred 2 left and 2 down,
  half-scaled twice (rows % 4 == 0, columns % 4 == 3): RNN input pixel (u, v) is the pooled
  value at (4u - 1, 4v + 4), i.e. the window rows 4u + dy .. +3, columns 4v + dx .. +3 with
  `pool_offset` (dy, dx) = (-4, 4), read at (4u, 4v + 5) after the move. The input lands on
  rows 63..126: its first row is lost, its last row reads -1.
* PixelRNN in the central blocks: h stored as +-80 (+80 at a cycle's first frame) and snapped
  (> 30 units) every frame; x_t written as +-80 into block (1, 1), h into (1, 2), both moved
  64 rows down and re-binarised (> 30); w_f, u_f, w_o, u_o in blocks (1, 1), (1, 2), (2, 1),
  (2, 2) with the same displaced taps (-1 outside the central blocks), grid lines 0, -80
  outside rows 64..190 / columns 65..191; the input part moved 64 columns east onto the
  hidden part: E; f = E > 10 in block (1, 2); h <- f XNOR h.
* Readout: E over the saved crop [128:192, 128:192] at the cycle's last frame.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core.quantizers import numpy_sign
from pixelrnn_jax.sensor import authors_files as official
from pixelrnn_jax.sensor import authors_model
from pixelrnn_jax.sensor.scamp5.requirements import CHIP_CYCLE, CHIP_SIDE
from pixelrnn_jax.sensor.units import HIDDEN_UNITS, UNITS_PER_PRODUCT

__all__ = ["ChipFacts", "ChipWeights", "chip_weights", "binarize_frames", "upload_planes",
           "check_video", "grid_lines", "UPLOAD_WEIGHTS", "UPLOAD_BASE", "SIDE", "ARRAY",
           "CYCLE", "TAP_ORDER"]

Array = jax.Array

SIDE = CHIP_SIDE   # block side, frame side, readout side
ARRAY = 4 * SIDE   # the 256 x 256 array
CYCLE = CHIP_CYCLE
UPLOAD_BASE = -120.0
UPLOAD_WEIGHTS = (15.0, 31.0, 63.0, 127.0)   # bit-planes 4..7 of the 8-bit frame
# kernel (row, column) of each tap, in the order the chip runs them: bottom row first
TAP_ORDER = tuple((i, j) for i in range(4, -1, -1) for j in range(5))


@dataclasses.dataclass(frozen=True)
class ChipFacts:
    """The on-chip program's settings (the recordings' defaults; module docstring).

    Attributes:
      upload_threshold: the rebuilt upload must exceed this many units to be +1.
      increment: units per +-1 product requested from the DAC ("input white").
      cnn_threshold: a pooled CNN value must exceed this many units.
      rnn_threshold: the forget gate is E > rnn_threshold (units).
      hidden_units: the level (+-) the binary hidden state and RNN input are written at.
      binarize_threshold: re-binarisation of those levels (units).
      pool_offset: (rows, columns) of the first pixel of RNN-input pixel (0, 0)'s pooling
        window in the displaced conv image C.
      cycle: frames per readout cycle (h reset to +1 at its first frame).
    """

    upload_threshold: float = 1.0
    increment: float = UNITS_PER_PRODUCT
    cnn_threshold: float = UNITS_PER_PRODUCT
    rnn_threshold: float = UNITS_PER_PRODUCT
    hidden_units: float = HIDDEN_UNITS
    binarize_threshold: float = 30.0
    pool_offset: tuple[int, int] = (-4, 4)
    cycle: int = CYCLE

    def __post_init__(self):
        for name in ("increment", "hidden_units"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"ChipFacts.{name} must be > 0, got {getattr(self, name)}")
        if len(self.pool_offset) != 2 or max(abs(int(v)) for v in self.pool_offset) > 12:
            raise ValueError(f"ChipFacts.pool_offset must be two ints within +-12, "
                             f"got {self.pool_offset}")
        object.__setattr__(self, "pool_offset", tuple(int(v) for v in self.pool_offset))
        if self.cycle < 1:
            raise ValueError(f"ChipFacts.cycle must be >= 1, got {self.cycle}")

    @property
    def anchor(self) -> tuple[int, int]:
        """Where RNN-input pixel (0, 0) is read after the 1-right-1-down move: the pooled
        window's bottom-left pixel (the max-pool's anchor), moved."""
        dy, dx = self.pool_offset
        return dy + 4, dx + 1


class ChipWeights(NamedTuple):
    """The kernels as the chip holds them: per-tap sign planes (5 5 H W) float32 +-1."""

    cnn: Array    # (5, 5, 256, 256): block (by, bx) holds channel 4 bx + by
    cell: Array   # (5, 5, 128, 128): w_f, u_f / w_o, u_o in the central 2 x 2 blocks


def _sign(a) -> np.ndarray:
    # the used slots of the authors' headers hold only +-1; sign(0) = +1 as in the model
    return numpy_sign(a).astype(np.float32)


def _block_planes(kernels: np.ndarray) -> np.ndarray:
    """(gy, gx, 5, 5) -> (5, 5, gy*64, gx*64): every block filled with its kernel's taps."""
    k = np.transpose(kernels, (2, 3, 0, 1))
    return np.repeat(np.repeat(k, SIDE, 2), SIDE, 3)


def chip_weights(weights) -> ChipWeights:
    """The weight planes of the chip from `official.OfficialWeights`, a weight file (.txt the
    authors' text format, .h the sensor header) or this library's model variables."""
    if isinstance(weights, ChipWeights):
        return weights
    if isinstance(weights, (str, Path)):
        weights = official.load_weights(weights)
    elif isinstance(weights, dict):
        weights = authors_model.from_variables(weights)
    if not isinstance(weights, official.OfficialWeights):
        raise TypeError(f"weights must be OfficialWeights, a weight file path or model "
                        f"variables, got {type(weights).__name__}")
    if weights.conv2 is not None:
        raise ValueError("the chip program runs one CNN layer; these weights have two")
    conv = np.asarray(weights.conv1)
    if conv.shape != (16, 5, 5):
        raise ValueError(f"conv1 must be (16, 5, 5), got {conv.shape}")
    cnn = np.zeros((4, 4, 5, 5), np.float32)
    for by in range(4):
        for bx in range(4):
            cnn[by, bx] = _sign(conv[4 * bx + by])
    cell = np.stack([np.stack([_sign(weights.w_f), _sign(weights.u_f)]),
                     np.stack([_sign(weights.w_o), _sign(weights.u_o)])])
    return ChipWeights(jnp.asarray(_block_planes(cnn)), jnp.asarray(_block_planes(cell)))


# ----------------------------------------------------------------------------- inputs


def check_video(video, facts: ChipFacts = ChipFacts()) -> np.ndarray:
    """The video as (videos, frames, 64, 64), or a one-line error naming what the program
    cannot take: uint8 frames, bool binarised frames or finite float intensities."""
    v = np.asarray(video)
    if v.ndim == 3:
        v = v[None]
    if v.ndim != 4 or v.shape[-2:] != (SIDE, SIDE):
        raise ValueError(f"video must be (videos, frames, {SIDE}, {SIDE}) or (frames, {SIDE}, "
                         f"{SIDE}) (the chip's 64 x 64 upload), got shape {np.shape(video)}")
    if v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"video holds no frames: shape {np.shape(video)}")
    if v.shape[1] % facts.cycle:
        raise ValueError(f"video has {v.shape[1]} frames, not a multiple of the program's "
                         f"{facts.cycle}-frame cycle")
    if v.dtype not in (np.uint8, np.bool_) and not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"video must be uint8 frames, bool binarised frames or float "
                         f"intensities, got {v.dtype}")
    if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
        raise ValueError("video holds NaN or infinite intensities")
    return v


def binarize_frames(video, facts: ChipFacts = ChipFacts()) -> np.ndarray:
    """(... H W) -> bool, True = +1: uint8 frames by the upload rule (the rebuilt top-4-bit
    value > `upload_threshold`, 8-bit >= 128 by default), bool as given, float normalised
    intensities at >= 0 (the model's sign)."""
    v = np.asarray(video)
    if v.dtype == np.bool_:
        return v
    if v.dtype == np.uint8:
        levels = UPLOAD_BASE + sum(w * ((v >> (4 + i)) & 1)
                                   for i, w in enumerate(UPLOAD_WEIGHTS))
        return levels > facts.upload_threshold
    if np.issubdtype(v.dtype, np.floating):
        return v >= 0
    raise ValueError(f"video must be uint8 frames, bool binarised frames or float intensities, "
                     f"got {v.dtype}")


def upload_planes(frames: np.ndarray) -> np.ndarray:
    """uint8 (... 64 64) -> bool (4, ... 64 64): the top four bit-planes (bit 4 first)."""
    f = np.asarray(frames, np.uint8)
    return np.stack([((f >> (4 + i)) & 1).astype(bool) for i in range(4)])


def grid_lines(n: int, origin: int = 0, width: int | None = None) -> np.ndarray:
    """(n width) bool (width default n): the grid lines (Y % 64 == 0, X % 64 == 63) of a
    window whose first pixel is (origin, origin) of the array."""
    y = np.arange(n) + origin
    x = np.arange(n if width is None else width) + origin
    return (y[:, None] % SIDE == 0) | (x[None, :] % SIDE == SIDE - 1)
