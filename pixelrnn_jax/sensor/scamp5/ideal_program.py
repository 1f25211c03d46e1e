"""The PixelRNN program on the SCAMP-5 model (paper Figs. 4, 5, S2, S3).

Per frame, on every video of the batch at once:

1. Upload: the s x s frame is written into analog register A of all 16 blocks (`input_units`
   units per normalized intensity) and binarized by a comparator (A >= 0: +1).
2. Each CNN layer: 25 shift-and-accumulate steps in all 16 blocks at once (Fig. S2). Step
   (dy, dx) shifts the binary input digitally by (dy - 2, dx - 2) inside each block (zero
   padding: pixels shifted in from outside the block are masked off), loads the tap's weight
   plane, XNORs weight and signal and adds `+increment` to the accumulator where the product
   is +1, `-increment` where it is -1 (`Machine.add_signed`). Then ReLU (reset negatives),
   4 x 4 max-pool by neighbour shifts and comparisons (the window maximum lands on its
   top-left pixel), threshold (`>= threshold` model units), and a digital compaction of the
   16 pooled 16 x 16 maps into one s x s plane (tile layout, `layout`), written to every
   block.
3. PixelRNN (Figs. 5, S3) on the four central blocks: the stored hidden state (analog,
   +-`hidden_units`) is snapped to bits; x_t goes to blocks (1, 1) and (2, 1), h to (1, 2) and
   (2, 2); the four gate convolutions run at once; the input-term blocks are moved one block
   east and added, giving f's pre-activation in (1, 2) and o_t in (2, 2); f = (pre >= theta);
   h <- f XNOR h is written back as +-`hidden_units`.
4. o_t (block (2, 2)) is read out (`Machine.readout`, the chip's readout conversion) in
   model units (units / increment) at the last frame of every K-frame window; the hidden
   state is reset to +1 at the first.

Every analog instruction carries the error of `noise.NoiseModel` (the block move of the
input terms is 64 neighbour transfers).

A model value v is `increment * v` units. With `NoiseModel.ideal()` and no saturation reached
(at increment 10 a 5 x 5 sum of +-1 products saturates above 12.7; increment 2 never does),
every analog value is an integer multiple of the increment and the readout equals
`pixelrnn_jax.encode` exactly for the same weights.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pixelrnn_jax.core import NOISE_SITES, ModelConfig, check_video, ops
from pixelrnn_jax.sensor.scamp5 import layout
from pixelrnn_jax.sensor.scamp5 import noise as noise_lib
from pixelrnn_jax.sensor.scamp5.machine import Machine, State, block_mask, from_image
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, Readout
from pixelrnn_jax.sensor.scamp5.planes import WeightPlanes, as_weight_planes
from pixelrnn_jax.sensor.scamp5.requirements import check_fits
from pixelrnn_jax.sensor.units import HIDDEN_UNITS, UNITS_PER_PRODUCT

__all__ = ["ProgramOptions", "run", "model_noise", "frame_step", "cnn_layer", "cell_step",
           "conv_taps", "max_pool_4x4", "cnn_preactivation", "gate_preactivation", "repeat",
           "load_planes", "LoadedPlanes", "plane_shape"]

Array = jax.Array

# Register allocation. Analog: A the CNN accumulator, B the pooling neighbour, C the gate
# accumulator, D the block transfer, F the hidden state.
ACC, NEIGHBOUR, GATES, TRANSFER, HIDDEN = "A", "B", "C", "D", "F"
# Digital.
X = "R0"          # the current layer input (binary image or compacted CNN output)
CELL_IN = "R1"    # x_t in the left, h in the right column of the central blocks
SHIFTED = "R2"    # the tap's shifted input, then its product with the weight
WEIGHT = "R3"     # the tap's weight plane
VALID = "R4"      # inside the block after the tap's shift
CMP = "R5"        # comparator result (ReLU, pooling)
CNN_OUT = "R6"    # thresholded pooled maps
H_BITS = "R7"     # h_{t-1}
F_BITS = "R8"     # f_t
H_NEW = "R9"      # h_t
MASK = "R10"      # block pattern
TMP = "R11"


@dataclasses.dataclass(frozen=True)
class ProgramOptions:
    """How the program maps the model onto the chip.

    The paper's description with PyTorch semantics (per-block zero padding, aligned pooling,
    thresholds in model units).

    Attributes:
      increment: units added per +-1 product ("input white", 10 on the chip).
      input_units: units per normalized intensity when the frame is uploaded.
      hidden_units: level (+-) at which the hidden state is stored between frames.
    """

    increment: float = UNITS_PER_PRODUCT
    input_units: float = 50.0
    hidden_units: float = HIDDEN_UNITS

    def __post_init__(self):
        for name in ("increment", "input_units", "hidden_units"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ProgramOptions.{name} must be > 0, got {getattr(self, name)}")

    def replace(self, **changes) -> "ProgramOptions":
        return dataclasses.replace(self, **changes)


def _tap_planes(stack: Array, block: int) -> Array:
    """(25, 4s, 4s) int8 -> (25, 4, 4, s, s) bool (True = +1) as the program loads them."""
    return from_image(stack, block) > 0


def repeat(s: State, body, xs, carried: tuple[str, ...]) -> State:
    """Runs `body(state, x) -> state` for every x along the leading axis of `xs`, in order.

    The steps run as one `lax.scan` whose carry is only the analog registers named in
    `carried` (and the noise count); the temporaries every step rewrites are not carried
    but come from the last step, which runs after the loop. The registers end exactly as if
    the steps had run one after another, but XLA keeps the temporaries in the loop body
    instead of writing them out at every step.
    """
    n = jax.tree.leaves(xs)[0].shape[0]

    def step(carry, i):
        regs, count = carry
        x = jax.tree.map(lambda a: a[i], xs)
        st = body(s.replace(analog={**s.analog, **regs}, count=count), x)
        return ({k: st.analog[k] for k in carried}, st.count), None

    init = ({k: s.analog[k] for k in carried}, s.count)
    (regs, count), _ = jax.lax.scan(step, init, jnp.arange(n - 1))
    last = jax.tree.map(lambda a: a[n - 1], xs)
    return body(s.replace(analog={**s.analog, **regs}, count=count), last)


def conv_taps(machine: Machine, s: State, planes: Array, acc: str, src: str,
              increment: float) -> State:
    """acc <- increment * (5 x 5 cross-correlation of src with each block's kernel).

    planes: (25, gy, gx, s, s) bool weight planes in tap order. Zero padding at block edges.
    The 25 steps run as one loop (`repeat`): one compiled step, not 25.
    """
    offsets = jnp.asarray(layout.TAPS, jnp.int32) - layout.KERNEL // 2
    reach = layout.KERNEL // 2

    def step(st, tap):
        weights, off = tap
        st = machine.d_offset(st, SHIFTED, src, off[0], off[1], reach=reach)
        st = machine.d_set(st, VALID, True)
        st = machine.d_offset(st, VALID, VALID, off[0], off[1], reach=reach)
        st = machine.d_load(st, WEIGHT, weights)
        st = machine.d_xnor(st, SHIFTED, SHIFTED, WEIGHT)    # the +-1 product as a bit
        return machine.add_signed(st, acc, acc, increment, sign=SHIFTED, where=VALID)

    s = machine.reset(s, acc)
    return repeat(s, step, (planes, offsets), carried=(acc,))


# 4 x 4 max-pool: the neighbour 1 and 2 columns east, then 1 and 2 rows south
POOL_STEPS = ((0, 1), (0, 2), (1, 0), (2, 0))


def max_pool_4x4(machine: Machine, s: State, reg: str) -> State:
    """reg(p) <- max of the 4 x 4 window whose top-left pixel is p (4 shift-compare-copy
    steps; exact at the aligned anchors (4i, 4j), which never read past their block).

    A loop over the steps (`repeat`): each step reads its source at two positions, and the
    loop keeps XLA from fusing the chain and recomputing it for every read.
    """
    def step(st, off):
        st = machine.offset(st, NEIGHBOUR, reg, off[0], off[1], reach=2)
        st = machine.compare(st, CMP, NEIGHBOUR, reg)
        return machine.copy(st, reg, NEIGHBOUR, where=CMP)

    return repeat(s, step, jnp.asarray(POOL_STEPS, jnp.int32), carried=(reg,))


def cnn_preactivation(machine: Machine, s: State, planes: Array, increment: float) -> State:
    """ACC <- 4 x 4 max-pool of ReLU(conv of X) on all 16 blocks (maxima at the window
    anchors): what the CNN threshold compares."""
    s = conv_taps(machine, s, planes, ACC, X, increment)
    s = machine.threshold(s, CMP, ACC, 0.0)                  # ReLU: reset the negatives
    s = machine.d_not(s, CMP, CMP)
    s = machine.reset(s, ACC, where=CMP)
    return max_pool_4x4(machine, s, ACC)


def cnn_layer(machine: Machine, s: State, planes: Array, threshold: Array,
              increment: float) -> State:
    """One in-pixel CNN layer on all 16 blocks; the result replaces X in every block."""
    s = cnn_preactivation(machine, s, planes, increment)
    s = machine.threshold(s, CNN_OUT, ACC, threshold, scale=increment)
    return machine.d_compact(s, X, CNN_OUT, stride=4)


def gate_preactivation(vm: Machine, v: State, planes: Array, reset: Array,
                       opts: ProgramOptions) -> State:
    """The gate pre-activations of one PixelRNN step on the central blocks (`vm` selects
    them): GATES <- W * x_t + U * h_{t-1} (units), f's in block (1, 2), o_t's in (2, 2);
    H_BITS holds h_{t-1}."""
    ix, hx = layout.GATE_COLS
    v = jax.lax.cond(reset, lambda st: vm.load(st, HIDDEN, opts.hidden_units),
                     lambda st: st, v)                   # h_0 = +1 at a window's start
    v = vm.threshold(v, H_BITS, HIDDEN, 0.0)               # refresh: snap h to bits
    v = vm.d_load(v, MASK, block_mask(vm.grid, cols=[ix]))
    v = vm.d_mux(v, CELL_IN, MASK, X, H_BITS)              # x_t left, h right
    v = conv_taps(vm, v, planes, GATES, CELL_IN, opts.increment)
    # the input terms one block east, onto the hidden terms
    v = vm.shift(v, TRANSFER, GATES, "east", vm.block, boundary="array")
    v = vm.d_load(v, MASK, block_mask(vm.grid, cols=[hx]))
    return vm.add(v, GATES, GATES, TRANSFER, where=MASK)


def cell_step(machine: Machine, s: State, planes: Array, theta: Array, reset: Array,
              opts: ProgramOptions) -> State:
    """One PixelRNN step, run with only the four central blocks selected (`layout`).

    planes: (25, 2, 2, s, s) gate weight planes of the central blocks. o_t is left in the
    output block (`layout.OUTPUT_BLOCK`) of C.
    """
    rows, cols = layout.CENTRAL
    hx, fy = layout.GATE_COLS[1], layout.FORGET_BLOCK[0]

    def gates(vm: Machine, v: State) -> State:
        v = gate_preactivation(vm, v, planes, reset, opts)
        # forget gate in the upper block, copied to the lower; h <- f XNOR h in both
        v = vm.threshold(v, F_BITS, GATES, theta, scale=opts.increment)
        v = vm.d_shift(v, TMP, F_BITS, "south", vm.block, boundary="array")
        v = vm.d_load(v, MASK, block_mask(vm.grid, rows=[fy]))
        v = vm.d_mux(v, F_BITS, MASK, F_BITS, TMP)
        v = vm.d_xnor(v, H_NEW, F_BITS, H_BITS)
        v = vm.d_load(v, MASK, block_mask(vm.grid, cols=[hx]))
        v = vm.d_and(v, TMP, H_NEW, MASK)
        v = vm.load(v, HIDDEN, opts.hidden_units, where=TMP)
        v = vm.d_not(v, TMP, H_NEW)
        v = vm.d_and(v, TMP, TMP, MASK)
        return vm.load(v, HIDDEN, -opts.hidden_units, where=TMP)

    return machine.on_blocks(s, rows, cols, gates)


def frame_step(machine: Machine, w: LoadedPlanes, s: State, frame: Array, reset: Array,
               read: Array, opts: ProgramOptions) -> tuple[State, Array]:
    """The whole program for one frame (b s s) of every video; returns o_t in model units
    (zeros unless `read`).

    `w`: the weight planes as the program loads them (`load_planes`).
    """
    s = machine.load(s, ACC, frame[..., None, None, :, :] * opts.input_units)
    s = machine.threshold(s, X, ACC, 0.0)
    for planes, threshold in zip(w.cnn, w.cnn_threshold):
        s = cnn_layer(machine, s, planes, threshold, opts.increment)
    s = cell_step(machine, s, w.cell, w.theta, reset, opts)
    s, o = machine.readout_on(s, GATES, read)
    (rows, cols), (oy, ox) = layout.CENTRAL, layout.OUTPUT_BLOCK
    o = o[..., rows, cols, :, :][..., oy, ox, :, :]
    return machine.tick(s), o / jnp.float32(opts.increment)   # read-out units -> model units


class LoadedPlanes(NamedTuple):
    """`WeightPlanes` as the program's pattern writes read them: bool tap stacks (True = +1),
    (25, 4, 4, s, s) for the CNN layers, (25, 2, 2, s, s) for the central gate blocks."""

    cnn: tuple
    cnn_threshold: tuple
    cell: Array
    theta: Array


def load_planes(w: WeightPlanes) -> LoadedPlanes:
    """Converts the planes once per run (not once per frame)."""
    block, (rows, cols) = w.block, layout.CENTRAL
    return LoadedPlanes(cnn=tuple(_tap_planes(p, block) for p in w.cnn),
                        cnn_threshold=w.cnn_threshold,
                        cell=_tap_planes(w.cell, block)[:, rows, cols], theta=w.theta)


def plane_shape(video_shape: tuple[int, ...], input_pool: int) -> tuple[int, ...]:
    """Register plane shape (b, 4, 4, s, s) for a (b, t, H, W) video."""
    b, _, h, _ = video_shape
    side = h // input_pool
    return (b,) + layout.GRID + (side, side)


@partial(jax.jit, static_argnames=("noise", "shape"))
def _bank_jit(rng, noise: NoiseModel, shape: tuple[int, ...]) -> Array:
    return noise_lib.draw_bank(noise, shape, noise_lib.bank_key(rng))


@partial(jax.jit, static_argnames=("k", "input_pool", "noise", "opts"))
def _simulate_jit(w: WeightPlanes, video: Array, rng, bank, k: int, input_pool: int,
                  noise: NoiseModel, opts: ProgramOptions) -> Array:
    x = ops.max_pool(video.astype(jnp.float32), input_pool)
    b, t, side, _ = x.shape
    machine = Machine.create(noise, plane_shape(video.shape, input_pool), rng, bank=bank)
    state = machine.init()
    loaded = load_planes(w)

    def body(st, inp):
        i, frame = inp
        st, o = frame_step(machine, loaded, st, frame, i % k == 0, i % k == k - 1, opts)
        return st, o

    _, outs = jax.lax.scan(body, state, (jnp.arange(t), jnp.moveaxis(x, 1, 0)))
    return jnp.moveaxis(outs[k - 1::k], 0, 1)  # (b, t/K, s, s)


def run(weights, video, config: ModelConfig, *, noise: NoiseModel | None = None,
        rng: Array | None = None, options: ProgramOptions | None = None) -> Array:
    """Runs the PixelRNN program on the SCAMP-5 model: (b t H W) -> (b t/K s s) readouts.

    weights: model variables (`pixelrnn_jax.init` / trained) or `WeightPlanes`.
    video: normalized intensities, as for `pixelrnn_jax.encode` (a single (t H W) video gives
      (t/K s s)). noise: the analog non-idealities (default: calibrated to the paper,
      `NoiseModel.ideal()` for none). rng: PRNG key for the per-operation noise (required
      when the noise model has any). Returns o_t in model units, comparable to `encode`.
    """
    check_fits(config, "ideal")
    check_video(video, config)
    noise = NoiseModel() if noise is None else noise
    options = ProgramOptions() if options is None else options
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise of the ideal program must be a NoiseModel, got "
                        f"{type(noise).__name__}")
    if not isinstance(options, ProgramOptions):
        raise TypeError(f"options of the ideal program must be ProgramOptions, got "
                        f"{type(options).__name__}")
    if noise.random and rng is None:
        raise ValueError("the noise model adds per-operation noise: pass rng=jax.random.key(..)"
                         ", or noise=NoiseModel.ideal() for the noise-free program")
    wp = as_weight_planes(weights, config)
    video = jnp.asarray(video)
    single = video.ndim == 3
    if single:
        video = video[None]
    rng = rng if noise.random else None
    bank = None
    if noise.random and noise.source == "bank":
        bank = _bank_jit(rng, noise, plane_shape(video.shape, config.input_pool))
    out = _simulate_jit(wp, video, rng, bank, config.K, config.input_pool, noise, options)
    return out[0] if single else out


def _probe(machine: Machine, frame: Array, bits: Array, cnn: Array, cell: Array, hidden: Array,
           opts: ProgramOptions) -> tuple[Array, Array, Array]:
    """The analog values each quantizer of the program compares, on fixed digital inputs:
    the uploaded frame (units), the pooled CNN sums at the window anchors and the gate
    pre-activations of the central blocks (units)."""
    s = machine.init()
    s = machine.load(s, ACC, frame * opts.input_units)
    uploaded = machine.read(s, ACC)
    s = machine.d_load(s, X, bits)
    s = cnn_preactivation(machine, s, cnn, opts.increment)
    pooled = machine.read(s, ACC)[..., ::4, ::4]
    s = machine.load(s, HIDDEN, hidden)
    rows, cols = layout.CENTRAL
    s = machine.on_blocks(s, rows, cols,
                    lambda vm, v: gate_preactivation(vm, v, cell, jnp.bool_(False), opts))
    raw = machine.read(s, GATES)
    s, out = machine.readout(s, GATES)
    pick = lambda g: g[..., rows, cols, :, :][..., layout.GATE_COLS[1], :, :]  # noqa: E731
    return uploaded, pooled, pick(raw), pick(out)


@partial(jax.jit, static_argnames=("noise", "opts", "videos", "side"))
def _model_noise_jit(rng, noise: NoiseModel, opts: ProgramOptions, videos: int, side: int):
    shape = (videos,) + layout.GRID + (side, side)
    k_frame, k_bits, k_cnn, k_cell, k_hidden, k_run = jax.random.split(rng, 6)
    frame = jax.random.uniform(k_frame, shape, minval=-1.0, maxval=1.0)
    bits = jax.random.bernoulli(k_bits, 0.5, shape)
    cnn = jax.random.bernoulli(k_cnn, 0.5, (layout.KERNEL ** 2,) + shape[1:])
    cell = jax.random.bernoulli(k_cell, 0.5, (layout.KERNEL ** 2, 2, 2, side, side))
    hidden = jnp.where(jax.random.bernoulli(k_hidden, 0.5, shape), 1.0, -1.0) * opts.hidden_units
    noisy = _probe(Machine.create(noise, shape, k_run), frame, bits, cnn, cell, hidden, opts)
    clean = _probe(Machine.create(NoiseModel.ideal(saturation=None), shape), frame, bits, cnn,
                   cell, hidden, opts)
    (du, dp, dg, do) = (a - b for a, b in zip(noisy, clean))
    fy, oy = layout.FORGET_BLOCK[0], layout.OUTPUT_BLOCK[0]
    return dict(zip(NOISE_SITES, (jnp.std(du) / opts.input_units,
                                  jnp.std(dp) / opts.increment,
                                  jnp.std(dg[..., fy, :, :]) / opts.increment,
                                  jnp.std(do[..., oy, :, :]) / opts.increment)))


def model_noise(noise: NoiseModel | None = None, options: ProgramOptions = ProgramOptions(),
                *, rng: Array | None = None, videos: int = 4, side: int = 64) -> dict:
    """The noise sites of noise-aware training (`ModelConfig` fields, model units: one +-1
    product = 1, inputs in normalized intensity) that match this program on `noise`.

    Measured, not assumed: the program's steps run on random inputs and kernels twice, with
    `noise`'s temporal noise (every instruction's and the readout's) and without, on the
    same digital inputs, and each site reports the std of the difference of the analog value
    its quantizer compares: the upload (input binarization), the pooled CNN sums (CNN
    threshold), the forget-gate pre-activation and o_t as read out. Offsets, losses, the
    DAC's gain, the chip's fixed pattern and the readout's gain and zero are systematic
    rather than Gaussian and are left out; saturation too (no clipping).

        python -c "from pixelrnn_jax import scamp5; print(scamp5.model_noise())"
    """
    noise = NoiseModel() if noise is None else noise
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a NoiseModel, got {type(noise).__name__}")
    r = noise.readout
    random_part = noise.scaled(systematic=0.0, pattern=0.0).replace(
        dac_gain=1.0, dac_offset=0.0, decay=0.0, saturation=None,
        readout=Readout(std=r.std, column_std=r.column_std))
    if not random_part.random:
        return {k: 0.0 for k in NOISE_SITES}
    rng = jax.random.key(0) if rng is None else rng
    out = _model_noise_jit(rng, random_part, options, videos, side)
    return {k: float(v) for k, v in out.items()}
