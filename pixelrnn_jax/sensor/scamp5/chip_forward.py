"""The chip program as a differentiable forward pass: `ModelConfig(sensor="chip")`.

The authors' program as it runs on SCAMP-5 (`chip_facts`; its register-level form
`chip_machine`, its fast emulation `chip_program`) written as array operations on the
model's batch, with the model's surrogate gradients at its decisions, so that a model trains
through the chip's semantics and its calibrated noise (`NoiseModel`):

* CNN: the frame tiled 4 x 4, block (by, bx) correlating with kernel 4 bx + by over the 25
  displaced taps, C(Y, X) = sum_ij w_ij T(Y + i - 4, X + j) with -1 beyond the array (the
  neighbouring block's pixels inside it), every product weighted by the gains of the taps
  after it, grid lines left at the reset value; the temporal noise of the reset and 25 taps
  drawn on the sums;
* ReLU, the max over rows 4u .. 4u + 3 and columns 4v + 4 .. 4v + 7 of the 256 x 256 image
  (the pooling window, the moves and the half-scalings composed; the input lands one row
  up, which loses the first window row and leaves the last row -1), > the CNN threshold;
* PixelRNN in the central blocks: the cell image [[x, h], [x, h]] through the same taps with
  [[w_f, u_f], [w_o, u_o]], -1 beyond it, grid lines at the reset value, its last row and
  first column at -hidden units; E = add(acc + the input part moved 64 columns east through
  64 transfers); f = E > the RNN threshold in block (0, 1), h <- f h, the readout E in block
  (1, 1) at the cycle's last frame, the gate's and the readout's noise drawn independently;
* the readout conversion: zero + gain E + the chip's offset map, its temporal and column
  noise, rounded (straight through) and clipped as the calibration says; / the increment:
  model units.

Departures from `chip_program` (none with `NoiseModel.ideal(saturation=None)`, where the two
agree bit for bit, tests/test_chip_forward.py): in the CNN (its sums are 16 times the cell's)
the sign-dependent losses of the taps enter as their mean over sign and saturation clips the
finished sums, not every partial sum (the cell's taps run one by one, exactly); the
pooling's transfers, the re-binarisation of x and h (their levels lie >= 8 units from the
threshold) and the chip's per-pixel pattern planes of the registers carry no error here.
Every temporal noise draw is a counter hash (`noise.hashed_normals`: exact mean and std,
tails cut at 3.45 std), and the CNN's pooled maxima are truncated toward zero by < 16 ulp
(the arg-max rides in the low mantissa bits).

Gradients: the CNN's reach the kernel taps of each window's arg-max (as `ops.pooled_conv`);
the cell's taps take the gradient of their linear model (each product weighted by its mean
gain, zero where the finished sum saturated), not of the exact sign-dependent sequence; the
thresholds take the model's surrogate (`quantizers.sign` with slope m); the readout's
rounding is straight through.

Speed (benchmarks/throughput.py, 32 videos of 16 frames, 2-core CPU): forward and backward
of this pass 9.5 s when the CNN was 25 whole-image multiply-adds and the cell's taps were
differentiated step by step; 1.5 s with the pooled CNN, the cell's linear-model backward and
the scan step rematerialized; the train step 2.4-2.9x the ideal one (benchmarks/NOTES.md) with
the taps' chain as a loop under its own VJP (no rematerialization) and the input block's
columns that never see h run for all frames outside the scan; 1.8-1.9x with the taps' 25
kernel sums as block matrix products and the gate's and readout's draws hashed; 2.1-2.4x
of the ideal step after the kernel gradients of both became variadic reductions
(`ops.sums_over_leading`), which sped the ideal step more than this one.
"""
from __future__ import annotations

import math
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ModelConfig, ops
from pixelrnn_jax.core.ops import POOL, argmax_kernel_grad, map_frames, unchunk, window_values
from pixelrnn_jax.core.quantizers import sign
from pixelrnn_jax.core.sensors import register_sensor
from pixelrnn_jax.sensor.scamp5.chip_facts import ARRAY, SIDE, TAP_ORDER, ChipFacts, grid_lines
from pixelrnn_jax.sensor.scamp5.chip_program import Errors, model_noise
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, hashed_normals, mix32, systematic
from pixelrnn_jax.sensor.scamp5.patterns import readout_offset_plane
from pixelrnn_jax.sensor.scamp5.requirements import check_fits

__all__ = ["forward", "noise_model", "cnn_kernels_by_block"]

