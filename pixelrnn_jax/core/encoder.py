"""The on-sensor encoder: input binarization, in-pixel CNN layers, and the recurrent cell
run as one `jax.lax.scan` per readout window.

Shapes: `b` videos, `t` frames, `h w` the plane (64 x 64 on SCAMP-5), `k` = K frames per
readout window, `n` = b * t/K windows. Inside the encoder arrays are time-major (t b h w).

Speed-relevant structure (see benchmarks/NOTES.md):
  * the CNN runs on all frames at once (`pooled_conv`: fused conv + relu + 4x4 max-pool);
  * the input-only terms of the cell (w * x_t) are computed for all frames outside the scan;
  * windows are independent (the hidden state resets every K frames), so they are folded into
    the batch and the scan runs K - 1 steps; o is computed once, at the readout frame.

With `intermediates=True` the same scan also returns every frame's activations (the CNN
output and pre-activation, the state entering each frame, each gate's pre-activation and
o_t at every frame): the per-stage values the authors' reference files hold.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ops
from pixelrnn_jax.core.cells import CellContext, CellSpec
from pixelrnn_jax.core.config import ModelConfig
from pixelrnn_jax.core.quantizers import add_noise, sign
from pixelrnn_jax.core.sensors import sensor_forward

__all__ = ["Encoder", "InPixelCNN", "CellParams", "cnn_layer", "scan_cell",
           "effective_threshold", "MIN_BINARY_THRESHOLD", "NUM_MAPS"]

Array = jax.Array

NUM_MAPS = 16

# The smallest threshold a binary CNN layer applies. Its pooled maps are ReLU outputs, sums of
# +-1 products: with a threshold <= 0 every cell would pass and the layer's output would be
# constant +1, whatever the image (training can drift there: the surrogate gradient is
# largest at pooled = 0). Any threshold in (0, 1] means "at least one product more +1 than
# -1", so flooring at 0.5 changes nothing else.
MIN_BINARY_THRESHOLD = 0.5


def effective_threshold(threshold, binary: bool):
    """The threshold a CNN layer applies (and the sensor is loaded with): the learned value,
    floored at MIN_BINARY_THRESHOLD for binary layers. The floor is straight-through: the
    learned value keeps its gradient, so it can move back above the floor."""
    if not binary:
        return threshold
    if isinstance(threshold, jax.Array):  # traced or on device
        return threshold + jax.lax.stop_gradient(
            jnp.maximum(threshold, MIN_BINARY_THRESHOLD) - threshold)
    return np.maximum(np.asarray(threshold, np.float32), np.float32(MIN_BINARY_THRESHOLD))


def _latent_init(binary: bool):
    # Binary weights: latent floats near zero so the tanh surrogate passes gradient and signs
    # can flip. 32 bit: fan-in scaled, the 5x5 sums start with unit variance.
    return nn.initializers.normal(0.5 if binary else 0.2)


def cnn_layer(x: Array, w: Array, threshold: Array, noise: Array | None, *, binary: bool,
              m: float, first: bool) -> tuple[Array, Array]:
    """One in-pixel CNN layer on time-major planes (t b h w) -> (output, pre-activation),
    both (t b h w): the pooled maps minus the threshold (plus noise), and its quantized form.

    `ops.pooled_conv` runs chunk by chunk of frames under `lax.map` and materializes its
    output; threshold, noise and binarization are one cheap elementwise pass after it.
    """
    t, b, h, wd = x.shape
    pooled = ops.pooled_conv(x.reshape(t * b, h, wd), w, binary, not first)
    pre = pooled.reshape(t, b, h, wd) - threshold
    if noise is not None:
        pre = pre + noise
    return (sign(pre, m) if binary else pre), pre


class InPixelCNN(nn.Module):
    """One in-pixel CNN layer (paper Sec. 3.4, Fig. 4): 16 5x5 kernels on one plane, no bias,
    ReLU, 4x4 max-pool, learned threshold, binarize, tile the 16 maps into one plane.

    401 parameters: 16 x 25 kernel weights and one threshold.
    """

    config: ModelConfig
    first: bool = True
    kernels_only: bool = False

    @nn.compact
    def __call__(self, x: Array, noise: Array | None = None) -> tuple[Array, Array]:
        """x: (t b h w) -> (output, pre-activation), (t b h w) each; the output is +-1 in
        the binary setting. `kernels_only`: the quantized kernels (16 5 5), for a sensor
        program that runs the layer itself."""
        cfg = self.config
        kernel = self.param("kernel", _latent_init(cfg.binary), (NUM_MAPS, ops.KERNEL, ops.KERNEL))
        threshold = self.param("threshold", nn.initializers.constant(1.0), ())
        w = sign(kernel, cfg.m) if cfg.binary else kernel
        if self.kernels_only:
            return w
        return cnn_layer(x, w, effective_threshold(threshold, cfg.binary), noise,
                         binary=cfg.binary, m=cfg.m, first=self.first)


class CellParams(nn.Module):
    """The learned parameters of a recurrent cell, quantized as the sensor stores them."""

    config: ModelConfig

    @nn.compact
    def __call__(self) -> dict:
        cfg = self.config
        spec = cfg.spec
        p = {}
        for name in spec.kernels:
            k = self.param(name, _latent_init(cfg.binary), (ops.KERNEL, ops.KERNEL))
            p[name] = sign(k, cfg.m) if cfg.binary else k
        for name in spec.scalars:
            p[name] = self.param(name, nn.initializers.zeros, ())
        return p


def _split(rng, n):
    return [None] * n if rng is None else list(jax.random.split(rng, n))


def _windows(x: Array, k: int) -> Array:
    """(t b h w) -> (k nwin*b h w): windows of K frames folded into the batch."""
    t, b, h, w = x.shape
    nwin = t // k
    if nwin > 1:
        x = jnp.moveaxis(x.reshape(nwin, k, b, h, w), 1, 0)
    return x.reshape(k, nwin * b, h, w)


def _unwindow(y: Array, b: int) -> Array:
    """(k nwin*b h w) -> (b nwin*k h w), the inverse of `_windows` for per-frame values."""
    k, n, h, w = y.shape
    y = jnp.moveaxis(y.reshape(k, n // b, b, h, w), 2, 0)      # (b k nwin h w)
    return jnp.swapaxes(y, 1, 2).reshape(b, n // b * k, h, w)


def scan_cell(spec: CellSpec, p: dict, x: Array, ctx: CellContext, k: int,
              noise_gate: float = 0.0, noise_out: float = 0.0, rng: Array | None = None,
              intermediates: bool = False):
    """Runs a cell over time-major inputs (t b h w), resetting every k frames.

    Returns the readout (b t/k h w): windows are folded into the batch; one `lax.scan` runs
    the first k - 1 frames of every window, then the readout is computed from the state
    entering frame k - 1. Cells with `spec.per_frame` (camera baselines) read out at every
    frame instead: one scan over all k frames of every window, returning (b t h w).

    With `intermediates`, returns (readout, {"state": the state entering every frame,
    "pre": {site: pre-activation}, "o": the readout computed at every frame}), each
    (b t h w) (tuple states: a tuple of such planes).
    """
    t, b, h, w = x.shape
    xw = _windows(x, k)
    every_frame = spec.per_frame or intermediates
    terms = (spec.frame_terms if every_frame else spec.input_terms)(p, xw, ctx)
    sites = [(s, noise_gate) for s in spec.gate_sites] + [("o", noise_out)]
    noise = None
    if rng is not None and any(std > 0 for _, std in sites):
        keys = _split(rng, len(sites))
        noise = {s: std * jax.random.normal(key, xw.shape, jnp.float32)
                 for (s, std), key in zip(sites, keys) if std > 0}
    state = spec.init_state(p, xw.shape[1:], ctx, jax.tree.map(lambda a: a[0], terms))

    if every_frame:
        def frame(carry, inp):
            terms_t, noise_t = inp
            o = spec.output(p, carry, terms_t, noise_t, ctx)
            new, pre = spec.step(p, carry, terms_t, noise_t, ctx)
            return new, ((o, carry, pre) if intermediates else o)

        _, ys = jax.lax.scan(frame, state, (terms, noise))
        ys = jax.tree.map(lambda a: _unwindow(a, b), ys)
        if not intermediates:
            return ys
        o, states, pre = ys
        readout = o if spec.per_frame else o[:, k - 1::k]
        return readout, {"o": o, "state": states, "pre": pre}
    if k > 1:
        def body(carry, inp):
            terms_t, noise_t = inp
            return spec.step(p, carry, terms_t, noise_t, ctx)[0], None

        steps = jax.tree.map(lambda a: a[:k - 1], (terms, noise))
        state, _ = jax.lax.scan(body, state, steps)
    last, last_noise = jax.tree.map(lambda a: a[k - 1], (terms, noise))
    if spec.output_terms is not None:
        last = {**last, **spec.output_terms(p, xw[k - 1], ctx)}
    o = spec.output(p, state, last, last_noise, ctx)
    return jnp.moveaxis(o.reshape(t // k, b, h, w), 0, 1)


class Encoder(nn.Module):
    """Everything that runs on the sensor: (b t H W) intensities -> (b t/K h w) readouts
    ((b t h w) for the per-frame camera baselines).

    With `intermediates=True`: (readout, {"input", "cnn_pre", "cnn_out", "state", "pre",
    "o"}), every value per frame (b t h w): the binarized input, the last CNN layer's
    pre-activation and output (the cell's input), and `scan_cell`'s intermediates.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, video: Array, rng: Array | None = None, intermediates: bool = False):
        cfg = self.config
        spec = cfg.spec
        k_in, k_cnn, k_cell = _split(rng, 3)
        # time-major from here on: the scan walks the leading axis without transposes
        x = ops.max_pool(jnp.swapaxes(video.astype(jnp.float32), 0, 1), cfg.input_pool)
        if cfg.binary and spec.binarize_input:
            x = sign(add_noise(x, cfg.noise_input, k_in), cfg.m)
        if cfg.sensor != "ideal":
            if intermediates:
                raise ValueError(f"intermediates are given by the ideal sensor's forward pass "
                                 f"only, not sensor={cfg.sensor!r}")
            w = InPixelCNN(cfg, name="cnn_0", kernels_only=True)(x)
            return sensor_forward(cfg.sensor).forward(x, w, CellParams(cfg, name="cell")(),
                                                      cfg, k_cell)
        inputs = pre = x
        cnn_keys = _split(k_cnn, cfg.cnn_layers)
        for i in range(cfg.cnn_layers):
            noise = None
            if cnn_keys[i] is not None and cfg.noise_cnn > 0:
                noise = cfg.noise_cnn * jax.random.normal(cnn_keys[i], x.shape, jnp.float32)
            x, pre = InPixelCNN(cfg, first=(i == 0), name=f"cnn_{i}")(x, noise)
        p = CellParams(cfg, name="cell")()
        out = scan_cell(spec, p, x, cfg.context, cfg.K, cfg.noise_gate, cfg.noise_out, k_cell,
                        intermediates)
        if not intermediates:
            return out
        readout, inter = out
        batch_major = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
        return readout, {"input": batch_major(inputs), "cnn_pre": batch_major(pre),
                         "cnn_out": batch_major(x), **inter}
