"""The fast emulation of the chip program (`chip_machine`): the "chip_fast" sensor program.

The same instructions, in the same order, with the same errors (`noise.systematic`, the
chip's pattern planes of the same registers), computed on the readout image without the
register file, the digital bookkeeping or the per-instruction noise draws where they can be
folded:

* the upload and the 25 CNN taps run once per video (not per noise draw) as mean and
  variance: every tap's temporal noise scaled through the later taps' gains (exact for the
  sign-dependent affine errors while a partial sum keeps its sign);
* per draw the CNN sums are drawn from that mean and variance, then ReLU, the four
  max-pool steps and the 1-right-1-down move run literally (their transfers and copies
  drawn), the threshold and the digital gather as on the machine;
* the 64-pixel moves (x and h down, the input part east) are composite affine maps of the
  64 transfers, precomputed per chip (gain and offset per pixel and sign) plus their summed
  variance; the gate taps run per draw as mean and variance, every decision (> 30
  re-binarisation, the forget gate) and the readout drawn from them.

With the noise off (`NoiseModel.ideal()`) every value is an integer and the readout equals
the machine program's bit for bit; with only systematic errors on they agree to float
rounding; with temporal noise the two agree in distribution (tests/test_chip_programs.py).

    o = scamp5.simulate(w, frames, program="chip_fast", rng=jax.random.key(0))
    mean = chip_program.expected_readout(w, frames, noise, jax.random.key(0), draws=32)
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.sensor.scamp5.chip_facts import (
                                                   ARRAY,
                                                   CYCLE,
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
from pixelrnn_jax.sensor.scamp5.geometry import shift_plane
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, mix32, systematic
from pixelrnn_jax.sensor.scamp5.patterns import dac_plane, pattern_planes, readout_offset_plane
from pixelrnn_jax.sensor.scamp5.requirements import check_fits

__all__ = ["cnn_sums", "rnn_inputs", "readout_draws", "run", "expected_readout", "model_noise",
           "SIDE", "CYCLE", "Errors", "Normals"]

Array = jax.Array
POOL_STEPS = ((0, 1), (0, 2), (-1, 0), (-2, 0))
CENTRAL = slice(SIDE, 3 * SIDE)   # rows and columns of the central blocks in the image


def _shift(x, dy, dx, fill):
    return shift_plane(x[..., None, None, :, :], dy, dx, "block", fill)[..., 0, 0, :, :]


class Errors:
    """The error model on an image window (the array, or the central blocks)."""

    def __init__(self, noise: NoiseModel, window: slice | None = None):
        self.noise = noise
        self.window = window

    def _local(self, plane):
        if plane is None:
            return None
        plane = jnp.asarray(plane)
        return plane if self.window is None else plane[self.window, self.window]

    def planes(self, register: str):
        return tuple(self._local(p) for p in pattern_planes(self.noise.pattern, (ARRAY, ARRAY),
                                                             register))

    def dac(self, value):
        return self.noise.dac_write(value, self._local(dac_plane(self.noise.pattern,
                                                                 (ARRAY, ARRAY))))

    def clip(self, v):
        if self.noise.saturation is None:
            return v
        lo, hi = self.noise.saturation
        return jnp.clip(v, lo, hi)

    def slope(self, name: str, register: str, r):
        """d out / d r of the instruction's systematic error (the gain its noise sees)."""
        err = self.noise.instruction(name)
        g, gn, _ = self.planes(register)
        up = jnp.float32(1.0 - err.loss) + (0.0 if g is None else g)
        down = jnp.float32(1.0 - err.negative_loss) + (0.0 if gn is None else gn)
        return jnp.where(r >= 0, up, down)

    def var(self, name: str) -> float:
        err = self.noise.instruction(name)
        return float(err.std ** 2 + err.column_std ** 2)

    def mean(self, name: str, register: str, r):
        return self.clip(systematic(self.noise.instruction(name), r, self.planes(register)))

    def propagate(self, name: str, register: str, r, var):
        """(mean, variance) of the instruction's result on an exact value r of variance var."""
        v = self.var(name)
        if var is not None and not (isinstance(var, float) and var == 0.0):
            v = v + self.slope(name, register, r) ** 2 * var
        return self.mean(name, register, r), v

    def draw(self, name: str, register: str, r, normals):
        """One execution of the instruction on r: its error, temporal and column noise."""
        err = self.noise.instruction(name)
        out = systematic(err, r, self.planes(register))
        if normals is not None and (err.std > 0 or err.column_std > 0):
            if err.std > 0:
                out = out + err.std * normals(jnp.shape(out))
            if err.column_std > 0:
                out = out + err.column_std * normals(jnp.shape(out)[:-2] + (1, jnp.shape(out)[-1]))
        return self.clip(out)