Array = jax.Array


@lru_cache(maxsize=8)
def noise_model(calibration: str) -> NoiseModel:
    """The error model `ModelConfig.sensor_calibration` names, read once per trace's name."""
    return NoiseModel.named(calibration)


def _keep(noise: NoiseModel, name: str, positive: bool | None = None) -> float:
    """The fraction of a result an instruction keeps (its mean over sign when None)."""
    err = noise.instruction(name)
    if positive is None:
        return 1.0 - 0.5 * (err.loss + err.negative_loss)
    return 1.0 - (err.loss if positive else err.negative_loss)


def _dac(noise: NoiseModel, value: float) -> float:
    """What the DAC writes for `value` (`NoiseModel.dac_write`, on the host: a constant)."""
    with jax.ensure_compile_time_eval():
        return float(np.asarray(noise.dac_write(value)))


def _strict(pre: Array, m: float) -> Array:
    """+1 where pre > 0, else -1 (the chip's comparisons are strict), sign's surrogate."""
    return -sign(-pre, m)


def cnn_kernels_by_block(w: Array) -> Array:
    """(16 5 5) model kernels -> (4 4 5 5): block (by, bx) holds channel 4 bx + by."""
    return jnp.transpose(w.reshape(4, 4, 5, 5), (1, 0, 2, 3))


def _tap_gains(noise: NoiseModel) -> tuple[np.ndarray, float]:
    """(5 5) weight of each tap's product in the finished sum (the gains of the add after it
    and of every later tap) and the sum's constant (the reset's and the taps' offsets)."""
    keep = _keep(noise, "add_const")
    gains = np.zeros((5, 5), np.float32)
    for idx, (i, j) in enumerate(TAP_ORDER):
        gains[i, j] = keep ** (len(TAP_ORDER) - idx)
    const = -noise.instruction("reset").offset * keep ** len(TAP_ORDER) - sum(
        noise.instruction("add_const").offset * keep ** k for k in range(len(TAP_ORDER)))
    return gains, float(const)


# The CNN's blocks in four groups by their padding: (top row?, right column?, the blocks'
# rows, their columns) in the tiled layout [n, by, u, bx, v] of `ops.pooled_conv`
_GROUPS = ((True, False, slice(0, 1), slice(0, 3)), (True, True, slice(0, 1), slice(3, 4)),
           (False, False, slice(1, 4), slice(0, 3)), (False, True, slice(1, 4), slice(3, 4)))
_CELLS = SIDE // POOL


def _extended_phases(frames: Array, top: bool, right: bool) -> Array:
    """frames (n 64 64) -> the phases (n 4 4 17 17) of the block's window, the frame extended
    by 4 rows above and 4 columns right: the frame's own (the neighbouring blocks' pixels,
    circularly) or -1 beyond the array (blocks of the top row / right column)."""
    n = frames.shape[0]
    ext = jnp.pad(frames, ((0, 0), (4, 0), (0, 4)), mode="wrap")
    if top:
        ext = ext.at[:, :4, :].set(-1)
    if right:
        ext = ext.at[:, :, SIDE:].set(-1)
    q = (SIDE + 4) // POOL
    return ext.reshape(n, q, POOL, q, POOL).transpose(0, 2, 4, 1, 3)


def _grid_at(a: int, b: int) -> np.ndarray:
    """(1 1 16 1 16) bool: the cells whose window offset (a, b) lies on a grid line."""
    g = grid_lines(SIDE)[a::POOL, b::POOL]
    return g[None, None, :, None, :]


def _join_groups(parts: list) -> Array:
    """The four groups' (n r 16 c 16) arrays -> (n 4 16 4 16)."""
    return jnp.concatenate([jnp.concatenate(parts[:2], 3), jnp.concatenate(parts[2:], 3)], 1)


