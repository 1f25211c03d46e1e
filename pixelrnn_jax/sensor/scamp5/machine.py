"""A vectorized register-level model of the SCAMP-5 sensor-processor (paper Sec. 5.1-5.2,
supplement S2.2-S2.3).

The chip is a 256 x 256 array of processing elements (PEs). Each PE has six analog registers
A-F, a NEWS register through which analog values reach a neighbour, 13 digital registers
R0-R12 and a FLAG; all PEs execute the same instruction (SIMD), optionally only where a digital
register is set ("where" execution). This module models that register file and its
instruction set as pure functions `op(state, ...) -> state` that compose under `jit`, `vmap`
and `scan`.

Layout (`geometry`). Every register is a plane of shape `(..., gy, gx, s, s)`: leading axes
are videos, then the grid of PE blocks (4 x 4 on the chip), then the rows and columns of an
`s x s` block (s = 64 on the chip). The program runs the same instruction on every block and
every video, so the block grid and the batch are vectorized axes.

Units. Analog values are in the chip's units; they saturate at `NoiseModel.saturation`
(-128 .. 127 by default). Digital registers hold bools.

Errors (`noise.NoiseModel`): every analog instruction applies its own error (offset, loss,
temporal and column noise), the chip's fixed pattern of the register it writes, and
saturation; a shift by n pixels is n neighbour transfers, each one a "transfer" instruction;
`readout` applies the chip's readout conversion. Digital instructions are exact.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from pixelrnn_jax.sensor.scamp5.geometry import (
                                                 BOUNDARIES,
                                                 DIRECTIONS,
                                                 block_mask,
                                                 direction_offset,
                                                 from_image,
                                                 is_static,
                                                 shift_plane,
                                                 to_image,
)
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, bank_normals, draw_bank, systematic
from pixelrnn_jax.sensor.scamp5.patterns import dac_plane, pattern_planes, readout_offset_plane

__all__ = ["Machine", "State", "ANALOG", "DIGITAL", "DIRECTIONS", "BOUNDARIES", "to_image",
           "from_image", "shift_plane", "block_mask"]

Array = jax.Array

ANALOG = ("A", "B", "C", "D", "E", "F", "NEWS")
DIGITAL = tuple(f"R{i}" for i in range(13)) + ("FLAG",)
# longer runs of unit transfers run as a loop, not unrolled
_UNROLL = 4


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class State:
    """The register file: analog planes (float32), digital planes (bool), and the count of
    noise draws so far (which indexes each draw; None without temporal noise)."""

    analog: dict
    digital: dict
    count: Array | None

    def replace(self, **changes) -> "State":
        return dataclasses.replace(self, **changes)


class Machine:
    """The instruction set on planes of one shape, with a run's noise bank and chip pattern.

    Create with `Machine.create(noise, shape, rng)` inside the traced function; `shape` is the
    plane shape (..., gy, gx, s, s). All methods are pure: they return a new `State`.
    """

    def __init__(self, noise: NoiseModel, shape: tuple[int, ...], key: Array | None,
                 bank: Array | None, grid_shape: tuple[int, ...] | None = None,
                 region: tuple[slice, slice] | None = None):
        self.noise = noise
        self.shape = tuple(shape)
        self.key = key
        self.bank = bank
        self.grid_shape = tuple(shape[-4:]) if grid_shape is None else grid_shape
        self.region = region

    @classmethod
    def create(cls, noise: NoiseModel, shape: Sequence[int], rng: Array | None = None, *,
               bank: Array | None = None) -> "Machine":
        """The machine for planes of `shape`, its noise drawn from `rng`.

        `bank`: the run's noise bank when it was drawn beforehand (`draw_bank`, the same key);
        drawn inside the same computation, the bank can be fused into its readers by XLA,
        which then regenerates normals at every draw: a fast run draws it in a separate call
        (as `simulate` does).
        """
        if not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a NoiseModel, got {type(noise).__name__}")
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
        return cls(noise, shape, key, bank)

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
        if self.region is not None:
            raise ValueError("on_blocks does not nest")
        vm = Machine(self.noise, shape, self.key, self.bank, self.grid_shape, (rows, cols))
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

    def _local(self, plane):
        """A full-grid constant plane restricted to this machine's blocks."""
        if plane is None:
            return None
        plane = jnp.asarray(plane)
        if self.region is not None:
            plane = plane[self.region[0], self.region[1]]
        return plane

    def _normal(self, state: State, std: float, per_video: tuple[int, ...] | None = None
                ) -> tuple[State, Array | float]:
        """std * N(0, 1) of shape (..., *per_video) (default: the plane's), one draw."""
        if std <= 0:
            return state, 0.0
        per_video = tuple(self.shape[-4:]) if per_video is None else per_video
        lead = self.shape[:-4]
        count = state.count
        state = state.replace(count=count + jnp.uint32(1))
        if self.noise.source == "fresh":
            z = jax.random.normal(jax.random.fold_in(self.key, count), lead + per_video,
                                  jnp.float32)
            return state, std * z
        return state, bank_normals(self.bank, self.key, count, lead, per_video, std)

    def _column(self, state: State, std: float) -> tuple[State, Array | float]:
        """Noise shared by every pixel of an image column (one draw per column)."""
        gy, gx, s, _ = self.shape[-4:]
        return self._normal(state, std, (1, gx, 1, s))

    def _clip(self, v: Array) -> Array:
        if self.noise.saturation is None:
            return v
        lo, hi = self.noise.saturation
        return jnp.clip(v, lo, hi)

    def _err(self, state: State, dst: str, value: Array, instruction: str
             ) -> tuple[State, Array]:
        """The result of `instruction` writing exact `value` into `dst`: its error, the
        chip's pattern of `dst`, noise and saturation."""
        err = self.noise.instruction(instruction)
        planes = pattern_planes(self.noise.pattern, self.grid_shape, dst)
        new = systematic(err, value, tuple(self._local(p) for p in planes))
        state, z = self._normal(state, err.std)
        state, zc = self._column(state, err.column_std)
        return state, self._clip(new + z + zc)

    def _store(self, state: State, dst: str, new: Array, where: str | None) -> State:
        if where is not None:
            self._check(state, [where], "digital")
            new = jnp.where(state.digital[where], new, state.analog[dst])
        new = jnp.broadcast_to(new, self.shape).astype(jnp.float32)
        return state.replace(analog={**state.analog, dst: new})

    def _write(self, state: State, dst: str, value: Array, where: str | None,
               instruction: str) -> State:
        """dst <- instruction's result of exact `value` where digital `where` is set."""
        self._check(state, [dst], "analog")
        state, new = self._err(state, dst, value, instruction)
        return self._store(state, dst, new, where)

    def _dac(self, value) -> Array:
        return self.noise.dac_write(value, self._local(dac_plane(self.noise.pattern,
                                                                 self.grid_shape)))

    def _set_digital(self, state: State, dst: str, value: Array) -> State:
        self._check(state, [dst], "digital")
        value = jnp.broadcast_to(jnp.asarray(value, bool), self.shape)
        return state.replace(digital={**state.digital, dst: value})

    # ---------------------------------------------------------------------------- analog

    def load(self, state: State, dst: str, value, where: str | None = None) -> State:
        """dst <- value through the DAC; value: scalar or plane."""
        return self._write(state, dst, self._dac(value), where, "load")

    def add_const(self, state: State, dst: str, src: str, value,
                  where: str | None = None) -> State:
        """dst <- src + value (a DAC-written constant, e.g. +-10 per multiply-accumulate)."""
        self._check(state, [src], "analog")
        return self._write(state, dst, state.analog[src] + self._dac(value), where, "add_const")

    def add_signed(self, state: State, dst: str, src: str, value, sign: str,
                   where: str | None = None) -> State:
        """dst <- src + value where digital `sign` is set, src - value where it is clear.

        One multiply-accumulate step of a binary convolution: on the chip two masked
        instructions (add where the product is +1, subtract where it is -1); each pixel takes
        part in one of them, so it is charged one "add_const".
        """
        self._check(state, [src], "analog")
        self._check(state, [sign], "digital")
        inc = self._dac(value)
        step = jnp.where(state.digital[sign], inc, -inc)
        return self._write(state, dst, state.analog[src] + step, where, "add_const")

    def reset(self, state: State, dst: str, where: str | None = None) -> State:
        """dst <- 0."""
        return self._write(state, dst, jnp.zeros((), jnp.float32), where, "reset")

    def copy(self, state: State, dst: str, src: str, where: str | None = None) -> State:
        """dst <- src."""
        self._check(state, [src], "analog")
        return self._write(state, dst, state.analog[src], where, "copy")

    def add(self, state: State, dst: str, a: str, b: str, where: str | None = None) -> State:
        """dst <- a + b."""
        self._check(state, [a, b], "analog")
        return self._write(state, dst, state.analog[a] + state.analog[b], where, "add")

    def sub(self, state: State, dst: str, a: str, b: str, where: str | None = None) -> State:
        """dst <- a - b."""
        self._check(state, [a, b], "analog")
        return self._write(state, dst, state.analog[a] - state.analog[b], where, "sub")

    def neg(self, state: State, dst: str, src: str, where: str | None = None) -> State:
        """dst <- -src."""
        self._check(state, [src], "analog")
        return self._write(state, dst, -state.analog[src], where, "neg")

    def div2(self, state: State, dst: str, src: str, where: str | None = None) -> State:
        """dst <- src / 2."""
        self._check(state, [src], "analog")
        return self._write(state, dst, 0.5 * state.analog[src], where, "div2")

    def shift(self, state: State, dst: str, src: str, direction: str, n: int = 1,
              boundary: str = "block", fill: float = 0.0, where: str | None = None) -> State:
        """dst <- src moved `n` pixels towards `direction`: n neighbour transfers."""
        dy, dx = direction_offset(direction, n)
        return self.offset(state, dst, src, dy, dx, boundary, fill, where)

    def _hop(self, state, dst, v, uy, ux, boundary, fill, reach=None):
        moved = shift_plane(v, uy, ux, boundary, fill, reach)
        return self._err(state, dst, moved, "transfer")

    def _hops(self, state, dst, v, n, uy, ux, boundary, fill):
        if n <= _UNROLL:
            for _ in range(n):
                state, v = self._hop(state, dst, v, uy, ux, boundary, fill)
            return state, v

        def body(_, carry):
            st, val = carry
            st, val = self._hop(st, dst, val, uy, ux, boundary, fill)
            return st, val

        return jax.lax.fori_loop(0, n, body, (state, v))

    def offset(self, state: State, dst: str, src: str, dy, dx, boundary: str = "block",
               fill: float = 0.0, where: str | None = None, reach: int | None = None) -> State:
        """dst(p) <- src(p + (dy, dx)): |dy| vertical then |dx| horizontal neighbour
        transfers through NEWS, each a "transfer" instruction.

        `dy`, `dx` may be traced (a loop over steps); `reach` (static) then bounds them.
        """
        self._check(state, [src], "analog")
        self._check(state, [dst], "analog")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        v = state.analog[src]
        err = self.noise.instruction("transfer")
        exact = err.systematic_free and err.std == 0 and err.column_std == 0 and not (
            self.noise.pattern.active)
        if is_static(dy, dx):
            dy, dx = int(dy), int(dx)
            if exact:   # error-free transfers compose into one move (saturation holds)
                v = self._clip(shift_plane(v, dy, dx, boundary, fill))
            else:
                state, v = self._hops(state, dst, v, abs(dy), (dy > 0) - (dy < 0), 0,
                                      boundary, fill)
                state, v = self._hops(state, dst, v, abs(dx), 0, (dx > 0) - (dx < 0),
                                      boundary, fill)
        else:
            if reach is None:
                raise ValueError("shifting by traced offsets needs a static reach")
            if exact:
                v = self._clip(shift_plane(v, dy, dx, boundary, fill, reach))
            else:   # `reach` unit steps per axis, each taken only while within the offset
                for axis, d in ((0, dy), (1, dx)):
                    unit = jnp.sign(d).astype(jnp.int32)
                    for k in range(reach):
                        uy, ux = (unit, 0) if axis == 0 else (0, unit)
                        state, moved = self._hop(state, dst, v, uy, ux, boundary, fill, 1)
                        v = jnp.where(k < jnp.abs(d), moved, v)
        state = state.replace(analog={**state.analog, "NEWS": v})
        return self._store(state, dst, v, where)

    def tick(self, state: State) -> State:
        """One frame of time passes: every analog register decays by `decay`."""
        if self.noise.decay <= 0:
            return state
        keep = 1.0 - self.noise.decay
        return state.replace(analog={k: v * keep for k, v in state.analog.items()})

    def read(self, state: State, src: str) -> Array:
        """The exact values of an analog register (no readout conversion)."""
        self._check(state, [src], "analog")
        return state.analog[src]

    def readout(self, state: State, src: str) -> tuple[State, Array]:
        """The register as the chip reads it out: the readout conversion (gain, zero level,
        fixed offset, temporal and column noise, 8-bit code), in units."""
        self._check(state, [src], "analog")
        r = self.noise.readout
        v = state.analog[src]
        if r.ideal:
            return state, v
        u = jnp.float32(r.zero) + jnp.float32(r.gain) * v
        plane = self._local(readout_offset_plane(self.noise.pattern.seed, r, self.grid_shape))
        if plane is not None:
            u = u + plane
        state, z = self._normal(state, r.std)
        state, zc = self._column(state, r.column_std)
        u = u + z + zc
        if r.quantize:
            u = jnp.clip(jnp.round(u), -127.0, 128.0)
        return state, u

    def readout_on(self, state: State, src: str, read: Array) -> tuple[State, Array]:
        """`readout` where the traced bool `read` holds (a cycle's last frame), else zeros
        and no readout noise drawn: the frames a program does not read out cost nothing."""
        zeros = lambda st: (st, jnp.zeros(self.shape, jnp.float32))  # noqa: E731
        return jax.lax.cond(read, lambda st: self.readout(st, src), zeros, state)

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
        dy, dx = direction_offset(direction, n)
        return self.d_offset(state, dst, src, dy, dx, boundary, fill)

    def d_offset(self, state: State, dst: str, src: str, dy, dx, boundary: str = "block",
                 fill: bool = False, reach: int | None = None) -> State:
        """Digital dst(p) <- src(p + (dy, dx)): |dy| vertical and |dx| horizontal shifts.

        `dy`, `dx` may be traced (a loop over kernel taps); `reach` (static) then bounds them.
        """
        self._check(state, [src], "digital")
        return self._set_digital(state, dst, shift_plane(state.digital[src], dy, dx, boundary,
                                                         fill, reach))

    def d_compact(self, state: State, dst: str, src: str, stride: int = 4,
                  start: tuple[int, int] = (0, 0)) -> State:
        """Gathers the sensor image's pixels (start + stride * (u, v)) into one s x s plane
        (pixels beyond the array read 0) and writes that plane into every block.

        The digital image transformations (repeated half-scaling and block moves) that turn
        the 16 pooled maps into the RNN input; digital transfers are lossless, so their
        result is modelled in one step. With `start` (0, 0), block (by, bx)'s anchors become
        tile (by, bx).
        """
        self._check(state, [src], "digital")
        gy, gx = self.grid
        s = self.block
        if (gy * s // stride, gx * s // stride) != (s, s):
            raise ValueError(f"compacting a {gy}x{gx} grid of {s}x{s} blocks by {stride} does "
                             f"not give one {s}x{s} block")
        img = to_image(state.digital[src])
        r0, c0 = start
        if (r0, c0) != (0, 0):
            img = shift_plane(img[..., None, None, :, :], r0, c0, "block", False)[..., 0, 0,
                                                                                 :, :]
        plane = img[..., ::stride, ::stride]   # (..., s, s)
        lead = plane.shape[:-2]
        out = jnp.broadcast_to(plane[..., None, None, :, :], lead + (gy, gx, s, s))
        return self._set_digital(state, dst, out)
