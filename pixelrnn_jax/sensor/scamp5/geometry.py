"""Register planes as sensor images, and moving their contents (the machine's geometry).

A register is a plane of shape `(..., gy, gx, s, s)`: leading axes are videos, then the grid
of PE blocks (4 x 4 on the chip), then the rows and columns of an `s x s` block (s = 64 on
the chip). `to_image` / `from_image` convert a plane to and from the sensor image
`(..., gy*s, gx*s)`, row 0 at the top.

Directions: `north` moves content towards row 0, `south` towards the last row, `west`
towards column 0 and `east` towards the last column of the image. Shifts work inside each
block (`boundary="block"`) or across the whole array (`boundary="array"`); `fill` enters at
the boundary.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DIRECTIONS", "BOUNDARIES", "to_image", "from_image", "shift_plane", "block_mask",
           "direction_offset", "is_static"]

Array = jax.Array

DIRECTIONS = {"north": (1, 0), "south": (-1, 0), "west": (0, 1), "east": (0, -1)}
BOUNDARIES = ("block", "array")


def to_image(plane: Array) -> Array:
    """(..., gy, gx, s, s) -> (..., gy*s, gx*s): the planes as the sensor image."""
    *lead, gy, gx, s, s2 = plane.shape
    nl = len(lead)
    img = jnp.moveaxis(plane, nl + 2, nl + 1)  # (..., gy, s, gx, s)
    return img.reshape(*lead, gy * s, gx * s2)


def from_image(image: Array, block: int) -> Array:
    """(..., H, W) -> (..., H/block, W/block, block, block); inverse of `to_image`."""
    *lead, h, w = image.shape
    if h % block or w % block:
        raise ValueError(f"image {h}x{w} is not a grid of {block}x{block} blocks")
    nl = len(lead)
    img = image.reshape(*lead, h // block, block, w // block, block)
    return jnp.moveaxis(img, nl + 1, nl + 2)


def _shift2d(x: Array, dy, dx, fill, reach: int | None) -> Array:
    """out[..., i, j] = x[..., i + dy, j + dx] over the last two axes, `fill` outside.

    Static offsets slice a padded copy; traced ones (`reach` bounds them) slice it
    dynamically.
    """
    h, w = x.shape[-2:]
    fill = jnp.asarray(fill, x.dtype)
    lead = [(0, 0)] * (x.ndim - 2)
    if reach is None:
        if abs(dy) >= h or abs(dx) >= w:
            return jnp.full(x.shape, fill, x.dtype)
        xp = jnp.pad(x, lead + [(max(-dy, 0), max(dy, 0)), (max(-dx, 0), max(dx, 0))],
                     constant_values=fill)
        oy, ox = max(dy, 0), max(dx, 0)
        return xp[..., oy:oy + h, ox:ox + w]
    xp = jnp.pad(x, lead + [(reach, reach), (reach, reach)], constant_values=fill)
    start = (0,) * (x.ndim - 2) + (reach + dy, reach + dx)
    return jax.lax.dynamic_slice(xp, start, x.shape)


def is_static(*values) -> bool:
    return all(isinstance(v, (int, np.integer)) for v in values)


def shift_plane(x: Array, dy, dx, boundary: str = "block", fill=0,
                reach: int | None = None) -> Array:
    """Moves plane contents: out(p) = x(p + (dy, dx)); see the module docstring.

    `dy`, `dx` are ints, or traced integers bounded in magnitude by the static `reach`.
    """
    if not is_static(dy, dx):
        if reach is None:
            raise ValueError("shifting by traced offsets needs a static reach")
    else:
        dy, dx, reach = int(dy), int(dx), None
    if boundary == "block":
        return _shift2d(x, dy, dx, fill, reach)
    if boundary == "array":
        s = x.shape[-1]
        return from_image(_shift2d(to_image(x), dy, dx, fill, reach), s)
    raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")


def direction_offset(direction: str, n: int) -> tuple[int, int]:
    """The (dy, dx) of moving content `n` pixels towards `direction`."""
    try:
        uy, ux = DIRECTIONS[direction]
    except KeyError:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, "
                         f"got {direction!r}") from None
    if n < 0:
        raise ValueError(f"shift distance must be >= 0, got {n}")
    return uy * n, ux * n


def block_mask(grid: tuple[int, int], rows: Sequence[int] | None = None,
               cols: Sequence[int] | None = None) -> np.ndarray:
    """(gy, gx, 1, 1) bool: the blocks in `rows` x `cols` (None: all), for pattern writes."""
    gy, gx = grid
    r = np.zeros(gy, bool)
    r[list(range(gy)) if rows is None else list(rows)] = True
    c = np.zeros(gx, bool)
    c[list(range(gx)) if cols is None else list(cols)] = True
    return (r[:, None] & c[None, :])[..., None, None]