def _cnn_window_max(frames, index, kw, seed, consts, with_arg):
    """Max over each 4 x 4 pooling window of the noisy sums (before saturation and relu) and
    optionally an arg-max 4a + b (int8). Each group of blocks is its own loop (a
    concatenation inside XLA's fused loop would evaluate every group at every cell)."""
    const, reset, std = consts
    n = frames.shape[0]
    cell = np.arange(4 * _CELLS * 4 * _CELLS, dtype=np.uint32).reshape(1, 4, _CELLS, 4, _CELLS)
    if seed is not None:
        base = index.astype(jnp.uint32).reshape(n, 1, 1, 1, 1) * jnp.uint32(POOL * POOL)
    bests = []
    for top, right, rows, cols in _GROUPS:
        ph = _extended_phases(frames, top, right)
        if seed is not None:
            offsets = jnp.arange(POOL * POOL, dtype=jnp.uint32).reshape(1, -1, 1, 1, 1, 1)
            counter = (base[:, None] + offsets) * jnp.uint32(cell.size) + cell[:, None, rows,
                                                                               :, cols]
            z = jax.lax.optimization_barrier(jnp.float32(std) * hashed_normals(seed, counter))
        best = None
        for a in range(POOL):
            for b in range(POOL):
                sums = window_values(ph, kw[rows, cols], a, b, _CELLS, _CELLS)
                v = jnp.where(_grid_at(a, b), jnp.float32(reset), sums + jnp.float32(const))
                if seed is not None:
                    v = v + z[:, POOL * a + b]
                # the offset in the 4 low mantissa bits (cleared: the value truncated toward
                # zero by < 16 ulp, which keeps the order), so one max gives max and arg-max
                code = (jax.lax.bitcast_convert_type(v, jnp.int32) & ~15) | (POOL * a + b)
                code = jax.lax.bitcast_convert_type(code, jnp.float32)
                best = code if best is None else jnp.maximum(best, code)
        bests.append(best)
    code = jax.lax.bitcast_convert_type(_join_groups(bests), jnp.int32)
    best = jax.lax.bitcast_convert_type(code & ~15, jnp.float32)
    return best, ((code & 15).astype(jnp.int8) if with_arg else None)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _pooled_cnn(frames, kw, seed, consts, bounds):
    """The CNN of all 16 blocks, pooled: relu(saturate(max over each 4 x 4 window of the
    sums + their noise)), (n 4 16 4 16) tiled [n, by, u, bx, v], in units.

    frames (n 64 64) +-1; kw (4 4 5 5) the blocks' weights, each product's weight in the
    finished sum; seed (2,) uint32 for the sums' temporal noise or None; consts (the sums'
    constant, the reset value, the noise std), bounds (lo, hi) or None (static). The
    backward pass routes each cell's gradient to its window's arg-max (the pooled conv of
    `ops.pooled_conv`), so neither pass keeps the 16 x 64 x 64 sums of a frame."""
    index = jnp.arange(frames.shape[0], dtype=jnp.int32)
    best = unchunk(map_frames(lambda f, i: _cnn_window_max(f, i, kw, seed, consts, False)[0],
                              frames, index))
    return _saturate_relu(best, bounds)


def _saturate_relu(best, bounds):
    if bounds is not None:
        best = jnp.clip(best, *bounds)
    return jnp.maximum(best, 0.0)


def _pooled_cnn_fwd(frames, kw, seed, consts, bounds):
    index = jnp.arange(frames.shape[0], dtype=jnp.int32)
    best, arg = unchunk(map_frames(lambda f, i: _cnn_window_max(f, i, kw, seed, consts, True),
                                   frames, index))
    return _saturate_relu(best, bounds), (frames.astype(jnp.int8), best, arg, seed)


def _pooled_cnn_bwd(consts, bounds, res, g):
    frames, best, arg, seed = res
    lo, hi = bounds if bounds is not None else (-np.inf, np.inf)

    def chunk(f, bc, ac, gc):
        # no gradient where the maximum saturated, was <= 0 or lay on a grid line (reset)
        live = (bc > 0) & (bc > lo) & (bc < hi)
        for a in range(POOL):
            for b in range(POOL):
                live = live & ~((ac == POOL * a + b) & _grid_at(a, b))
        gc = jnp.where(live, gc, 0.0)
        # the patches in int16 (+-1 exactly; half the bytes of float32: the backward 83 -> 37
        # ms for 512 frames, benchmarks/NOTES.md)
        dws = [argmax_kernel_grad(_extended_phases(f.astype(jnp.int16), top, right),
                                  gc[:, rows, :, cols], ac[:, rows, :, cols], _CELLS, _CELLS)
               for top, right, rows, cols in _GROUPS]
        return jnp.concatenate([jnp.concatenate(dws[:2], 1), jnp.concatenate(dws[2:], 1)], 0)

    dkw = map_frames(chunk, frames, best, arg, g).sum(0)
    dseed = None if seed is None else np.zeros(seed.shape, jax.dtypes.float0)
    return None, dkw, dseed


