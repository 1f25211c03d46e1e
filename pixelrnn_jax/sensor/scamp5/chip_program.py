"""The PixelRNN program as it really runs on the SCAMP-5 chip: the "chip" sensor mode.

The "ideal" program (`ideal_program`) runs the paper's description and equals
`pixelrnn_jax.encode`. The authors' program on the physical chip differs from it in ways
that decorrelate the two readouts almost completely (0.06 Pearson for the authors' model);
this module follows the program facts instead (the data folder's `SCAMP5_PROGRAM.md`), as a
direct vectorised emulation on the readout image (rows Y, columns X, 0 at top-left, 4 x 4
blocks of 64 x 64):

1. Upload: a pixel is +1 where the 8-bit frame is >= 128 (the top-4-bit upload compared
   with the 1-unit image threshold); boolean videos are taken as already binarised, float
   videos (normalised intensities) are binarised at >= 0.
2. CNN, 16 maps at once: the frame tiled over the 4 x 4 blocks, block (by, bx) holding
   channel 4 bx + by. Its 25 taps give `C(Y, X) = 10 xcorr(Y - 2, X + 2)`: a cross-correlation
   displaced 2 rows down and 2 columns left, padded by the neighbouring blocks' pixels
   (block-circular) and by -1 at the array edge. Rows Y % 64 == 0 and columns X % 64 == 63
   (grid lines) are never accumulated (0).
3. ReLU, 4 x 4 max-pool, the shifts of the program and two half-scalings: RNN-input pixel
   (u, v) of the 64 x 64 tiled map is the maximum of C over rows 4u + dy .. 4u + dy + 3,
   columns 4v + dx .. 4v + dx + 3 with `ChipFacts.pool_offset` = (dy, dx) = (-5, 7): one
   pixel off the PyTorch pooling windows, x_chip(u, v) ~ x_torch(u - 1, v + 2) once the input
   lands one row up (step 4). Windows straddling a block edge mix neighbouring channels.
   The bit is +1 where the pooled value exceeds 10 units: a single product (a tie) fails.
4. PixelRNN on the four central blocks: x_t in block (1, 1) one row up (its first row lost,
   its last row -1), h_{t-1} in (1, 2), both copied one block down; w_f, u_f, w_o, u_o run in
   blocks (1, 1), (1, 2), (2, 1), (2, 2) with the same displaced taps (the register outside
   the central blocks reads -1), grid lines 0, -80 outside rows 64..190 / columns 65..191.
   The input terms move one block east onto the hidden terms: E = input part + hidden part.
   f = E - 10 > 0 in block (1, 2); h <- f XNOR h (h stored as +-80 and snapped every frame,
   so it stays binary); h is all +1 at the first frame of every 16-frame cycle.
5. Readout: the saved crop [128:192, 128:192] of E at the cycle's last frame (crop row 0 and
   column 63 grid lines, row 63 outside the output, column 0 -80 plus the hidden term).

Non-idealities (`ChipNoise`, fitted to real readouts by `calibrate`): the analog increment
of one product (`gain` units per 10 requested), Gaussian noise at the two kinds of decision
(the CNN threshold and the forget gate, std in units: the sum of the per-step noise of the
25 or 50 accumulate steps before them), and the readout's affine response: separate gains of
the input and hidden parts of E, a zero level, and an optional fixed pattern (per-pixel
offset). Binary decisions make every decision site's noise independent given the
deterministic pooled values, so a noisy run only re-draws bits; `expected_readout` averages
`draws` runs (vmapped), the first-class prediction since the hidden state is chaotic under
noise.

    w = official.load_weights_text("cam_noise_iw10.txt")
    o = scamp5.simulate(w, frames, program="chip", noise=ChipNoise())  # noise-free
    o = chip.expected_readout(w, frames, noise, jax.random.key(0), draws=32)

Readouts are in model units ((v - 127) / 10 of the 8-bit readout, `units.readout_to_model_units`),
in the saved crop's coordinates.
"""
from __future__ import annotations

