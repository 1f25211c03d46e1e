"""A chip's fixed pattern as planes: drawn once from the chip's seed (`noise.ChipPattern`),
the same in every run; and the readout's fixed offset (drawn, plus a measured map).

Every plane is drawn in the sensor image's shape (256 x 256 on the chip) and returned in
the shape asked for, (gy, gx, s, s) register planes or (H, W) images: the same pixels
either way, so the machine and the fast emulation see one chip.
"""
from __future__ import annotations

import functools
import zlib
from pathlib import Path

import numpy as np

from pixelrnn_jax.sensor.scamp5.noise import ChipPattern, Readout

__all__ = ["pattern_planes", "dac_plane", "readout_offset_plane"]


def _field(seed: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    stream = zlib.crc32(name.encode())
    return np.random.default_rng([seed, stream]).standard_normal(shape).astype(np.float32)


@functools.lru_cache(maxsize=64)
def pattern_planes(pattern: ChipPattern, grid_shape: tuple[int, ...], register: str
                   ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The chip's per-pixel planes of writes into `register`: (gain of results >= 0, gain of
    results < 0, offset), of `grid_shape` (gy, gx, s, s) or (H, W) (the same pixels either
    way), None where off; the two gains share one field when their stds are equal.

    Drawn with NumPy on the host from the chip's seed: constants of the compiled program.
    """
    image = _image_shape(grid_shape)
    gain = gain_neg = offset = None
    if pattern.gain_std > 0 or pattern.negative_gain_std > 0:
        z = _field(pattern.seed, image, f"gain/{register}")
        gain = _to_shape(np.float32(pattern.gain_std) * z, grid_shape)
        gain_neg = gain if pattern.negative_gain_std == pattern.gain_std else _to_shape(
            np.float32(pattern.negative_gain_std) * z, grid_shape)
    if pattern.offset_std > 0:
        offset = _to_shape(pattern.offset_std * _field(pattern.seed, image,
                                                       f"offset/{register}"), grid_shape)
    return gain, gain_neg, offset


@functools.lru_cache(maxsize=8)
def dac_plane(pattern: ChipPattern, grid_shape: tuple[int, ...]) -> np.ndarray | None:
    """The chip's per-pixel DAC gain (1 + dac_gain_std * z), None when off."""
    if pattern.dac_gain_std <= 0:
        return None
    z = _field(pattern.seed, _image_shape(grid_shape), "dac")
    return _to_shape(1.0 + np.float32(pattern.dac_gain_std) * z, grid_shape)


@functools.lru_cache(maxsize=8)
def readout_offset_plane(pattern_seed: int, readout: Readout,
                         grid_shape: tuple[int, ...]) -> np.ndarray | None:
    """The readout's fixed per-pixel offset (units): drawn plus measured map, None if off."""
    image = _image_shape(grid_shape)
    out = None
    if readout.offset_std > 0:
        out = readout.offset_std * _field(pattern_seed, image, "readout")
    if readout.offset_map is not None:
        m = _load_map(readout.offset_map)
        if m.shape[0] < image[0] or m.shape[1] < image[1]:
            raise ValueError(f"readout offset map {readout.offset_map} is {m.shape}, smaller "
                             f"than the sensor image {image}: give a map of the whole array")
        # a smaller simulated array is the chip's top-left corner, as its drawn planes are
        m = m[:image[0], :image[1]]
        out = m if out is None else out + m
    return None if out is None else _to_shape(out.astype(np.float32), grid_shape)


@functools.lru_cache(maxsize=4)
def _load_map(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"readout offset map not found: {p}")
    return np.asarray(np.load(p), np.float32)


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 2:
        return tuple(shape)
    gy, gx, s, s2 = shape
    return gy * s, gx * s2


def _to_shape(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 2:
        return image
    gy, gx, s, s2 = shape
    return np.ascontiguousarray(image.reshape(gy, s, gx, s2).transpose(0, 2, 1, 3))