_pooled_cnn.defvjp(_pooled_cnn_fwd, _pooled_cnn_bwd)


# tap t of `TAP_ORDER` as an index into a flattened (5 5) kernel
_TAP_INDEX = np.array([5 * i + j for i, j in TAP_ORDER], np.int32)


def _strip_linear(padded: Array, kcols: Array) -> Array:
    """sum_t kcols[t, X] padded(Y + i_t, X + j_t) over the taps t = (i_t, j_t) of
    `TAP_ORDER`: padded (n 68 W+4) (the strip with the 4 rows above it and the 4 columns
    right of it), kcols (25 W) each tap's weight at each output column -> (n 64 W)."""
    width = kcols.shape[1]
    acc = None
    for t, (i, j) in enumerate(TAP_ORDER):
        term = padded[:, i:i + SIDE, j:j + width] * kcols[t]
        acc = term if acc is None else acc + term
    return acc


def _strip_linear_vjp(padded: Array, kcols: Array, g: Array) -> tuple[Array, Array]:
    """The VJP of `_strip_linear`, by hand, over chunks of frames (`ops.map_frames`): XLA's
    transposes of the 25 overlapping slices took 267 ms per call here; over all 480 frames of
    a batch at once this VJP took 96 ms, chunked 29 ms."""
    width = kcols.shape[1]
    kp = jnp.pad(kcols, ((0, 0), (4, 4)))

    def chunk(p, gc):
        gp = jnp.pad(gc, ((0, 0), (4, 4), (4, 4)))
        dp = None
        for t, (i, j) in enumerate(TAP_ORDER):
            term = gp[:, 4 - i:4 - i + SIDE + 4, 4 - j:4 - j + width + 4] * kp[t, 4 - j:
                                                                                4 - j + width + 4]
            dp = term if dp is None else dp + term
        # the 25 kernel sums in one pass (`ops.sums_over_leading`): per scan step 1.4 -> 0.5
        # ms, for the 480 frames of the h-free columns 13 -> 5.6 ms (benchmarks/NOTES.md)
        return dp, ops.sums_over_leading(tuple(gc * p[:, i:i + SIDE, j:j + width]
                                               for i, j in TAP_ORDER))

    dp, dk = map_frames(chunk, padded, g)
    return unchunk(dp), dk.sum(0)


def _taps_in_order(padded: Array, kcols: Array, noise: NoiseModel, reset: float,
                   gains: np.ndarray) -> Array:
    """The 25 displaced taps on a strip of a block row, one after another as the chip runs
    them: padded (n 68 W+4) +-1 (`_strip_linear`), kcols (25 W) the taps' weights in units
    -> the accumulator (n 64 W); every partial sum takes the add's sign-dependent loss and
    offset and saturates (exact).

    The gradient is that of the taps' linear model, each product weighted by its mean gain
    in the finished sum (`gains`, as the CNN's), where the sum did not saturate: the exact
    sequence's gradient would keep the 25 partial sums of every step of the scan and cost
    20 times the forward pass. The backward pass keeps one saturation mask and never reruns
    the chain."""
    n, width = padded.shape[0], kcols.shape[1]
    errors, add = Errors(noise), noise.instruction("add_const")
    weight = gains.reshape(-1)[_TAP_INDEX][:, None]

    def exact_chain(padded, kcols):
        order = jnp.asarray(np.array(TAP_ORDER, np.int32))

        def tap(t, acc):
            win = jax.lax.dynamic_slice(padded, (0, order[t, 0], order[t, 1]),
                                        (n, SIDE, width))
            kt = jax.lax.dynamic_slice(kcols, (t, 0), (1, width))
            return errors.clip(systematic(add, acc + win * kt))

        # a loop, not 25 fused steps: its result is one buffer, where XLA would otherwise
        # fuse a copy of the whole chain into every consumer of the sum (2-5x the work)
        return jax.lax.fori_loop(0, len(TAP_ORDER), tap, unroll=5, init_val=jnp.full(
            (n, SIDE, width), reset, jnp.float32))

    @jax.custom_vjp
    def taps(padded, kcols):
        return exact_chain(padded, kcols)

    def taps_fwd(padded, kcols):
        exact = exact_chain(padded, kcols)
        live = None
        if noise.saturation is not None:
            lo, hi = noise.saturation
            live = (exact > lo) & (exact < hi)
        return exact, (padded, kcols, live)

    def taps_bwd(res, g):
        padded, kcols, live = res
        if live is not None:
            g = jnp.where(live, g, 0.0)
        dp, dk = _strip_linear_vjp(padded, kcols * weight, g)
        return dp, dk * weight

    taps.defvjp(taps_fwd, taps_bwd)
    return taps(padded, kcols)