import dataclasses
import math
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import NOISE_SITES, ModelConfig
from pixelrnn_jax.core.quantizers import numpy_sign
from pixelrnn_jax.sensor import authors_files as official
from pixelrnn_jax.sensor import authors_model
from pixelrnn_jax.sensor.scamp5.requirements import CHIP_CYCLE, CHIP_SIDE, check_fits
from pixelrnn_jax.sensor.units import HIDDEN_UNITS, UNITS_PER_PRODUCT

__all__ = ["ChipFacts", "ChipNoise", "ChipWeights", "chip_weights", "binarize_frames",
           "cnn_pooled", "rnn_cycle", "pooled_counts", "readout_parts", "respond", "run",
           "expected_readout", "SIDE", "CYCLE"]

Array = jax.Array

SIDE = CHIP_SIDE   # block side, frame side, readout side
ARRAY = 4 * SIDE   # the 256 x 256 array
CYCLE = CHIP_CYCLE


@dataclasses.dataclass(frozen=True)
class ChipFacts:
    """The authors' on-chip program: settings of the recordings (`SCAMP5_PROGRAM.md`).

    Attributes:
      upload_threshold: 8-bit pixel value from which an uploaded pixel is +1.
      increment: units per +-1 product requested from the DAC ("input white").
      cnn_threshold: a pooled CNN value must exceed this many units (strictly).
      rnn_threshold: the forget gate is E - rnn_threshold > 0 (units).
      pool_offset: (rows, columns) of the first pixel of RNN-input pixel (0, 0)'s pooling
        window in the displaced conv image C.
      outside: the value (+-1) the RNN register holds outside the four central blocks.
      cycle: frames per readout cycle (h reset to +1 at its first frame).
    """

    upload_threshold: int = 128
    increment: float = UNITS_PER_PRODUCT
    cnn_threshold: float = UNITS_PER_PRODUCT
    rnn_threshold: float = UNITS_PER_PRODUCT
    pool_offset: tuple[int, int] = (-5, 7)
    outside: float = -1.0
    cycle: int = CYCLE

    def __post_init__(self):
        if not 0 < self.upload_threshold <= 255:
            raise ValueError(f"ChipFacts.upload_threshold must lie in 1..255, "
                             f"got {self.upload_threshold}")
        if self.increment <= 0:
            raise ValueError(f"ChipFacts.increment must be > 0, got {self.increment}")
        if len(self.pool_offset) != 2 or max(abs(int(v)) for v in self.pool_offset) > 12:
            raise ValueError(f"ChipFacts.pool_offset must be two ints within +-12, "
                             f"got {self.pool_offset}")
        if self.cycle < 1:
            raise ValueError(f"ChipFacts.cycle must be >= 1, got {self.cycle}")