class Normals:
    """N(0, 1) samples read from a bank: every call a window at an offset, with a sign,
    hashed from the stream and the call's count (the machine's noise bank, see `noise`)."""

    def __init__(self, bank: Array, stream: Array):
        self.bank, self.stream, self.count = bank, jnp.asarray(stream, jnp.uint32), 0

    def child(self, index) -> "Normals":
        return Normals(self.bank, mix32(self.stream ^ mix32(
            jnp.asarray(index, jnp.uint32) * jnp.uint32(0x9E3779B9) + jnp.uint32(0x7F4A7C15))))

    def __call__(self, shape) -> Array:
        n = int(np.prod(shape))
        self.count += 1
        h = mix32(self.stream + jnp.uint32(self.count * 0x85EBCA6B % (1 << 32)))
        offset = (h % jnp.uint32(self.bank.shape[0] - n + 1)).astype(jnp.int32)
        sign = jnp.where((mix32(h ^ jnp.uint32(0x27D4EB2F)) & 1) == 1, 1.0, -1.0)
        return jax.lax.dynamic_slice(self.bank, (offset,), (n,)).reshape(shape) * sign


def _sample(mean, var, normals):
    if normals is None or (isinstance(var, float) and var == 0.0):
        return mean
    return mean + jnp.sqrt(var) * normals(jnp.shape(mean))


# ----------------------------------------------------------------------------- CNN


def _taps(ops: Errors, register: str, bits, planes, valid, increment: float, fill: bool):
    """Mean and variance of the 25 taps' accumulator (the machine's `_taps`)."""
    inc = ops.dac(increment)
    acc, var = ops.propagate("reset", register, jnp.zeros(bits.shape, jnp.float32), None)
    acc = jnp.broadcast_to(acc, bits.shape)
    for i, j in TAP_ORDER:
        p = ~(_shift(bits, i - 4, j, fill) ^ planes[i, j])
        new, nv = ops.propagate("add_const", register, acc + jnp.where(p, inc, -inc), var)
        acc, var = jnp.where(valid, new, acc), jnp.where(valid, nv, var)
    return acc, var


@partial(jax.jit, static_argnames=("noise", "facts"))
def _cnn_jit(w: ChipWeights, frames, noise: NoiseModel, facts: ChipFacts):
    ops = Errors(noise)
    if frames.ndim == 5:   # (4, b, t, 64, 64) bit-planes: the analog rebuild
        tile = jnp.tile(frames, (1, 1, 1, 4, 4))
        up, _ = ops.propagate("load", "A", ops.dac(UPLOAD_BASE) + jnp.zeros(tile.shape[1:]),
                              None)
        for i, wt in enumerate(UPLOAD_WEIGHTS):
            up = jnp.where(tile[i], ops.mean("add_const", "A", up + ops.dac(wt)), up)
        bits = up > facts.upload_threshold
    else:
        bits = jnp.tile(frames, (1, 1, 4, 4))
    valid = ~jnp.asarray(grid_lines(ARRAY))
    return _taps(ops, "A", bits, w.cnn > 0, valid, facts.increment, False)