def _tap_columns(*kernels_widths) -> Array:
    """(kernel (5 5), columns) pairs -> (25 sum of columns): each output column's weight
    of every tap, in `TAP_ORDER`."""
    return jnp.concatenate([jnp.broadcast_to(kern.reshape(-1)[_TAP_INDEX][:, None],
                                             (len(TAP_ORDER), cols))
                            for kern, cols in kernels_widths], 1)


def _seed(key: Array | None) -> Array | None:
    return None if key is None else jax.random.bits(key, (2,), jnp.uint32)


def _normal(seed: Array, shape: tuple[int, ...], std: float, draw: Array | int = 0) -> Array:
    """std x `hashed_normals` of `shape`, draw `draw` of `seed`: a counter hash fused into
    its consumer, where threefry's rolled loop copied its state at every round (about 25 ms
    of a chip train step for the gate's draws, benchmarks/NOTES.md)."""
    counter = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    salted = jnp.stack([mix32(seed[0] ^ jnp.uint32(draw)), seed[1]])
    return jnp.float32(std) * hashed_normals(salted, counter)


def forward(x: Array, cnn_w: Array, cell: dict, config: ModelConfig, rng: Array | None, *,
            noise: NoiseModel | None = None, facts: ChipFacts = ChipFacts()) -> Array:
    """x (t b 64 64) +-1, cnn_w (16 5 5) +-1, cell {w_f, u_f, w_o, u_o} +-1 -> the readout
    (b t/16 64 64), model units. With `rng` the temporal noise is drawn; `noise` default the
    error model of `config.sensor_calibration`."""
    noise = noise_model(config.sensor_calibration) if noise is None else noise
    m, k = config.m, facts.cycle
    t, b, h, w = x.shape
    keys = list(jax.random.split(rng, 6)) if rng is not None else [None] * 6
    inc = _dac(noise, facts.increment)
    gains, const = _tap_gains(noise)
    reset = -noise.instruction("reset").offset
    clip = Errors(noise).clip
    # the temporal noise before the CNN threshold and the forget gate (units)
    sites, step = model_noise(noise, facts), facts.increment * noise.dac_gain
    taps_std, gate_std = sites["noise_cnn"] * step, sites["noise_gate"] * step

    # CNN: every frame of the batch in the 16 blocks at once, pooled: the 4 x 4 cells of
    # each block as the 64 x 64 image of the blocks
    kw = cnn_kernels_by_block(cnn_w) * jnp.asarray(gains) * jnp.float32(inc)
    seed = _seed(keys[0])
    bounds = None if noise.saturation is None else tuple(float(v) for v in noise.saturation)
    cells = _pooled_cnn(x.reshape(t * b, h, w), kw, seed,
                        (float(const), float(reset), float(taps_std)), bounds)
    cells = cells.reshape(t * b, SIDE, SIDE)
    # RNN input (u, v) is cell (u, v + 1) (the window 4 columns right; none beyond the
    # array), one row up: the last row is -1
    pooled = jnp.pad(cells, ((0, 0), (0, 0), (0, 1)))[:, :, 1:]
    bits = _strict((pooled[:, :-1] - facts.cnn_threshold) / facts.increment, m)
    xr = jnp.concatenate([bits, -jnp.ones((t * b, 1, SIDE), bits.dtype)], 1)

    # PixelRNN: windows of one cycle folded into the batch, time-major
    xr = xr.reshape(t // k, k, b, SIDE, SIDE)
    xr = jnp.moveaxis(xr, 1, 0).reshape(k, t // k * b, SIDE, SIDE)
    hu = _dac(noise, facts.hidden_units) * _keep(noise, "load", False)
    g_pos = _keep(noise, "transfer", True) ** SIDE
    g_neg = _keep(noise, "transfer", False) ** SIDE
    move_off = -noise.instruction("transfer").offset * sum(
        _keep(noise, "transfer") ** i for i in range(SIDE))
    # per block of the cell image: grid lines (row 0, column 63) at the reset value, then the
    # edges at -hidden units: the first column of the input's block; the readout's blocks,
    # the last row of the cell image, also their last row
    grid = grid_lines(SIDE)
    first_column, last_row = np.zeros((SIDE, SIDE), bool), np.zeros((SIDE, SIDE), bool)
    first_column[:, 0] = True
    last_row[-1, :] = True
    wf, uf, wo, uo = (cell[name] * jnp.float32(inc) for name in ("w_f", "u_f", "w_o", "u_o"))
    add = noise.instruction("add")

    def gate(acc_x, acc_h, readout):
        """E in block column 1 from the accumulators of the input's block and the hidden
        state's: the input part moved 64 columns east through 64 transfers, added."""
        bottom = last_row if readout else np.zeros_like(last_row)
        acc_x = clip(jnp.where(first_column | bottom, -hu, jnp.where(grid, reset, acc_x)))
        acc_h = clip(jnp.where(bottom, -hu, jnp.where(grid, reset, acc_h)))
        part = jnp.where(acc_x >= 0, g_pos, g_neg) * acc_x + move_off
        return clip(systematic(add, acc_h + part))

    def strip(rows_above, *columns):
        """The cell image's block row from its column parts (n 64 w_i) and the 4 rows above
        it (n 4 sum w_i), -1 right of it: (n 68 sum w_i + 4)."""
        body = jnp.concatenate(columns, -1)
        padded = jnp.concatenate([rows_above, body], 1)
        return jnp.pad(padded, ((0, 0), (0, 0), (0, 4)), constant_values=-1.0)

    # the forget gate's input block: its columns 0 .. 59 never see h (the window reaches 4
    # columns right), so they run for every frame at once, outside the scan
    n = xr.shape[1]
    xs = xr[:-1].reshape((k - 1) * n, SIDE, SIDE)
    above = -jnp.ones((xs.shape[0], 4, SIDE), jnp.float32)
    acc_x_early = _taps_in_order(jnp.concatenate([above, xs], 1), _tap_columns((wf, SIDE - 4)),
                                 noise, reset, gains).reshape(k - 1, n, SIDE, SIDE - 4)
    scan_columns = _tap_columns((wf, 4), (uf, SIDE))
    above = -jnp.ones((n, 4, SIDE + 4), jnp.float32)

    gate_seed = _seed(keys[1])

    def step(hs, inp):
        x_t, early, draw = inp
        acc = _taps_in_order(strip(above, x_t[..., SIDE - 4:], hs), scan_columns, noise,
                             reset, gains)
        e = gate(jnp.concatenate([early, acc[..., :4]], -1), acc[..., 4:], False)
        if gate_seed is not None:
            e = e + _normal(gate_seed, e.shape, gate_std, draw)
        return _strict((e - facts.rnn_threshold) / facts.increment, m) * hs, None

    hs, _ = jax.lax.scan(step, jnp.ones((n, SIDE, SIDE), jnp.float32),
                         (xr[:-1], acc_x_early, jnp.arange(k - 1, dtype=jnp.uint32)))
    # the readout's blocks see the forget gate's blocks above them: their last 4 rows
    x_t = xr[-1]
    top = jnp.concatenate([x_t, hs], -1)[:, SIDE - 4:]
    acc = _taps_in_order(strip(top, x_t, hs), _tap_columns((wo, SIDE), (uo, SIDE)), noise,
                         reset, gains)
    o = gate(acc[..., :SIDE], acc[..., SIDE:], True)
    if keys[2] is not None:
        o = o + _normal(_seed(keys[2]), o.shape, gate_std)
    r = noise.readout
    if not r.ideal:
        o = jnp.float32(r.zero) + jnp.float32(r.gain) * o
        plane = readout_offset_plane(noise.pattern.seed, r, (ARRAY, ARRAY))
        if plane is not None:
            o = o + jnp.asarray(plane)[2 * SIDE:3 * SIDE, 2 * SIDE:3 * SIDE]
        if keys[3] is not None:
            if r.std > 0:
                o = o + _normal(_seed(keys[3]), o.shape, r.std)
            if r.column_std > 0:
                o = o + _normal(_seed(keys[4]), o.shape[:-2] + (1, SIDE), r.column_std)
        if r.quantize:
            o = o + jax.lax.stop_gradient(jnp.round(o) - o)
            o = jnp.clip(o, -127.0, 128.0)
    o = o / jnp.float32(facts.increment)
    return jnp.moveaxis(o.reshape(t // k, b, SIDE, SIDE), 0, 1)


register_sensor("chip", forward, lambda config: check_fits(config, "chip"))