@dataclasses.dataclass(frozen=True)
class ChipNoise:
    """Non-idealities of the chip, in units (10 = one product at the default increment).

    Attributes:
      gain: units actually added per requested unit (the per-step DAC gain; thresholds stay
        at their nominal units, so a gain below 1 turns near-ties into fails).
      cnn_std: std of the noise at the CNN threshold (25 accumulate steps).
      gate_std: std of the noise at the forget-gate threshold (50 steps).
      readout_input_gain, readout_hidden_gain: response of the readout to the input and the
        hidden part of E (relative to the program's units).
      readout_offset: the readout's zero level (units).
      fixed_pattern: per-pixel readout offset (64 64) in units, or None.
      readout_std: std (units) of the readout noise beyond the decision noise, added to
        single runs (`simulate` with a key), not to the expected readout.

    `ChipNoise()` is the ideal chip: unit gains, no noise, zero offset.
    """

    gain: float = 1.0
    cnn_std: float = 0.0
    gate_std: float = 0.0
    readout_input_gain: float = 1.0
    readout_hidden_gain: float = 1.0
    readout_offset: float = 0.0
    fixed_pattern: np.ndarray | None = dataclasses.field(default=None, compare=False)
    readout_std: float = 0.0

    def __post_init__(self):
        if self.gain <= 0:
            raise ValueError(f"ChipNoise.gain must be > 0, got {self.gain}")
        for name in ("cnn_std", "gate_std", "readout_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"ChipNoise.{name} must be >= 0, got {getattr(self, name)}")
        if self.fixed_pattern is not None and np.shape(self.fixed_pattern) != (SIDE, SIDE):
            raise ValueError(f"ChipNoise.fixed_pattern must be ({SIDE}, {SIDE}) units, got "
                             f"{np.shape(self.fixed_pattern)}")

    @property
    def random(self) -> bool:
        return self.cnn_std > 0 or self.gate_std > 0

    @classmethod
    def calibrated(cls) -> "ChipNoise":
        """The calibration to the 45 Cambridge videos with real readouts (`experiments/
        sim2real.py`, all videos, fixed pattern left out): the chip as a run sees it."""
        return cls(gain=1.0, cnn_std=3.0, gate_std=4.0, readout_input_gain=0.456,
                   readout_hidden_gain=0.279, readout_offset=8.16, readout_std=38.0)

    @classmethod
    def from_op_std(cls, op_std: float, **kw) -> "ChipNoise":
        """Decision-site noise from a per-accumulate-step std: 25 steps before the CNN
        threshold, 50 (two 25-tap kernels) before the forget gate."""
        return cls(cnn_std=op_std * 5.0, gate_std=op_std * math.sqrt(50.0), **kw)

    def replace(self, **changes) -> "ChipNoise":
        return dataclasses.replace(self, **changes)

    def model_noise(self, increment: float = UNITS_PER_PRODUCT) -> dict:
        """The model's noise sites (`ModelConfig` fields, model units: one product = 1) that
        match this chip, for noise-aware training: the CNN and gate noise relative to one
        product's analog increment, the readout noise relative to the readout's input gain.
        The upload's 16 levels lie >= 8 units from its threshold: no input noise."""
        step = increment * self.gain
        out_gain = max(self.readout_input_gain * self.gain, 1e-6)
        return dict(zip(NOISE_SITES, (0.0, self.cnn_std / step, self.gate_std / step,
                                      self.readout_std / (increment * out_gain))))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "fixed_pattern"}
        d["fixed_pattern"] = None if self.fixed_pattern is None else "per-pixel (64 x 64)"
        return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                for k, v in d.items()}


class ChipWeights(NamedTuple):
    """The kernels as the chip holds them: per-tap sign planes (5 5 H W) float32 +-1."""

    cnn: Array    # (5, 5, 256, 256): block (by, bx) holds channel 4 bx + by
    cell: Array   # (5, 5, 128, 128): w_f, u_f / w_o, u_o in the central 2 x 2 blocks


def _sign(a) -> np.ndarray:
    # the used slots of the authors' headers hold only +-1; sign(0) = +1 as in the model
    return numpy_sign(a).astype(np.float32)


def _block_planes(kernels: np.ndarray) -> np.ndarray:
    """(gy, gx, 5, 5) -> (5, 5, gy*64, gx*64): every block filled with its kernel's taps."""
    k = np.transpose(kernels, (2, 3, 0, 1))
    return np.repeat(np.repeat(k, SIDE, 2), SIDE, 3)


def chip_weights(weights) -> ChipWeights:
    """The weight planes of the chip from `official.OfficialWeights`, a weight file (.txt the
    authors' text format, .h the sensor header) or this library's model variables."""
    if isinstance(weights, (str, Path)):
        weights = official.load_weights(weights)
    elif isinstance(weights, dict):
        weights = authors_model.from_variables(weights)
    if not isinstance(weights, official.OfficialWeights):
        raise TypeError(f"weights must be OfficialWeights, a weight file path or model "
                        f"variables, got {type(weights).__name__}")
    if weights.conv2 is not None:
        raise ValueError("the chip program runs one CNN layer; these weights have two")
    conv = np.asarray(weights.conv1)
    if conv.shape != (16, 5, 5):
        raise ValueError(f"conv1 must be (16, 5, 5), got {conv.shape}")
    cnn = np.zeros((4, 4, 5, 5), np.float32)
    for by in range(4):
        for bx in range(4):
            cnn[by, bx] = _sign(conv[4 * bx + by])
    cell = np.stack([np.stack([_sign(weights.w_f), _sign(weights.u_f)]),
                     np.stack([_sign(weights.w_o), _sign(weights.u_o)])])
    return ChipWeights(jnp.asarray(_block_planes(cnn)), jnp.asarray(_block_planes(cell)))