def cnn_sums(weights, video, noise: NoiseModel, facts: ChipFacts = ChipFacts(),
             batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (b t 256 256, units) of the CNN accumulator after the 25 taps."""
    v = check_video(video, facts)
    w = chip_weights(weights)
    means, vars_ = [], []
    for s in range(0, len(v), batch):
        part = v[s:s + batch]
        part = upload_planes(part) if part.dtype == np.uint8 else (
            part if part.dtype == np.bool_ else part >= 0)
        m, var = _cnn_jit(w, jnp.asarray(part), noise, facts)
        means.append(np.asarray(m))
        vars_.append(np.asarray(jnp.broadcast_to(var, m.shape)))
    return np.concatenate(means), np.concatenate(vars_)


def rnn_inputs(mean, var, normals: Normals | None, noise: NoiseModel, facts: ChipFacts):
    """One draw of the RNN input bits (64 64) from the CNN sums (256 256) of one frame:
    ReLU, max-pool, the move and the threshold executed, the gather, the row up."""
    ops = Errors(noise)

    def nxt():
        return normals

    a = _sample(mean, var, nxt())
    reset = ops.draw("reset", "A", jnp.zeros_like(a), nxt())
    a = jnp.where(a >= 0, a, reset)

    def hops(v, dy, dx, register):
        for _ in range(abs(dy)):
            v = ops.draw("transfer", register, _shift(v, int(np.sign(dy)), 0, 0.0), nxt())
        for _ in range(abs(dx)):
            v = ops.draw("transfer", register, _shift(v, 0, int(np.sign(dx)), 0.0), nxt())
        return v

    for dy, dx in POOL_STEPS:
        b = hops(a, dy, dx, "B")
        a = jnp.where(b > a, ops.draw("copy", "A", b, nxt()), a)
    a = hops(a, -1, -1, "A")
    bits = a > facts.cnn_threshold
    r0, c0 = facts.anchor
    x = _shift(bits, r0, c0, False)[..., ::4, ::4]
    return _shift(x, 1, 0, False)


# ----------------------------------------------------------------------------- RNN


class _Chain:
    """The composite of n unit transfers into one register: out = gain[s] * in(p - path) +
    offset[s], variance var[s], for the source's sign s (0: >= 0, 1: < 0)."""

    def __init__(self, gain, offset, var):
        self.gain, self.offset, self.var = gain, offset, var

    def apply(self, src, var_src, dy, dx):
        s = (_shift(src, dy, dx, 0.0) < 0).astype(jnp.int32)
        pick = lambda a: jnp.where(s == 1, a[1], a[0])  # noqa: E731
        g = pick(self.gain)
        moved = _shift(src, dy, dx, 0.0)
        vs = 0.0 if isinstance(var_src, float) and var_src == 0.0 else _shift(
            jnp.broadcast_to(var_src, src.shape), dy, dx, 0.0)
        return g * moved + pick(self.offset), g * g * vs + pick(self.var)


def _chain(ops: Errors, register: str, n: int, uy: int, ux: int) -> _Chain:
    err = ops.noise.instruction("transfer")
    g, gn, off = ops.planes(register)
    shape = (2 * SIDE, 2 * SIDE)
    out = []
    for keep, pg in ((1.0 - err.loss, g), (1.0 - err.negative_loss, gn)):
        k = jnp.float32(keep) + (0.0 if pg is None else pg)
        a, b, v = jnp.ones(shape), jnp.zeros(shape), jnp.zeros(shape)
        for _ in range(n):   # the value now at p came from p + (uy, ux) one hop earlier
            a = _shift(a, uy, ux, 0.0) * k
            b = _shift(b, uy, ux, 0.0) * k - jnp.float32(err.offset) + (0.0 if off is None
                                                                        else off)
            v = _shift(v, uy, ux, 0.0) * k * k + err.std ** 2 + err.column_std ** 2
        out.append((jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape), v))
    return _Chain(*(jnp.stack(t) for t in zip(*out)))


