"""The analog non-idealities of the SCAMP-5 model's registers (`NoiseModel`) and the
noise bank its operations read.

Noise (`NoiseModel`, every source configurable and switchable off):
  * per-operation noise: every analog operation adds zero-mean Gaussian noise (std `op_std`);
    a shift by n pixels is n neighbour transfers, std `transfer_std * sqrt(n)`;
  * gain: a value written through the DAC (`load`, `add_const`) comes out `gain` times the
    requested value; with the default calibration "add 10" reads back with mean 10.73 and
    std 2.90, the measurement of supplement Fig. S4;
  * fixed-pattern non-uniformity: a per-pixel gain `1 + pixel_gain_std * z` on DAC writes,
    drawn once from `pixel_seed` (a property of the chip, the same in every run);
  * decay: `tick` (once per frame) scales every analog register by `1 - decay`, and every
    neighbour transfer by `1 - transfer_decay`.
The Gaussian samples come from a bank of i.i.d. N(0, 1) values drawn once per run from the
run's key (`source="bank"`): each operation reads, for every video, a window of the bank at
a random offset with a random sign, hashed from the run's key, the operation's count and
the video's index. Every sample is exactly N(0, std^2); two windows share values only where
they overlap, and then (unless their offsets coincide) at different pixels.
`source="fresh"` draws new normals for every operation instead: the same statistics, but
much slower on a CPU.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["NoiseModel", "MEASURED_INCREMENT", "MEASURED_MEAN", "MEASURED_STD",
           "DEFAULT_PIXEL_GAIN_STD", "SOURCES", "bank_key", "draw_bank", "pixel_gain_pattern",
           "mix32"]

Array = jax.Array

SOURCES = ("bank", "fresh")

# Supplement Fig. S4: writing 10 units reads back with mean 10.73 and std 2.90.
MEASURED_INCREMENT = 10.0
MEASURED_MEAN = 10.73
MEASURED_STD = 2.90
DEFAULT_PIXEL_GAIN_STD = 0.02


def _calibrated_op_std(pixel_gain_std: float) -> float:
    fixed = MEASURED_MEAN * pixel_gain_std
    return math.sqrt(MEASURED_STD ** 2 - fixed ** 2)


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """The non-idealities of the analog registers; the default is calibrated to Fig. S4.

    Attributes:
      gain: DAC gain; a value v written by `load` / `add_const` comes out as `gain * v`.
      op_std: std (units) of the Gaussian noise every analog operation adds.
      transfer_std: std (units) added per pixel a shift moves a value (None: `op_std`).
      pixel_gain_std: relative std of the fixed per-pixel gain of DAC writes.
      pixel_seed: seed of that fixed pattern (the chip's, not the run's).
      decay: fraction of every analog value lost per `tick` (one frame).
      transfer_decay: fraction lost per pixel moved by a shift.
      saturation: (low, high) range of the analog registers, or None for no clipping.
      source: "bank" (fast, see the module docstring) or "fresh" normals per operation.
      bank_factor: the bank holds `bank_factor` times the samples of one video's plane.

    `gain`, `op_std` and `pixel_gain_std` of the default satisfy: mean of "add 10" = 10.73 and
    std = sqrt((10.73 * pixel_gain_std)^2 + op_std^2) = 2.90. `decay` and `transfer_decay` are
    not measured in the paper; their defaults are small placeholders.
    """

    gain: float = MEASURED_MEAN / MEASURED_INCREMENT
    op_std: float = _calibrated_op_std(DEFAULT_PIXEL_GAIN_STD)
    transfer_std: float | None = None
    pixel_gain_std: float = DEFAULT_PIXEL_GAIN_STD
    pixel_seed: int = 0
    decay: float = 0.01
    transfer_decay: float = 0.002
    saturation: tuple[float, float] | None = (-128.0, 127.0)
    source: str = "bank"
    bank_factor: int = 8

    def __post_init__(self):
        for name in ("op_std", "pixel_gain_std", "decay", "transfer_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"NoiseModel.{name} must be >= 0, got {getattr(self, name)}")
        if self.transfer_std is not None and self.transfer_std < 0:
            raise ValueError(f"NoiseModel.transfer_std must be >= 0, got {self.transfer_std}")
        if self.decay >= 1 or self.transfer_decay >= 1:
            raise ValueError("NoiseModel.decay and transfer_decay must be < 1 (fractions lost)")
        if self.gain <= 0:
            raise ValueError(f"NoiseModel.gain must be > 0, got {self.gain}")
        if self.source not in SOURCES:
            raise ValueError(f"NoiseModel.source must be one of {SOURCES}, got {self.source!r}")
        if self.bank_factor < 1:
            raise ValueError(f"NoiseModel.bank_factor must be >= 1, got {self.bank_factor}")
        if self.saturation is not None:
            lo, hi = self.saturation
            if not lo < hi:
                raise ValueError(f"NoiseModel.saturation must be (low, high) with low < high, "
                                 f"got {self.saturation}")
            object.__setattr__(self, "saturation", (float(lo), float(hi)))

    @classmethod
    def ideal(cls, saturation: tuple[float, float] | None = (-128.0, 127.0)) -> "NoiseModel":
        """Every noise source off: unit gain, no noise, no fixed pattern, no decay.

        The registers still saturate at `saturation` (pass None to lift the limit).
        """
        return cls(gain=1.0, op_std=0.0, transfer_std=0.0, pixel_gain_std=0.0, decay=0.0,
                   transfer_decay=0.0, saturation=saturation)

    @classmethod
    def calibrated(cls, mean: float = MEASURED_MEAN, std: float = MEASURED_STD,
                   increment: float = MEASURED_INCREMENT,
                   pixel_gain_std: float = DEFAULT_PIXEL_GAIN_STD, **kw) -> "NoiseModel":
        """The model whose "add `increment`" reads back with the given mean and std."""
        fixed = mean * pixel_gain_std
        if fixed > std:
            raise ValueError(f"pixel_gain_std={pixel_gain_std} alone gives std {fixed:.3f} > "
                             f"{std}; lower it")
        return cls(gain=mean / increment, op_std=math.sqrt(std ** 2 - fixed ** 2),
                   pixel_gain_std=pixel_gain_std, **kw)

    def replace(self, **changes) -> "NoiseModel":
        return dataclasses.replace(self, **changes)

    @property
    def shift_std(self) -> float:
        return self.op_std if self.transfer_std is None else self.transfer_std

    @property
    def random(self) -> bool:
        """Whether a run needs a PRNG key (some per-operation noise is on)."""
        return self.op_std > 0 or self.shift_std > 0


def mix32(x: Array) -> Array:
    """murmur3's 32-bit finalizer: a bijective integer hash."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def bank_key(rng: Array) -> Array:
    """The part of a run's key that draws its noise bank (see `Machine.create`)."""
    return jax.random.split(rng)[1]


def draw_bank(noise: NoiseModel, shape: Sequence[int], key: Array) -> Array:
    """The i.i.d. N(0, 1) bank for planes of `shape` (..., gy, gx, s, s): `bank_factor` times
    the samples of one video's plane, whatever the batch."""
    return jax.random.normal(key, (noise.bank_factor * math.prod(shape[-4:]),), jnp.float32)


@functools.lru_cache(maxsize=8)
def pixel_gain_pattern(seed: int, grid_shape: tuple[int, ...], std: float) -> np.ndarray:
    """The chip's fixed per-pixel gain (gy, gx, s, s): 1 + std * N(0, 1), seeded.

    Drawn with NumPy on the host, so it is a constant of the compiled program (the same in
    every run and under every transformation).
    """
    z = np.random.default_rng(seed).standard_normal(grid_shape).astype(np.float32)
    return 1.0 + np.float32(std) * z