# ----------------------------------------------------------------------------- inputs


def binarize_frames(video, facts: ChipFacts = ChipFacts()) -> np.ndarray:
    """(... H W) -> bool, True = +1: uint8 frames by the upload rule (>= upload_threshold),
    bool as given, float normalised intensities at >= 0 (the model's sign)."""
    v = np.asarray(video)
    if v.dtype == np.bool_:
        return v
    if v.dtype == np.uint8:
        return v >= facts.upload_threshold
    if np.issubdtype(v.dtype, np.floating):
        return v >= 0
    raise ValueError(f"video must be uint8 frames, bool binarised frames or float intensities, "
                     f"got {v.dtype}")


def _check_video(b: np.ndarray, facts: ChipFacts) -> None:
    if b.ndim != 4 or b.shape[-2:] != (SIDE, SIDE):
        raise ValueError(f"video must be (videos, frames, {SIDE}, {SIDE}) (the chip's 64 x 64 "
                         f"upload), got shape {b.shape}")
    if b.shape[1] % facts.cycle:
        raise ValueError(f"video has {b.shape[1]} frames, not a multiple of the program's "
                         f"{facts.cycle}-frame cycle")


# ----------------------------------------------------------------------------- the program


def _grid_lines(n: int) -> np.ndarray:
    y = np.arange(n)
    return (y[:, None] % SIDE == 0) | (y[None, :] % SIDE == SIDE - 1)


def _displaced_xcorr(planes: Array, image: Array, fill: float) -> Array:
    """sum_taps w_(Y, X)[i, j] * image(Y - 4 + i, X + j): the chip's 25-tap loop, i.e. the
    cross-correlation displaced 2 rows down and 2 columns left; `fill` beyond the image."""
    n = image.shape[-1]
    lead = [(0, 0)] * (image.ndim - 2)
    pad = jnp.pad(image, lead + [(4, 0), (0, 4)], constant_values=fill)
    return sum(planes[i, j] * pad[..., i:i + n, j:j + n] for i in range(5) for j in range(5))


def cnn_pooled(w: ChipWeights, bits: Array, facts: ChipFacts = ChipFacts()) -> Array:
    """Pooled CNN values in products (... 64 64) of binarised frames (... 64 64) bool.

    The RNN-input pixel's pooled count before the threshold: >= 0 (ReLU); the chip passes
    it where `increment * gain * count > cnn_threshold`.
    """
    img = jnp.tile(jnp.where(bits, 1.0, -1.0), (4, 4))
    c = _displaced_xcorr(w.cnn, img, -1.0)
    c = jnp.maximum(jnp.where(_grid_lines(ARRAY), 0.0, c), 0.0)
    dy, dx = facts.pool_offset
    r = 16
    lead = [(0, 0)] * (c.ndim - 2)
    c = jnp.pad(c, lead + [(r, r), (r, r)])[..., r + dy:r + dy + ARRAY, r + dx:r + dx + ARRAY]
    return c.reshape(*c.shape[:-2], SIDE, 4, SIDE, 4).max(axis=(-3, -1))


_RNN_GRID = _grid_lines(2 * SIDE)
_RNN_OUTSIDE = (np.arange(2 * SIDE)[:, None] == 2 * SIDE - 1) | (np.arange(2 * SIDE)[None] == 0)


def _decide(value: Array, threshold: float, std: float, key) -> Array:
    if std > 0:
        value = value + std * jax.random.normal(key, value.shape, value.dtype)
    return value > threshold