def _rnn_draw(w: ChipWeights, x, normals: Normals | None, noise: NoiseModel,
              facts: ChipFacts, chains):
    """One noisy run of the RNN over one video's inputs x (t 64 64) bool -> the readout
    (t/cycle 64 64) units, the moved input part and the hidden part of E there."""
    ops = Errors(noise, CENTRAL)
    hu, bt = facts.hidden_units, facts.binarize_threshold
    n = 2 * SIDE
    valid = ~jnp.asarray(grid_lines(n, SIDE))
    outside = np.zeros((n, n), bool)
    outside[n - 1, :] = True
    outside[:, 0] = True
    outside = jnp.asarray(outside)
    south, east = (_Chain(*c) for c in chains)
    planes = w.cell > 0
    load_hi = ops.propagate("load", "D", ops.dac(hu) + jnp.zeros((n, n)), None)
    load_lo = ops.propagate("load", "D", ops.dac(-hu) + jnp.zeros((n, n)), None)
    minus = ops.propagate("load", "C", ops.dac(-hu) + jnp.zeros((n, n)), None)
    readout = noise.readout
    rplane = readout_offset_plane(noise.pattern.seed, readout, (ARRAY, ARRAY))
    rplane = None if rplane is None else jnp.asarray(rplane)[2 * SIDE:3 * SIDE,
                                                             2 * SIDE:3 * SIDE]

    def frame(h, inp):
        x_t, i, first = inp
        k = [None] * 6 if normals is None else [normals.child(6 * i + j) for j in range(6)]
        h = jnp.where(first, True, h)
        top = jnp.concatenate([x_t, h], -1)                               # (64, 128)
        lv = jnp.where(jnp.concatenate([top, top], 0), load_hi[0], load_lo[0])
        lvar = jnp.where(jnp.concatenate([top, top], 0), load_hi[1], load_lo[1])
        moved, mvar = south.apply(lv, lvar, -SIDE, 0)
        cell = jnp.concatenate([(_sample(lv, lvar, k[0]) > bt)[:SIDE],
                                (_sample(moved, mvar, k[1]) > bt)[SIDE:]], 0)
        acc, var = _taps(ops, "C", cell, planes, valid, facts.increment, False)
        acc = jnp.where(outside, minus[0], acc)
        var = jnp.where(outside, minus[1], var)
        part, pvar = east.apply(acc, var, 0, -SIDE)
        e, evar = ops.propagate("add", "C", acc + part, var + pvar)
        e = jnp.where(jnp.arange(n) >= SIDE, e, acc)
        evar = jnp.where(jnp.arange(n) >= SIDE, evar, var)
        f = _sample(e, evar, k[2])[:SIDE, SIDE:] > facts.rnn_threshold
        out = _sample(e, evar, k[3])[SIDE:, SIDE:]
        if not readout.ideal:
            out = jnp.float32(readout.zero) + jnp.float32(readout.gain) * out
            if rplane is not None:
                out = out + rplane
            if normals is not None:
                if readout.std > 0:
                    out = out + readout.std * k[4]((SIDE, SIDE))
                if readout.column_std > 0:
                    out = out + readout.column_std * k[5]((1, SIDE))
            if readout.quantize:
                out = jnp.clip(jnp.round(out), -127.0, 128.0)
        return ~(f ^ h), (out, part[SIDE:, SIDE:], acc[SIDE:, SIDE:])

    t = x.shape[0]
    firsts = jnp.arange(t) % facts.cycle == 0
    _, (e, part, hid) = jax.lax.scan(frame, jnp.ones((SIDE, SIDE), bool),
                                     (x, jnp.arange(t), firsts))
    sel = slice(facts.cycle - 1, None, facts.cycle)
    return e[sel], part[sel], hid[sel]


@partial(jax.jit, static_argnames=("noise",))
def _chains_jit(noise: NoiseModel):
    ops = Errors(noise, CENTRAL)
    return tuple((c.gain, c.offset, c.var) for c in
                 (_chain(ops, "E", SIDE, -1, 0), _chain(ops, "E", SIDE, 0, -1)))


@partial(jax.jit, static_argnames=("noise", "facts", "draws"))
def _draws_jit(w, mean, var, key, chains, noise: NoiseModel, facts: ChipFacts, draws: int):
    """-> readouts, parts: (draws b t/cycle 64 64) each."""
    bank_key, stream_key = jax.random.split(key)
    bank = jax.random.normal(bank_key, (16 * ARRAY * ARRAY,), jnp.float32)
    root = Normals(bank, jax.random.bits(stream_key, (), jnp.uint32))
    b, t = mean.shape[:2]

    def one(m, v, d, i):
        src = root.child(d).child(i)
        x = jax.vmap(lambda mm, vv, f: rnn_inputs(mm, vv, src.child(1 << 16).child(f), noise,
                                                  facts))(m, v, jnp.arange(t))
        return _rnn_draw(w, x, src.child(1 << 17), noise, facts, chains)

    # draws one after another: their intermediates are the size of the videos' CNN sums
    return jax.lax.map(lambda d: jax.vmap(one, in_axes=(0, 0, None, 0))(
        mean, var, d, jnp.arange(b)), jnp.arange(draws))


@partial(jax.jit, static_argnames=("noise", "facts"))
def _clean_jit(w, mean, chains, noise: NoiseModel, facts: ChipFacts):
    def one(m):
        x = jax.vmap(lambda mm: rnn_inputs(mm, 0.0, None, noise, facts))(m)
        return _rnn_draw(w, x, None, noise, facts, chains)

    return jax.vmap(one)(mean)


