"""A vectorized register-level model of the SCAMP-5 sensor-processor (paper Sec. 5.1-5.2,
supplement S2.2-S2.3).

The chip is a 256 x 256 array of processing elements (PEs). Each PE has six analog registers
A-F, a NEWS register through which analog values reach a neighbour, 13 digital registers
R0-R12 and a FLAG; all PEs execute the same instruction (SIMD), optionally only where a digital
register is set ("where" execution). This module models that register file and its
instruction set as pure functions `op(state, ...) -> state` that compose under `jit`, `vmap`
and `scan`.

Layout. Every register is a plane of shape `(..., gy, gx, s, s)`: leading axes are videos,
then the grid of PE blocks (4 x 4 on the chip), then the rows and columns of an `s x s` block
(s = 64 on the chip). The program runs the same instruction on every block and every video, so
the block grid and the batch are vectorized axes: every op is elementwise over them, exactly
what `jax.vmap` of a per-block program over both would compute. `to_image` / `from_image`
convert a plane to and from the sensor image `(..., gy*s, gx*s)`, row 0 at the top.

Units. Analog values are in the chip's units; they saturate at `NoiseModel.saturation`
(-128 .. 127 by default). Digital registers hold bools.

Directions. `north` moves content towards row 0, `south` towards the last row, `west`
towards column 0 and `east` towards the last column of the readout image. Shifts work
inside each block (`boundary="block"`, what the PyTorch zero padding of a per-block
convolution needs) or across the whole array (`boundary="array"`, what the wiring does);
`fill` enters at the boundary.

Noise: `noise.NoiseModel` (every source configurable and switchable off).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, draw_bank, mix32, pixel_gain_pattern

__all__ = ["Machine", "State", "ANALOG", "DIGITAL", "DIRECTIONS", "BOUNDARIES", "to_image",
           "from_image", "shift_plane", "block_mask"]

Array = jax.Array

ANALOG = ("A", "B", "C", "D", "E", "F", "NEWS")
DIGITAL = tuple(f"R{i}" for i in range(13)) + ("FLAG",)
DIRECTIONS = {"north": (1, 0), "south": (-1, 0), "west": (0, 1), "east": (0, -1)}
BOUNDARIES = ("block", "array")

@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class State:
    """The register file: analog planes (float32), digital planes (bool), and the count of
    noisy operations so far (which indexes each operation's noise; None without noise)."""

    analog: dict
    digital: dict
    count: Array | None

    def replace(self, **changes) -> "State":
        return dataclasses.replace(self, **changes)


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


def _is_static(*values) -> bool:
    return all(isinstance(v, (int, np.integer)) for v in values)


def shift_plane(x: Array, dy, dx, boundary: str = "block", fill=0,
                reach: int | None = None) -> Array:
    """Moves plane contents: out(p) = x(p + (dy, dx)); see the module docstring.

    `dy`, `dx` are ints, or traced integers bounded in magnitude by the static `reach`.
    """
    if not _is_static(dy, dx):
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


def _direction(direction: str, n: int) -> tuple[int, int]:
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


class Machine:
    """The instruction set on planes of one shape, with a run's noise bank and chip pattern.

    Create with `Machine.create(noise, shape, rng)` inside the traced function; `shape` is the
    plane shape (..., gy, gx, s, s). All methods are pure: they return a new `State`.
    """

    def __init__(self, noise: NoiseModel, shape: tuple[int, ...], key: Array | None,
                 bank: Array | None, pixel_gain: Array | None):
        self.noise = noise
        self.shape = tuple(shape)
        self.key = key
        self.bank = bank
        self.pixel_gain = pixel_gain

    @classmethod
    def create(cls, noise: NoiseModel, shape: Sequence[int], rng: Array | None = None, *,
               bank: Array | None = None) -> "Machine":
        """The machine for planes of `shape`, its noise drawn from `rng`.

        `bank`: the run's noise bank when it was drawn beforehand (`draw_bank`, the same key);
        Drawn inside the same computation, the bank can be fused into its readers by XLA,
        which then regenerates normals at every operation: a fast run draws it in a separate
        call (as `simulate` does).
        """
        shape = tuple(int(d) for d in shape)
        if len(shape) < 4 or shape[-1] != shape[-2]:
            raise ValueError(f"plane shape must be (..., gy, gx, s, s), got {shape}")
        key = None
        if noise.random:
            if rng is None:
                raise ValueError("this noise model needs a PRNG key: pass rng=jax.random.key(..)"
                                 " or use NoiseModel.ideal()")
            key, key_bank = jax.random.split(rng)   # key_bank == bank_key(rng)
            if noise.source == "bank":
                if bank is None:
                    bank = draw_bank(noise, shape, key_bank)
                key = jax.random.bits(key, (2,), jnp.uint32)
        else:
            bank = None
        pixel_gain = None
        if noise.pixel_gain_std > 0:
            pixel_gain = jnp.asarray(pixel_gain_pattern(noise.pixel_seed, shape[-4:],
                                                        noise.pixel_gain_std))
        return cls(noise, shape, key, bank, pixel_gain)

    # ---------------------------------------------------------------------------- state

    @property
    def grid(self) -> tuple[int, int]:
        return self.shape[-4], self.shape[-3]

    @property
    def block(self) -> int:
        return self.shape[-1]

    def init(self) -> State:
        """All analog registers 0, all digital registers clear."""
        return State(analog={r: jnp.zeros(self.shape, jnp.float32) for r in ANALOG},
                     digital={r: jnp.zeros(self.shape, bool) for r in DIGITAL},
                     count=jnp.zeros((), jnp.uint32) if self.noise.random else None)

    def on_blocks(self, state: State, rows: slice, cols: slice, program) -> State:
        """Runs `program(machine, state) -> state` with only a rectangle of blocks selected.

        The other blocks are neither changed nor charged noise. Inside, the rectangle is the
        whole array: shifts with `boundary="array"` see its edge as the array edge.
        """
        def sub(p):
            return p[..., rows, cols, :, :]

        shape = jax.eval_shape(sub, jax.ShapeDtypeStruct(self.shape, jnp.float32)).shape
        gain = None if self.pixel_gain is None else sub(self.pixel_gain)
        vm = Machine(self.noise, shape, self.key, self.bank, gain)
        before = State(analog={k: sub(v) for k, v in state.analog.items()},
                       digital={k: sub(v) for k, v in state.digital.items()}, count=state.count)
        after = program(vm, before)

        def put(regs, old, new):
            # registers the program did not write keep their full planes untouched
            return {k: v if new[k] is old[k] else v.at[..., rows, cols, :, :].set(new[k])
                    for k, v in regs.items()}

        return State(analog=put(state.analog, before.analog, after.analog),
                     digital=put(state.digital, before.digital, after.digital),
                     count=after.count)

    # ---------------------------------------------------------------------------- helpers

    def _check(self, state: State, names: Sequence[str], kind: str) -> None:
        regs = state.analog if kind == "analog" else state.digital
        for n in names:
            if n not in regs:
                raise ValueError(f"unknown {kind} register {n!r}: choose one of {sorted(regs)}")

    def _gaussian(self, state: State, std: float) -> tuple[State, Array | float]:
        if std <= 0:
            return state, 0.0
        count = state.count
        state = state.replace(count=count + jnp.uint32(1))
        if self.noise.source == "fresh":
            z = jax.random.normal(jax.random.fold_in(self.key, count), self.shape, jnp.float32)
            return state, std * z
        chunk = math.prod(self.shape[-4:])   # one video's plane
        videos = math.prod(self.shape[:-4])
        m = self.bank.shape[0]
        if chunk > m:
            raise ValueError(f"noise bank of {m} samples is smaller than a plane of {chunk}")
        # A counter-based hash picks each video's window: a few integer mixes per operation,
        # where a threefry split per operation would dominate compile time.
        base = mix32(self.key[0] ^ mix32(count + self.key[1]))
        h = mix32(base + jnp.arange(videos, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9))
        offsets = (h % jnp.uint32(m - chunk + 1)).astype(jnp.int32)
        signs = jnp.where((mix32(h ^ base) & 1) == 1, std, -std).astype(jnp.float32)
        if videos == 1:
            window = jax.lax.dynamic_slice(self.bank, offsets, (chunk,))
            return state, (window * signs[0]).reshape(self.shape)
        windows = jax.vmap(lambda o: jax.lax.dynamic_slice(self.bank, (o,), (chunk,)))(offsets)
        return state, (windows * signs[:, None]).reshape(self.shape)

    def _clip(self, v: Array) -> Array:
        if self.noise.saturation is None:
            return v
        lo, hi = self.noise.saturation
        return jnp.clip(v, lo, hi)

    def _write(self, state: State, dst: str, value: Array, where: str | None,
               std: float) -> State:
        """dst <- saturate(value + noise) where the digital register `where` is set."""
        self._check(state, [dst], "analog")
        state, z = self._gaussian(state, std)
        new = self._clip(value + z)
        if where is not None:
            self._check(state, [where], "digital")
            new = jnp.where(state.digital[where], new, state.analog[dst])
        new = jnp.broadcast_to(new, self.shape).astype(jnp.float32)
        return state.replace(analog={**state.analog, dst: new})

    def _dac(self, value) -> Array:
        v = jnp.asarray(value, jnp.float32)
        if self.noise.gain != 1.0:
            v = v * self.noise.gain
        if self.pixel_gain is not None:
            v = v * self.pixel_gain
        return v

    def _set_digital(self, state: State, dst: str, value: Array) -> State:
        self._check(state, [dst], "digital")
        value = jnp.broadcast_to(jnp.asarray(value, bool), self.shape)
        return state.replace(digital={**state.digital, dst: value})

    # ---------------------------------------------------------------------------- analog

    def load(self, state: State, dst: str, value, where: str | None = None) -> State:
        """dst <- value through the DAC (gain, fixed pattern, noise); value: scalar or plane."""
        return self._write(state, dst, self._dac(value), where, self.noise.op_std)

    def add_const(self, state: State, dst: str, src: str, value,
                  where: str | None = None) -> State:
        """dst <- src + value (the DAC increment, e.g. +-10 per multiply-accumulate)."""
        self._check(state, [src], "analog")
        return self._write(state, dst, state.analog[src] + self._dac(value), where,
                           self.noise.op_std)

    def add_signed(self, state: State, dst: str, src: str, value, sign: str,
                   where: str | None = None) -> State:
        """dst <- src + value where digital `sign` is set, src - value where it is clear.

        One multiply-accumulate step of a binary convolution: on the chip two masked
        instructions (add where the product is +1, subtract where it is -1); each pixel takes
        part in one of them, so it is charged one operation's noise.
        """
        self._check(state, [src], "analog")
        self._check(state, [sign], "digital")
        inc = self._dac(value)
        step = jnp.where(state.digital[sign], inc, -inc)
        return self._write(state, dst, state.analog[src] + step, where, self.noise.op_std)

    def reset(self, state: State, dst: str, where: str | None = None) -> State:
        """dst <- 0."""
        return self._write(state, dst, jnp.zeros((), jnp.float32), where, self.noise.op_std)

    def copy(self, state: State, dst: str, src: str, where: str | None = None) -> State:
        """dst <- src."""
        self._check(state, [src], "analog")
        return self._write(state, dst, state.analog[src], where, self.noise.op_std)

    def add(self, state: State, dst: str, a: str, b: str, where: str | None = None) -> State:
        """dst <- a + b."""
        self._check(state, [a, b], "analog")
        return self._write(state, dst, state.analog[a] + state.analog[b], where,
                           self.noise.op_std)

    def sub(self, state: State, dst: str, a: str, b: str, where: str | None = None) -> State:
        """dst <- a - b."""
        self._check(state, [a, b], "analog")
        return self._write(state, dst, state.analog[a] - state.analog[b], where,
                           self.noise.op_std)

    def neg(self, state: State, dst: str, src: str, where: str | None = None) -> State:
        """dst <- -src."""
        self._check(state, [src], "analog")
        return self._write(state, dst, -state.analog[src], where, self.noise.op_std)

    def div2(self, state: State, dst: str, src: str, where: str | None = None) -> State:
        """dst <- src / 2."""
        self._check(state, [src], "analog")
        return self._write(state, dst, 0.5 * state.analog[src], where, self.noise.op_std)

    def shift(self, state: State, dst: str, src: str, direction: str, n: int = 1,
              boundary: str = "block", fill: float = 0.0, where: str | None = None) -> State:
        """dst <- src moved `n` pixels towards `direction`, through NEWS (n transfers)."""
        dy, dx = _direction(direction, n)
        return self.offset(state, dst, src, dy, dx, boundary, fill, where)

    def offset(self, state: State, dst: str, src: str, dy, dx, boundary: str = "block",
               fill: float = 0.0, where: str | None = None, reach: int | None = None) -> State:
        """dst(p) <- src(p + (dy, dx)): |dy| + |dx| neighbour transfers through NEWS.

        `dy`, `dx` may be traced (a loop over steps); `reach` (static) then bounds them.
        """
        self._check(state, [src], "analog")
        moved = shift_plane(state.analog[src], dy, dx, boundary, fill, reach)
        hops = abs(dy) + abs(dx) if _is_static(dy, dx) else jnp.abs(dy) + jnp.abs(dx)
        if self.noise.transfer_decay > 0:
            moved = moved * jnp.power(jnp.float32(1.0 - self.noise.transfer_decay), hops)
        state = state.replace(analog={**state.analog, "NEWS": moved})
        std = self.noise.shift_std
        if _is_static(hops):
            return self._write(state, dst, moved, where, std * math.sqrt(hops))
        if std > 0:  # traced distance: draw at unit std, scale by sqrt(hops)
            state, z = self._gaussian(state, 1.0)
            moved = moved + z * (std * jnp.sqrt(hops.astype(jnp.float32)))
        return self._write(state, dst, moved, where, 0.0)

    def tick(self, state: State) -> State:
        """One frame of time passes: every analog register decays by `decay`."""
        if self.noise.decay <= 0:
            return state
        keep = 1.0 - self.noise.decay
        return state.replace(analog={k: v * keep for k, v in state.analog.items()})

    def read(self, state: State, src: str) -> Array:
        """The values of an analog register as the readout sees them."""
        self._check(state, [src], "analog")
        return state.analog[src]

    # ---------------------------------------------------------------------------- comparators

    def compare(self, state: State, dst: str, a: str, b: str) -> State:
        """Digital dst <- a > b."""
        self._check(state, [a, b], "analog")
        return self._set_digital(state, dst, state.analog[a] > state.analog[b])

    def threshold(self, state: State, dst: str, src: str, level, scale: float = 1.0,
                  strict: bool = False) -> State:
        """Digital dst <- src >= level * scale (src > level * scale with `strict`).

        Evaluated as `src / scale >= level`: with integer multiples of `scale` in `src` (the
        noise-free program) the comparison against a float32 `level` in model units is exact.
        """
        self._check(state, [src], "analog")
        v = state.analog[src]
        if scale != 1.0:
            v = v / jnp.float32(scale)
        level = jnp.asarray(level, jnp.float32)
        return self._set_digital(state, dst, v > level if strict else v >= level)

    # ---------------------------------------------------------------------------- digital

    def d_load(self, state: State, dst: str, bits) -> State:
        """Digital dst <- bits written from the controller (a pattern or an uploaded image)."""
        return self._set_digital(state, dst, bits)

    def d_set(self, state: State, dst: str, value: bool = True) -> State:
        return self._set_digital(state, dst, jnp.asarray(value, bool))

    def d_copy(self, state: State, dst: str, src: str) -> State:
        self._check(state, [src], "digital")
        return self._set_digital(state, dst, state.digital[src])

    def d_not(self, state: State, dst: str, src: str) -> State:
        self._check(state, [src], "digital")
        return self._set_digital(state, dst, ~state.digital[src])

    def _d2(self, state, dst, a, b, fn):
        self._check(state, [a, b], "digital")
        return self._set_digital(state, dst, fn(state.digital[a], state.digital[b]))

    def d_and(self, state: State, dst: str, a: str, b: str) -> State:
        return self._d2(state, dst, a, b, jnp.logical_and)

    def d_or(self, state: State, dst: str, a: str, b: str) -> State:
        return self._d2(state, dst, a, b, jnp.logical_or)

    def d_xor(self, state: State, dst: str, a: str, b: str) -> State:
        return self._d2(state, dst, a, b, jnp.logical_xor)

    def d_xnor(self, state: State, dst: str, a: str, b: str) -> State:
        """dst <- a XNOR b: the product of two +-1 values stored as bits (1 = +1)."""
        return self._d2(state, dst, a, b, lambda x, y: ~(x ^ y))

    def d_mux(self, state: State, dst: str, sel: str, a: str, b: str) -> State:
        """dst <- a where sel else b ((sel AND a) OR (NOT sel AND b))."""
        self._check(state, [sel, a, b], "digital")
        d = state.digital
        return self._set_digital(state, dst, jnp.where(d[sel], d[a], d[b]))

    def d_shift(self, state: State, dst: str, src: str, direction: str, n: int = 1,
                boundary: str = "block", fill: bool = False) -> State:
        """Digital dst <- src moved `n` pixels towards `direction` (lossless)."""
        dy, dx = _direction(direction, n)
        return self.d_offset(state, dst, src, dy, dx, boundary, fill)

    def d_offset(self, state: State, dst: str, src: str, dy, dx, boundary: str = "block",
                 fill: bool = False, reach: int | None = None) -> State:
        """Digital dst(p) <- src(p + (dy, dx)): |dy| vertical and |dx| horizontal shifts.

        `dy`, `dx` may be traced (a loop over kernel taps); `reach` (static) then bounds them.
        """
        self._check(state, [src], "digital")
        return self._set_digital(state, dst, shift_plane(state.digital[src], dy, dx, boundary,
                                                         fill, reach))

    def d_compact(self, state: State, dst: str, src: str, stride: int = 4) -> State:
        """Gathers every block's anchor pixels (multiples of `stride`) into one s x s plane,
        block (by, bx) as tile (by, bx), and writes that plane into every block.

        The digital image transformations (repeated half-scaling and block moves) that turn
        the 16 pooled maps into the RNN input; digital transfers are lossless, so their
        result is modelled in one step.
        """
        self._check(state, [src], "digital")
        gy, gx = self.grid
        s = self.block
        if (gy * s // stride, gx * s // stride) != (s, s):
            raise ValueError(f"compacting a {gy}x{gx} grid of {s}x{s} blocks by {stride} does "
                             f"not give one {s}x{s} block")
        anchors = state.digital[src][..., ::stride, ::stride]  # (..., gy, gx, s/k, s/k)
        plane = to_image(anchors)  # (..., s, s)
        lead = plane.shape[:-2]
        out = jnp.broadcast_to(plane[..., None, None, :, :], lead + (gy, gx, s, s))
        return self._set_digital(state, dst, out)