def rnn_cycle(w: ChipWeights, x: Array, noise: ChipNoise, facts: ChipFacts,
              key: Array | None) -> tuple[Array, Array]:
    """One readout cycle on the central blocks: x (t 64 64) +-1 RNN inputs (tiled map) ->
    the input and hidden parts of E (units, at gain 1) at the cycle's last frame, crop
    coordinates. `key` draws the forget-gate noise (None when gate_std == 0)."""
    xb = jnp.concatenate([x[:, 1:], jnp.full_like(x[:, :1], -1.0)], 1)   # lands one row up
    g = noise.gain
    steps = xb.shape[0]
    keys = (jax.random.split(key, steps) if noise.gate_std > 0
            else jnp.zeros((steps, 2), jnp.uint32))

    def parts(x_t, h):
        reg = jnp.concatenate([jnp.concatenate([x_t, x_t], 0), jnp.concatenate([h, h], 0)], 1)
        acc = facts.increment * _displaced_xcorr(w.cell, reg, facts.outside)
        acc = jnp.where(_RNN_GRID, 0.0, acc)
        acc = jnp.where(_RNN_OUTSIDE, -HIDDEN_UNITS, acc)
        return acc[:, :SIDE], acc[:, SIDE:]

    def step(h, inp):
        x_t, k = inp
        a_in, a_h = parts(x_t, h)
        e = g * (a_in + a_h)[:SIDE]
        f = _decide(e, facts.rnn_threshold, noise.gate_std, k)
        return jnp.where(f, h, -h), None

    h0 = jnp.ones((SIDE, SIDE), jnp.float32)
    h, _ = jax.lax.scan(step, h0, (xb[:-1], keys[:-1]))
    a_in, a_h = parts(xb[-1], h)
    return a_in[SIDE:], a_h[SIDE:]


def _video_parts(w, pooled, noise, facts, key):
    """pooled (t 64 64) counts of one video -> input and hidden parts (t/cycle 64 64)."""
    t = pooled.shape[0]
    k_cnn, k_gate = jax.random.split(key) if key is not None else (None, None)
    units = facts.increment * noise.gain * pooled
    x = jnp.where(_decide(units, facts.cnn_threshold, noise.cnn_std, k_cnn), 1.0, -1.0)
    n = t // facts.cycle
    x = x.reshape(n, facts.cycle, SIDE, SIDE)
    kg = (jax.random.split(k_gate, n) if k_gate is not None
          else jnp.zeros((n, 2), jnp.uint32))
    def one(xc, kc):
        return rnn_cycle(w, xc, noise, facts, kc if noise.gate_std > 0 else None)

    return jax.vmap(one)(x, kg)


@partial(jax.jit, static_argnames=("facts",))
def _pooled_jit(w, bits, facts):
    return jax.vmap(jax.vmap(lambda f: cnn_pooled(w, f, facts)))(bits)


@partial(jax.jit, static_argnames=("noise", "facts", "draws"))
def _parts_jit(w, pooled, keys, noise, facts, draws):
    """pooled (b t 64 64); keys (draws b) or None -> parts (draws b t/cycle 64 64) each."""
    if keys is None:
        one = lambda p: _video_parts(w, p, noise, facts, None)  # noqa: E731
        a_in, a_h = jax.vmap(one)(pooled)
        return a_in[None], a_h[None]
    per_video = jax.vmap(lambda p, k: _video_parts(w, p, noise, facts, k))
    return jax.vmap(per_video, in_axes=(None, 0))(pooled, keys)