def readout_draws(weights, video, noise: NoiseModel, rng=None, *, draws: int = 1,
                  facts: ChipFacts = ChipFacts(), batch: int = 4, sums=None) -> dict:
    """`draws` noisy runs: {"readout" (read-out units), "input_part", "hidden_part" (units,
    E's two parts at the readout)}, each (draws b t/cycle 64 64). One draw without temporal
    noise. `sums`: `cnn_sums` of the videos when already computed."""
    w = chip_weights(weights)
    mean, var = cnn_sums(w, video, noise, facts) if sums is None else sums
    if noise.random and rng is None:
        raise ValueError("the noise model has temporal noise: pass rng=jax.random.key(..), or "
                         "noise=NoiseModel.ideal() for the noise-free program")
    chains = _chains_jit(noise)
    outs = []
    for s in range(0, len(mean), batch):
        m, v = jnp.asarray(mean[s:s + batch]), jnp.asarray(var[s:s + batch])
        if noise.random:
            key = jax.random.fold_in(rng, s)
            outs.append([np.asarray(a) for a in _draws_jit(w, m, v, key, chains, noise, facts,
                                                           draws)])
        else:
            outs.append([np.asarray(a)[None] for a in _clean_jit(w, m, chains, noise, facts)])
    names = ("readout", "input_part", "hidden_part")
    return {k: np.concatenate([o[i] for o in outs], 1) for i, k in enumerate(names)}


def run(weights, video, config: ModelConfig | None = None, *, noise: NoiseModel | None = None,
        rng: Array | None = None, options: ChipFacts | None = None) -> np.ndarray:
    """One run of the fast chip program: (b t 64 64) frames -> (b t/cycle 64 64) readouts in
    model units (a single (t 64 64) video gives (t/cycle 64 64)). noise: default the shipped
    calibration; options: `ChipFacts`."""
    check_fits(ModelConfig() if config is None else config, "chip")
    noise = NoiseModel() if noise is None else noise
    facts = ChipFacts() if options is None else options
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise of the chip program must be a NoiseModel, got "
                        f"{type(noise).__name__}")
    if not isinstance(facts, ChipFacts):
        raise TypeError(f"options of the chip program must be ChipFacts, got "
                        f"{type(facts).__name__}")
    single = np.ndim(video) == 3
    out = readout_draws(weights, video, noise, rng, facts=facts)["readout"][0]
    out = (out / np.float32(facts.increment)).astype(np.float32)
    return out[0] if single else out


def expected_readout(weights, video, noise: NoiseModel, rng: Array | None = None, *,
                     draws: int = 32, facts: ChipFacts = ChipFacts()) -> np.ndarray:
    """The mean readout over `draws` noisy runs (b t/cycle 64 64), model units."""
    single = np.ndim(video) == 3
    out = readout_draws(weights, video, noise, rng, draws=draws, facts=facts)["readout"]
    out = (out.mean(0) / np.float32(facts.increment)).astype(np.float32)
    return out[0] if single else out


def model_noise(noise: NoiseModel | None = None, facts: ChipFacts = ChipFacts()) -> dict:
    """The noise sites of noise-aware training (`ModelConfig` fields, model units: one
    product = the DAC's increment) for this program on `noise`: the temporal noise summed
    over the instructions before each decision (losses ignored): a reset and 25 taps before
    the CNN threshold; two of those, 64 neighbour transfers and the add before the forget
    gate; the readout's noise on top for o_t. The upload's levels lie >= 6 units from its
    threshold: no input noise."""
    noise = NoiseModel() if noise is None else noise
    var = {k: e.std ** 2 + e.column_std ** 2 for k, e in noise.instructions}
    cnn = var["reset"] + 25 * var["add_const"]
    gate = 2 * cnn + SIDE * var["transfer"] + var["add"]
    r = noise.readout
    out = gate + (r.std ** 2 + r.column_std ** 2) / r.gain ** 2
    step = facts.increment * noise.dac_gain
    return dict(zip(("noise_input", "noise_cnn", "noise_gate", "noise_out"),
                    (0.0, float(np.sqrt(cnn) / step), float(np.sqrt(gate) / step),
                     float(np.sqrt(out) / step))))
