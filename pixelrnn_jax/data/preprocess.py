"""Frame preprocessing as in the paper (supplement S2.1): ImageNet normalisation, grayscale,
bilinear resize; 16 evenly spaced frames; random temporal and spatial offsets in training.

Stored representation. Per-channel ImageNet normalisation, the grayscale conversion and the
bilinear resize are all linear (affine) maps, so they commute up to rounding:

    gray_norm = sum_c w_c (x_c / 255 - mean_c) / std_c = A * q / 255 - B,
    q = sum_c (w_c / std_c) / A * x_c,   A = sum_c w_c / std_c,   B = sum_c w_c mean_c / std_c,

with x_c the 8-bit RGB channels and w = ITU-R BT.601 luma weights (0.299, 0.587, 0.114)
applied to the ImageNet-normalised channels. q is a convex combination of the channels, so
it lies in [0, 255]: datasets store q, resized to the model's frame size, as uint8 (one byte
per pixel), and `normalize_frames` applies the affine map when batches are made. For a gray
source (R = G = B = g), q = g. Rounding q to uint8 costs at most 0.5 * A / 255 = 0.0087 in
normalised units.

Resizing is PIL's bilinear filter (a triangle filter widened when downsampling, i.e. what
torchvision's Resize does on PIL images), applied to q as a float image, then rounded.
The normalised value is >= 0 (a +1 pixel for the binary encoder) exactly where
q >= B * 255 / A = 117.0009, i.e. for stored q >= 118 (q = 117 normalises to
-1.5e-5: implementations with other rounding of the constants may differ there).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "GRAY_WEIGHTS", "STORE_WEIGHTS", "NORM_SCALE",
           "NORM_OFFSET", "ZERO_LEVEL", "IMAGE_SUFFIXES", "normalize_frames", "rgb_to_stored",
           "resize_stored", "read_frame", "natural_key", "clip_indices", "max_offset",
           "random_clip_indices", "max_shift", "shift_frames"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, on the normalised channels

_A = float(sum(w / s for w, s in zip(GRAY_WEIGHTS, IMAGENET_STD)))
_B = float(sum(w * m / s for w, m, s in zip(GRAY_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD)))
#: weights turning 8-bit RGB into the stored channel q (they sum to 1)
STORE_WEIGHTS = tuple(w / s / _A for w, s in zip(GRAY_WEIGHTS, IMAGENET_STD))
#: normalised = q * NORM_SCALE - NORM_OFFSET
NORM_SCALE = _A / 255.0
NORM_OFFSET = _B
#: stored values at or above this are non-negative once normalised (binarised to +1)
ZERO_LEVEL = _B / NORM_SCALE

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


def normalize_frames(frames) -> np.ndarray:
    """uint8 stored frames (any shape) -> float32 ImageNet-normalised grayscale intensities.

    The model's binary encoder sees sign(normalize_frames(frames)) with sign(0) = +1.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"normalize_frames expects uint8 frames (the stored representation), "
                         f"got dtype {frames.dtype}")
    out = np.multiply(frames, np.float32(NORM_SCALE), dtype=np.float32)
    out -= np.float32(NORM_OFFSET)
    return out


def rgb_to_stored(rgb) -> np.ndarray:
    """8-bit RGB (..., 3) or gray (...) -> float32 q in [0, 255] (not rounded, not resized)."""
    rgb = np.asarray(rgb)
    if rgb.ndim >= 3 and rgb.shape[-1] == 3:
        return np.tensordot(rgb.astype(np.float32), np.asarray(STORE_WEIGHTS, np.float32),
                            axes=([-1], [0]))
    return rgb.astype(np.float32)


def resize_stored(q: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of one float q image (H, W) to (size, size), rounded to uint8."""
    if q.shape != (size, size):
        q = np.asarray(Image.fromarray(np.ascontiguousarray(q, np.float32), mode="F")
                       .resize((size, size), Image.BILINEAR))
    return np.clip(np.rint(q), 0, 255).astype(np.uint8)


def read_frame(path, size: int) -> np.ndarray:
    """Reads one image file into a stored (size, size) uint8 frame; errors name the file."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("L", "I;16", "I", "F"):
                arr = np.asarray(im.convert("L") if im.mode != "L" else im)
            else:
                arr = np.asarray(im.convert("RGB"))
    except Exception as err:  # PIL raises several types for damaged or foreign files
        raise ValueError(f"cannot read frame {path}: {err}; replace or delete this file") \
            from err
    return resize_stored(rgb_to_stored(arr), size)


def natural_key(path) -> tuple:
    """Sort key ordering frame-2 before frame-10."""
    name = Path(path).name
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


# ----------------------------------------------------------------------------- time

def clip_indices(length: int, num_frames: int = 16, offset: int | None = None) -> np.ndarray:
    """Indices of `num_frames` evenly spaced frames of a video of `length` frames.

    floor(linspace(0, length, num_frames, endpoint=False)) + offset, offset in
    [0, max_offset(length)]; offset=None gives the end-aligned clip (largest offset, whose
    last frame is the video's last frame when length >= num_frames) used for evaluation.
    Videos shorter than num_frames repeat frames evenly.
    """
    if length < 1:
        raise ValueError(f"a video needs at least one frame, got length {length}")
    base = np.floor(np.linspace(0, length, num_frames, endpoint=False)).astype(np.int64)
    top = max_offset(length, num_frames)
    offset = top if offset is None else int(offset)
    if not 0 <= offset <= top:
        raise ValueError(f"temporal offset {offset} outside [0, {top}] for {length} frames")
    return base + offset


def max_offset(length: int, num_frames: int = 16) -> int:
    last = int(np.floor((num_frames - 1) * length / num_frames))
    return max(length - 1 - last, 0)


def random_clip_indices(length: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Training clip: evenly spaced frames with a random temporal offset; a video shorter
    than num_frames keeps every frame once and repeats a random subset of them."""
    if length >= num_frames:
        return clip_indices(length, num_frames, int(rng.integers(0, max_offset(length,
                                                                             num_frames) + 1)))
    extra = rng.choice(length, num_frames - length, replace=num_frames - length > length)
    return np.sort(np.concatenate([np.arange(length), extra]))


# -------------------------------------------------------------------------- space

def max_shift(size: int, fraction: float) -> int:
    return int(round(fraction * size))


def shift_frames(clips: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Translates each clip (b, t, H, W) by (dy[i], dx[i]) pixels, repeating edge pixels.

    A positive dy moves the content down, a positive dx moves it right.
    """
    b, _, h, w = clips.shape
    dy, dx = np.asarray(dy, np.int64), np.asarray(dx, np.int64)
    m = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    if m == 0:
        return clips.copy()
    m_h, m_w = min(m, h), min(m, w)
    padded = np.pad(clips, ((0, 0), (0, 0), (m_h, m_h), (m_w, m_w)), mode="edge")
    dy, dx = np.clip(dy, -m_h, m_h), np.clip(dx, -m_w, m_w)
    out = np.empty_like(clips)
    for i in range(b):
        out[i] = padded[i, :, m_h - dy[i]:m_h - dy[i] + h, m_w - dx[i]:m_w - dx[i] + w]
    return out
