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
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.core.quantizers import sign
from pixelrnn_jax.core.sensors import register_sensor
from pixelrnn_jax.sensor.scamp5.chip_facts import ARRAY, SIDE, TAP_ORDER, ChipFacts, grid_lines
from pixelrnn_jax.sensor.scamp5.chip_program import Errors, model_noise
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, systematic
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


def _cnn_sums(frames: Array, kernels: Array, gains: np.ndarray, inc: float, const: float,
              reset: float) -> Array:
    """The CNN's 25 displaced taps in all 16 blocks: frames (n 64 64) +-1, kernels (4 4 5 5)
    -> the sums (n 64 64 16) in units, block by * 4 + bx last, grid lines at the reset value.

    Every block holds the same frame, so a block's window is the frame extended by 4 rows
    above and 4 columns right: the frame's own rows and columns (the neighbouring blocks',
    circularly) or -1 beyond the array, for the blocks of the top row and right column.
    Each of the 4 extensions is one matrix product of the frame's 25 taps with the kernels
    of its blocks (XLA's dot: several times faster here, forward and backward, than 25
    multiply-adds or a grouped convolution)."""
    n = frames.shape[0]
    wrap = jnp.pad(frames, ((0, 0), (4, 0), (0, 4)), mode="wrap")
    kw = (kernels * jnp.asarray(gains) * jnp.float32(inc)).reshape(16, 25).T   # (25 16)
    out = [None] * 16
    for top in (False, True):
        for right in (False, True):
            blocks = [4 * by + bx for by in range(4) for bx in range(4)
                      if (by == 0) == top and (bx == 3) == right]
            ext = wrap
            if top:
                ext = ext.at[:, :4, :].set(-1.0)
            if right:
                ext = ext.at[:, :, SIDE:].set(-1.0)
            taps = jnp.stack([ext[:, i:i + SIDE, j:j + SIDE] for i in range(5)
                              for j in range(5)], -1)                           # (n 64 64 25)
            sums = taps.reshape(n * SIDE * SIDE, 25) @ kw[:, blocks]
            for k, blk in enumerate(blocks):
                out[blk] = sums[:, k]
    c = jnp.stack(out, -1).reshape(n, SIDE, SIDE, 16)
    valid = ~jnp.asarray(grid_lines(SIDE))[..., None]
    return jnp.where(valid, c + jnp.float32(const), jnp.float32(reset))


def _block_taps_in_order(image: Array, kernels: Array, noise: NoiseModel, inc: float,
                         reset: float) -> Array:
    """The 25 displaced taps on a grid of blocks, one after another as the chip runs them:
    image (n H W) +-1, kernels (gy gx 5 5) +-1 -> the accumulator (n H W) in units, -1
    beyond the image, grid lines at the reset value; every partial sum takes the add's
    sign-dependent loss and offset and saturates (exact)."""
    n, h, w = image.shape
    gy, gx = h // SIDE, w // SIDE
    xp = jnp.pad(image, ((0, 0), (4, 0), (0, 4)), constant_values=-1.0)
    wins = jnp.stack([xp[:, SIDE * by:SIDE * by + SIDE + 4, SIDE * bx:SIDE * bx + SIDE + 4]
                      for by in range(gy) for bx in range(gx)], 1)
    kw = (kernels * jnp.float32(inc)).reshape(gy * gx, 5, 5)
    clip, add = Errors(noise).clip, noise.instruction("add_const")
    acc = jnp.full((n, gy * gx, SIDE, SIDE), reset, jnp.float32)
    for i, j in TAP_ORDER:
        acc = clip(systematic(add, acc + wins[:, :, i:i + SIDE, j:j + SIDE]
                              * kw[None, :, i, j, None, None]))
    out = jnp.transpose(acc.reshape(n, gy, gx, SIDE, SIDE), (0, 1, 3, 2, 4)).reshape(n, h, w)
    return jnp.where(~jnp.asarray(grid_lines(h)), out, jnp.float32(reset))


