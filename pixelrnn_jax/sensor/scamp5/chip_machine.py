"""The authors' PixelRNN program as it runs on the SCAMP-5 chip, as `Machine` instructions:
the "chip" sensor program (its fast emulation is `chip_program`, the "chip_fast" program).

Per frame, on every video of the batch at once (facts: `chip_facts`):

1. Upload: A <- DAC(-120); for the four top bit-planes, A <- A + (16 * 2^i - 1) where the
   bit is set; X <- A > 1 unit. (bool frames are loaded as X directly, float intensities
   by their sign.)
2. CNN: A <- 0; 25 taps in the chip's order, each X moved digitally by (i - 4, j) across the
   array (-1 beyond it), XNOR the tap's weight plane, A <- A +- 10 off the grid lines.
3. ReLU (A reset where negative); max-pool: 4 steps of B <- A moved by (0, 1), (0, 2),
   (-1, 0), (-2, 0) through NEWS, A <- B where B > A; A moved 1 right and 1 down; CNN bits
   <- A > 10; the spread, recentring, half-scalings and the input's final move are digital,
   one gather (`Machine.d_compact`) from the anchors (4u, 4v) + `ChipFacts.anchor`, then the
   map one row up.
4. PixelRNN on the central blocks: F (h, +-80) snapped (> 30) and rewritten; D <- +-80 of x
   (block column 1) and h (column 2) in the upper blocks, moved 64 rows down through NEWS
   into E, re-binarised (> 30) in the lower blocks; C <- 0 and the 25 gate taps; C <- -80
   outside rows 64..190 / columns 65..191; E <- C moved 64 columns east, C <- C + E in
   column 2; f <- C > 10 in block (1, 2); h <- f XNOR h, written back to F as +-80.
5. The readout (`Machine.readout`) of C over the saved crop at every cycle's last frame.

Every analog instruction carries its `noise.NoiseModel` error; with `NoiseModel.ideal()` all
values are integers and the readout equals the fast emulation bit for bit.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.sensor.scamp5 import noise as noise_lib
from pixelrnn_jax.sensor.scamp5.chip_facts import (
                                                   ARRAY,
                                                   SIDE,
                                                   TAP_ORDER,
                                                   UPLOAD_BASE,
                                                   UPLOAD_WEIGHTS,
                                                   ChipFacts,
                                                   ChipWeights,
                                                   check_video,
                                                   chip_weights,
                                                   grid_lines,
                                                   upload_planes,
)
from pixelrnn_jax.sensor.scamp5.geometry import block_mask, from_image
from pixelrnn_jax.sensor.scamp5.ideal_program import repeat
from pixelrnn_jax.sensor.scamp5.machine import Machine, State
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel
from pixelrnn_jax.sensor.scamp5.requirements import check_fits

__all__ = ["run", "frame_step", "upload", "cnn", "rnn_step", "plane_shape", "load_weights"]

Array = jax.Array

# Analog registers: A the upload and CNN accumulator, B the pooling neighbour, C the gate
# accumulator (E), D the RNN input levels, E the transfer temporary, F the hidden state.
ACC, NEIGHBOUR, GATES, LEVELS, TRANSFER, HIDDEN = "A", "B", "C", "D", "E", "F"
X, SHIFTED, WEIGHT, VALID, CMP, CNN_OUT = "R0", "R1", "R2", "R3", "R4", "R5"
CELL_IN, H_BITS, F_BITS, H_NEW, MASK, TMP, BIT = "R6", "R7", "R8", "R9", "R10", "R11", "R12"
POOL_STEPS = ((0, 1), (0, 2), (-1, 0), (-2, 0))
CENTRAL = (slice(1, 3), slice(1, 3))


def plane_shape(videos: int) -> tuple[int, ...]:
    return (videos, 4, 4, SIDE, SIDE)


def load_weights(w: ChipWeights) -> tuple[Array, Array]:
    """The tap planes as bools (True = +1) in the chip's tap order: CNN (25, 4, 4, 64, 64),
    gates (25, 2, 2, 64, 64) of the central blocks."""
    cnn = jnp.stack([from_image(w.cnn[i, j] > 0, SIDE) for i, j in TAP_ORDER])
    cell = jnp.stack([from_image(w.cell[i, j] > 0, SIDE) for i, j in TAP_ORDER])
    return cnn, cell


def _taps(m: Machine, s: State, planes: Array, acc: str, src: str, facts: ChipFacts) -> State:
    """acc <- 0, then the 25 displaced taps: acc +-= increment where src XNOR weight, off the
    grid lines (VALID)."""
    offsets = jnp.asarray([(i - 4, j) for i, j in TAP_ORDER], jnp.int32)

    def step(st, tap):
        weights, off = tap
        st = m.d_offset(st, SHIFTED, src, off[0], off[1], boundary="array", fill=False,
                        reach=4)
        st = m.d_load(st, WEIGHT, weights)
        st = m.d_xnor(st, SHIFTED, SHIFTED, WEIGHT)
        return m.add_signed(st, acc, acc, facts.increment, sign=SHIFTED, where=VALID)

    s = m.reset(s, acc)
    return repeat(s, step, (planes, offsets), carried=(acc,))


def upload(m: Machine, s: State, frame: Array, facts: ChipFacts) -> State:
    """X <- the binarised frame (tiled over the blocks). frame: (b 64 64) uint8 levels as
    (4 b 64 64) bit-planes, or (b 64 64) bool bits."""
    tile = lambda a: from_image(jnp.tile(a, (4, 4)), SIDE)  # noqa: E731
    if frame.ndim == 4:     # bit-planes: the analog rebuild and its comparator
        s = m.load(s, ACC, UPLOAD_BASE)
        for i, w in enumerate(UPLOAD_WEIGHTS):
            s = m.d_load(s, BIT, tile(frame[i]))
            s = m.add_const(s, ACC, ACC, w, where=BIT)
        return m.threshold(s, X, ACC, facts.upload_threshold, strict=True)
    return m.d_load(s, X, tile(frame))


def cnn(m: Machine, s: State, planes: Array, facts: ChipFacts) -> State:
    """X <- the RNN input: the CNN's pooled, thresholded and gathered bits (every block),
    one row up."""
    s = m.d_load(s, VALID, ~from_image(jnp.asarray(grid_lines(ARRAY)), SIDE))
    s = _taps(m, s, planes, ACC, X, facts)
    s = m.threshold(s, CMP, ACC, 0.0)                    # ReLU: reset the negatives
    s = m.d_not(s, CMP, CMP)
    s = m.reset(s, ACC, where=CMP)

    # four steps with static offsets: a loop over traced ones would run (and charge noise
    # to) both unit transfers of every axis at every step, 16 transfers instead of 6
    for dy, dx in POOL_STEPS:
        s = m.offset(s, NEIGHBOUR, ACC, dy, dx, boundary="array")
        s = m.compare(s, CMP, NEIGHBOUR, ACC)
        s = m.copy(s, ACC, NEIGHBOUR, where=CMP)
    s = m.offset(s, ACC, ACC, -1, -1, boundary="array")  # 1 right, 1 down
    s = m.threshold(s, CNN_OUT, ACC, facts.cnn_threshold, strict=True)
    s = m.d_compact(s, X, CNN_OUT, stride=4, start=facts.anchor)
    return m.d_offset(s, X, X, 1, 0, boundary="block", fill=False)   # lands one row up


def rnn_step(vm: Machine, v: State, planes: Array, reset: Array, facts: ChipFacts) -> State:
    """One PixelRNN frame on the central blocks (`vm` selects them): C holds E after it."""
    hu, bt = facts.hidden_units, facts.binarize_threshold
    v = jax.lax.cond(reset, lambda st: vm.load(st, HIDDEN, hu), lambda st: st, v)
    v = vm.threshold(v, H_BITS, HIDDEN, bt, strict=True)          # snap h
    v = vm.load(v, HIDDEN, hu, where=H_BITS)
    v = vm.d_not(v, TMP, H_BITS)
    v = vm.load(v, HIDDEN, -hu, where=TMP)
    v = vm.d_load(v, MASK, block_mask(vm.grid, cols=[0]))
    v = vm.d_mux(v, TMP, MASK, X, H_BITS)                          # x left, h right
    v = vm.load(v, LEVELS, hu, where=TMP)
    v = vm.d_not(v, TMP, TMP)
    v = vm.load(v, LEVELS, -hu, where=TMP)
    v = vm.shift(v, TRANSFER, LEVELS, "south", SIDE, boundary="array")
    v = vm.threshold(v, CMP, LEVELS, bt, strict=True)
    v = vm.threshold(v, TMP, TRANSFER, bt, strict=True)
    v = vm.d_load(v, MASK, block_mask(vm.grid, rows=[0]))
    v = vm.d_mux(v, CELL_IN, MASK, CMP, TMP)                       # re-binarised copies
    v = vm.d_load(v, VALID, ~from_image(jnp.asarray(grid_lines(2 * SIDE, SIDE)), SIDE))
    v = _taps(vm, v, planes, GATES, CELL_IN, facts)
    n = 2 * SIDE
    outside = np.zeros((n, n), bool)
    outside[n - 1, :] = True
    outside[:, 0] = True
    v = vm.d_load(v, MASK, from_image(jnp.asarray(outside), SIDE))
    v = vm.load(v, GATES, -hu, where=MASK)
    v = vm.shift(v, TRANSFER, GATES, "east", SIDE, boundary="array")
    v = vm.d_load(v, MASK, block_mask(vm.grid, cols=[1]))
    v = vm.add(v, GATES, GATES, TRANSFER, where=MASK)              # E = input + hidden
    v = vm.threshold(v, F_BITS, GATES, facts.rnn_threshold, strict=True)
    v = vm.d_xnor(v, H_NEW, F_BITS, H_BITS)
    v = vm.load(v, HIDDEN, hu, where=H_NEW)
    v = vm.d_not(v, TMP, H_NEW)
    return vm.load(v, HIDDEN, -hu, where=TMP)


def frame_step(m: Machine, planes: tuple[Array, Array], s: State, frame: Array, reset: Array,
               read: Array, facts: ChipFacts) -> tuple[State, Array]:
    """The whole program for one frame; returns the readout of E's crop (b 64 64, units)
    where `read` (the cycle's last frame), zeros on the frames the chip does not read out
    (nor charged readout noise)."""
    s = upload(m, s, frame, facts)
    s = cnn(m, s, planes[0], facts)
    rows, cols = CENTRAL
    s = m.on_blocks(s, rows, cols, lambda vm, v: rnn_step(vm, v, planes[1], reset, facts))
    s, out = m.readout_on(s, GATES, read)
    return s, out[..., 2, 2, :, :]


@partial(jax.jit, static_argnames=("noise", "facts"))
def _run_jit(w: ChipWeights, frames: Array, rng, bank, noise: NoiseModel, facts: ChipFacts):
    t = frames.shape[-3]
    b = frames.shape[-4]
    m = Machine.create(noise, plane_shape(b), rng, bank=bank)
    planes = load_weights(w)
    xs = jnp.moveaxis(frames, -3, 0)

    def body(st, inp):
        i, frame = inp
        c = facts.cycle
        return frame_step(m, planes, st, frame, i % c == 0, i % c == c - 1, facts)

    _, outs = jax.lax.scan(body, m.init(), (jnp.arange(t), xs))
    return jnp.moveaxis(outs[facts.cycle - 1::facts.cycle], 0, 1)


@partial(jax.jit, static_argnames=("noise", "shape"))
def _bank_jit(rng, noise: NoiseModel, shape):
    return noise_lib.draw_bank(noise, shape, noise_lib.bank_key(rng))


def run(weights, video, config: ModelConfig | None = None, *, noise: NoiseModel | None = None,
        rng: Array | None = None, options: ChipFacts | None = None, batch: int = 8):
    """The chip program on the machine: (b t 64 64) frames -> (b t/cycle 64 64) readouts in
    model units (a single (t 64 64) video gives (t/cycle 64 64)). noise: the error model
    (default: the shipped calibration); a noisy model needs `rng`. options: `ChipFacts`."""
    check_fits(ModelConfig() if config is None else config, "chip")
    noise = NoiseModel() if noise is None else noise
    facts = ChipFacts() if options is None else options
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise of the chip program must be a NoiseModel, got "
                        f"{type(noise).__name__}")
    if not isinstance(facts, ChipFacts):
        raise TypeError(f"options of the chip program must be ChipFacts, got "
                        f"{type(facts).__name__}")
    if noise.random and rng is None:
        raise ValueError("the noise model has temporal noise: pass rng=jax.random.key(..), or "
                         "noise=NoiseModel.ideal() for the noise-free program")
    single = np.ndim(video) == 3
    v = check_video(video, facts)
    w = chip_weights(weights)
    frames = upload_planes(v) if v.dtype == np.uint8 else (
        v if v.dtype == np.bool_ else v >= 0)
    axis = 1 if v.dtype == np.uint8 else 0
    outs = []
    for k, start in enumerate(range(0, v.shape[0], batch)):
        part = jnp.asarray(np.take(frames, range(start, min(start + batch, v.shape[0])),
                                   axis=axis))
        n = part.shape[axis]
        key = None if rng is None else jax.random.fold_in(rng, k)
        bank = (_bank_jit(key, noise, plane_shape(n))
                if noise.random and noise.source == "bank" else None)
        outs.append(np.asarray(_run_jit(w, part, key if noise.random else None, bank, noise,
                                        facts)))
    out = np.concatenate(outs) / np.float32(facts.increment)
    return out[0] if single else out