def readout_parts(weights, video, noise: ChipNoise = ChipNoise(), rng: Array | None = None, *,
                  draws: int = 1, facts: ChipFacts = ChipFacts(), batch: int = 64,
                  pooled: Array | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The input and hidden parts of E (units, before the readout response) of `draws` noisy
    runs: two arrays (draws b t/cycle 64 64). Noise-free (one draw) without decision noise.

    `pooled`: the CNN's pooled counts (`pooled_counts`) when already computed.
    """
    w = weights if isinstance(weights, ChipWeights) else chip_weights(weights)
    if pooled is None:
        pooled = pooled_counts(w, video, facts)
    if noise.random and rng is None:
        raise ValueError("the chip noise model has decision noise: pass rng=jax.random.key(..)"
                         ", or chip.ChipNoise() for the noise-free program")
    if not noise.random:
        draws = 1
    static = noise.replace(fixed_pattern=None, readout_std=0.0)
    ins, hids = [], []
    for s in range(0, pooled.shape[0], batch):
        p = pooled[s:s + batch]
        keys = None
        if noise.random:
            keys = jax.random.split(jax.random.fold_in(rng, s), (draws, p.shape[0]))
        a_in, a_h = _parts_jit(w, jnp.asarray(p), keys, static, facts, draws)
        ins.append(np.asarray(a_in))
        hids.append(np.asarray(a_h))
    return np.concatenate(ins, 1), np.concatenate(hids, 1)


def pooled_counts(weights, video, facts: ChipFacts = ChipFacts(), batch: int = 16) -> np.ndarray:
    """Deterministic CNN pooled counts (b t 64 64) of a video batch (see `binarize_frames`)."""
    w = weights if isinstance(weights, ChipWeights) else chip_weights(weights)
    bits = binarize_frames(video, facts)
    if bits.ndim == 3:
        bits = bits[None]
    _check_video(bits, facts)
    out = [np.asarray(_pooled_jit(w, jnp.asarray(bits[s:s + batch]), facts))
           for s in range(0, len(bits), batch)]
    return np.concatenate(out)


def respond(a_in, a_h, noise: ChipNoise, rng: Array | None = None) -> np.ndarray:
    """The readout (model units) of E's parts: gains, zero level, fixed pattern."""
    units = (noise.readout_offset + noise.gain * (noise.readout_input_gain * np.asarray(a_in)
                                                  + noise.readout_hidden_gain * np.asarray(a_h)))
    if noise.fixed_pattern is not None:
        units = units + np.asarray(noise.fixed_pattern, np.float32)
    if rng is not None and noise.readout_std > 0:
        units = units + noise.readout_std * np.asarray(jax.random.normal(rng, units.shape))
    return (units / UNITS_PER_PRODUCT).astype(np.float32)


def run(weights, video, config: ModelConfig | None = None, *, noise: ChipNoise | None = None,
        rng: Array | None = None, options: ChipFacts | None = None) -> np.ndarray:
    """One run of the chip program: (b t 64 64) frames -> (b t/cycle 64 64) readouts in model
    units (a single (t 64 64) video gives (t/cycle 64 64)). Noise-free with `ChipNoise()`;
    the default `noise` is the calibrated chip (`ChipNoise.calibrated()`). `options`: the
    program's facts (`ChipFacts`). `config`: the model, checked to fit the chip program
    (default: the binary 1-CNN PixelRNN the weights describe)."""
    check_fits(ModelConfig() if config is None else config, "chip")
    noise = ChipNoise.calibrated() if noise is None else noise
    facts = ChipFacts() if options is None else options
    if not isinstance(noise, ChipNoise):
        raise TypeError(f"noise of the chip program must be a ChipNoise, got "
                        f"{type(noise).__name__}")
    if not isinstance(facts, ChipFacts):
        raise TypeError(f"options of the chip program must be ChipFacts, got "
                        f"{type(facts).__name__}")
    single = np.ndim(video) == 3
    a_in, a_h = readout_parts(weights, video, noise, rng, draws=1, facts=facts)
    out = respond(a_in[0], a_h[0], noise, None if rng is None else jax.random.fold_in(rng, 7919))
    return out[0] if single else out


def expected_readout(weights, video, noise: ChipNoise, rng: Array | None = None, *,
                     draws: int = 32, facts: ChipFacts = ChipFacts()) -> np.ndarray:
    """The mean readout over `draws` noisy runs (b t/cycle 64 64), model units."""
    single = np.ndim(video) == 3
    a_in, a_h = readout_parts(weights, video, noise, rng, draws=draws, facts=facts)
    out = respond(a_in.mean(0), a_h.mean(0), noise)
    return out[0] if single else out