def _normal(key, shape, std: float):
    return std * jax.random.normal(key, shape, jnp.float32)


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

    # CNN: every frame of the batch in the 16 blocks at once
    c = _cnn_sums(x.reshape(t * b, h, w), cnn_kernels_by_block(cnn_w), gains, inc, const,
                  reset)
    if keys[0] is not None:
        c = c + _normal(keys[0], c.shape, taps_std)
    c = jax.nn.relu(clip(c))
    # the pooled 4 x 4 cells of each block, as the 64 x 64 image of the blocks
    cells = c.reshape(t * b, SIDE // 4, 4, SIDE // 4, 4, 4, 4).max(axis=(2, 4))
    cells = jnp.transpose(cells, (0, 3, 1, 4, 2)).reshape(t * b, SIDE, SIDE)
    # RNN input (u, v) is cell (u, v + 1) (the window 4 columns right; none beyond the
    # array), one row up: the last row is -1
    pooled = jnp.pad(cells, ((0, 0), (0, 0), (0, 1)))[:, :, 1:]
    bits = _strict((pooled[:, :-1] - facts.cnn_threshold) / facts.increment, m)
    xr = jnp.concatenate([bits, -jnp.ones((t * b, 1, SIDE), bits.dtype)], 1)

    # PixelRNN: windows of one cycle folded into the batch, time-major
    xr = xr.reshape(t // k, k, b, SIDE, SIDE)
    xr = jnp.moveaxis(xr, 1, 0).reshape(k, t // k * b, SIDE, SIDE)
    kernels = jnp.stack([jnp.stack([cell["w_f"], cell["u_f"]]),
                         jnp.stack([cell["w_o"], cell["u_o"]])])
    hu = _dac(noise, facts.hidden_units) * _keep(noise, "load", False)
    g_pos = _keep(noise, "transfer", True) ** SIDE
    g_neg = _keep(noise, "transfer", False) ** SIDE
    move_off = -noise.instruction("transfer").offset * sum(
        _keep(noise, "transfer") ** i for i in range(SIDE))
    edge = np.zeros((2 * SIDE, 2 * SIDE), bool)
    edge[-1, :] = True
    edge[:, 0] = True
    edge = jnp.asarray(edge)

    def gates(hs, x_t):
        top = jnp.concatenate([x_t, hs], -1)
        acc = _block_taps_in_order(jnp.concatenate([top, top], 1), kernels, noise, inc, reset)
        acc = clip(jnp.where(edge, -hu, acc))
        left, right = acc[..., :SIDE], acc[..., SIDE:]
        part = jnp.where(left >= 0, g_pos, g_neg) * left + move_off
        return clip(systematic(noise.instruction("add"), right + part))   # (n 128 64)

    def step(hs, inp):
        x_t, key = inp
        e = gates(hs, x_t)[:, :SIDE]
        if keys[1] is not None:
            e = e + _normal(key, e.shape, gate_std)
        return _strict((e - facts.rnn_threshold) / facts.increment, m) * hs, None

    n = xr.shape[1]
    step_keys = (jax.random.split(keys[1], k - 1) if keys[1] is not None
                 else jnp.zeros((k - 1,), jnp.float32))
    hs, _ = jax.lax.scan(step, jnp.ones((n, SIDE, SIDE), jnp.float32), (xr[:-1], step_keys))
    o = gates(hs, xr[-1])[:, SIDE:]
    if keys[2] is not None:
        o = o + _normal(keys[2], o.shape, gate_std)
    r = noise.readout
    if not r.ideal:
        o = jnp.float32(r.zero) + jnp.float32(r.gain) * o
        plane = readout_offset_plane(noise.pattern.seed, r, (ARRAY, ARRAY))
        if plane is not None:
            o = o + jnp.asarray(plane)[2 * SIDE:3 * SIDE, 2 * SIDE:3 * SIDE]
        if keys[3] is not None:
            if r.std > 0:
                o = o + _normal(keys[3], o.shape, r.std)
            if r.column_std > 0:
                o = o + _normal(keys[4], o.shape[:-2] + (1, SIDE), r.column_std)
        if r.quantize:
            o = o + jax.lax.stop_gradient(jnp.round(o) - o)
            o = jnp.clip(o, -127.0, 128.0)
    o = o / jnp.float32(facts.increment)
    return jnp.moveaxis(o.reshape(t // k, b, SIDE, SIDE), 0, 1)


register_sensor("chip", forward, lambda config: check_fits(config, "chip"))
