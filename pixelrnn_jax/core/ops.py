"""Array kernels shared by the in-pixel layers, the recurrent cells and the sensor model.

Shapes: `n` any leading batch, `h w` a plane, `c` the 16 CNN channels.

The in-pixel CNN is the hot spot of training and inference. Instead of a generic
convolution followed by max-pooling, `pooled_conv` computes the 16 sub-planes of each 4x4
pooling window directly from the polyphase components of the padded input: every term is a
static slice, the whole layer is one fused elementwise loop, and only the pooled maps and the
first arg-max of each window are written. With +-1 inputs and weights the sums are small
integers and run exactly in int16. Its custom VJP sends gradient only to the arg-max position
of each window, the one that carries it (PyTorch's max-pool convention: first maximum in
row-major order).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["KERNEL", "PAD", "POOL", "conv5x5", "conv5x5_stack", "conv2d", "pooled_conv",
           "tile", "untile", "max_pool", "map_frames", "unchunk", "shifted", "window_values",
           "argmax_kernel_grad", "sums_over_leading"]

Array = jax.Array

KERNEL = 5
PAD = KERNEL // 2
POOL = 4


def _shift_add(x: Array, w: Array) -> Array:
    h, wd = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(PAD, PAD), (PAD, PAD)]
    xp = jnp.pad(x, pad)
    out = None
    for dy in range(KERNEL):
        for dx in range(KERNEL):
            term = xp[..., dy:dy + h, dx:dx + wd] * w[dy, dx]
            out = term if out is None else out + term
    return out


@jax.custom_vjp
def conv5x5(x: Array, w: Array) -> Array:
    """Cross-correlation of planes `x` (... h w) with one 5x5 kernel `w` (5 5), zero padding 2.

    The semantics of PyTorch's `conv2d(x, w, padding=2)` for one input and one output plane,
    written as 25 shifted multiply-adds, which XLA fuses into one loop. The VJP is written
    out the same way (the input gradient is the correlation with the flipped kernel, the
    kernel gradient 25 shifted inner products) instead of autodiff's 25 pad-and-add planes.
    """
    return _shift_add(x, w)


def _chunk_size(m: int, most: int = 16) -> int:
    """Planes per chunk for m planes: the largest divisor of m up to `most` that leaves at
    least two chunks (one for m = 1). The `lax.map` over them is a loop boundary: XLA writes
    its operands and results once instead of fusing their producers and consumers into the
    25 taps (benchmarks/NOTES.md)."""
    return max(d for d in range(1, max(1, min(most, m // 2)) + 1) if m % d == 0)


def _shift_add_chunked(x: Array, w: Array) -> Array:
    """`_shift_add` over chunks of planes (`_chunk_size`, `map_frames`). The forward pass
    under differentiation only: in a gated cell's scan XLA otherwise fused the next gate's
    product and the zero padding of its input into the convolution (MGU's scan gradient
    135 -> 99 ms, GRU 168 -> 135, PixelRNN 53 -> 50); inference keeps the fused form, which
    the loop slowed (PixelRNN's scan forward 5 -> 12 ms)."""
    x2 = x.reshape((-1,) + x.shape[-2:])
    out = map_frames(lambda xc: _shift_add(xc, w), x2, chunk=_chunk_size(x2.shape[0]))
    return unchunk(out).reshape(x.shape)


def _conv5x5_fwd(x, w):
    return _shift_add_chunked(x, w), (x, w)


def sums_over_leading(terms: tuple[Array, ...]) -> Array:
    """Each of `terms` (equal shapes, ... w) summed over every axis but the last: (len w).

    One variadic reduction (`lax.reduce` over a tuple): XLA computes every term of an element
    in one pass over the data, where separate reductions read it once per term and reduce
    over the leading axes column by column (the 25 kernel-gradient sums of a chunk of 32
    planes: 1.0-1.2 -> 0.4 ms; of 512 planes: 12 -> 6 ms, benchmarks/NOTES.md)."""
    zeros = tuple(jnp.zeros((), t.dtype) for t in terms)
    sums = jax.lax.reduce(terms, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)),
                          tuple(range(terms[0].ndim - 1)))
    return jnp.stack(sums)


def _kernel_grad(x: Array, g: Array) -> Array:
    """d conv5x5 / d w: the 25 shifted inner products of x and g, (5 5).

    In chunks of at most 16 planes under `lax.map` (the chunk stays in cache), each chunk's
    25 products as one variadic reduction over planes and rows (`sums_over_leading`), the
    columns summed last. At least two chunks, even for the 32 planes of a scan step: the
    loop's boundary makes XLA write g once, where a single reduction fused g's producer (in
    the gated cells, the other gate's 25-tap input gradient) into each of its 25 operands
    (MGU's scan gradient 160 -> 138 ms, benchmarks/NOTES.md).
    """
    h, wd = x.shape[-2:]
    x2, g2 = x.reshape(-1, h, wd), g.reshape(-1, h, wd)
    pad = ((0, 0), (PAD, PAD), (PAD, PAD))

    def chunk(xc, gc):
        xp = jnp.pad(xc, pad)
        return sums_over_leading(tuple(gc * xp[:, dy:dy + h, dx:dx + wd]
                                       for dy in range(KERNEL) for dx in range(KERNEL))).sum(-1)

    parts = map_frames(chunk, x2, g2, chunk=_chunk_size(x2.shape[0]))
    return parts.sum(0).reshape(KERNEL, KERNEL)


def _conv5x5_bwd(res, g):
    x, w = res
    dx = _shift_add(g, w[::-1, ::-1])
    return dx, _kernel_grad(x, g).astype(w.dtype)


conv5x5.defvjp(_conv5x5_fwd, _conv5x5_bwd)


def conv2d(x: Array, w: Array, padding: tuple[int, int] = (PAD, PAD), stride: int = 1) -> Array:
    """Cross-correlation (n c_in h w) x (c_out c_in kh kw) -> (n c_out h' w') by `lax.conv`,
    zero padding (before, after) on both axes (PyTorch's conv2d for symmetric padding).

    The form for many kernels or channels at once (the gated cells' stacked kernels, the
    Table 1 encoders); HIGHEST precision keeps 32-bit sums out of TF32 on accelerators.
    """
    return jax.lax.conv_general_dilated(x, w, (stride, stride), (padding, padding),
                                        precision=jax.lax.Precision.HIGHEST)


def conv5x5_stack(x: Array, ws: Array) -> Array:
    """Cross-correlation of planes x (... h w) with c 5x5 kernels ws (c 5 5) at once:
    (... c h w), `conv5x5`'s semantics (zero padding 2), one `conv2d` with c outputs."""
    lead = x.shape[:-2]
    y = conv2d(x.reshape((-1, 1) + x.shape[-2:]), ws[:, None])
    return y.reshape(lead + y.shape[1:])


def tile(maps: Array) -> Array:
    """(... 16 h w) -> (... 4h 4w): channel c at row-block c % 4, column-block c // 4.

    The layout in which the sensor leaves its 16 pooled maps (paper Fig. 4).
    """
    *lead, c, h, w = maps.shape
    if c != 16:
        raise ValueError(f"tile expects 16 channels, got {c}")
    m = maps.reshape(*lead, 4, 4, h, w)  # (cb = c // 4, rb = c % 4, i, j)
    nl = len(lead)
    m = jnp.moveaxis(m, (nl, nl + 1, nl + 2, nl + 3), (nl + 2, nl, nl + 1, nl + 3))
    return m.reshape(*lead, 4 * h, 4 * w)


def untile(plane: Array) -> Array:
    """Inverse of `tile`: (... 4h 4w) -> (... 16 h w)."""
    *lead, hh, ww = plane.shape
    h, w = hh // 4, ww // 4
    m = plane.reshape(*lead, 4, h, 4, w)  # (rb, i, cb, j)
    nl = len(lead)
    m = jnp.moveaxis(m, (nl + 2, nl, nl + 1, nl + 3), (nl, nl + 1, nl + 2, nl + 3))
    return m.reshape(*lead, 16, h, w)


def max_pool(x: Array, p: int) -> Array:
    """Non-overlapping p x p max-pooling of planes (... h w) by reshape + max (floor)."""
    if p == 1:
        return x
    *lead, h, w = x.shape
    hh, ww = h // p, w // p
    x = x[..., :hh * p, :ww * p].reshape(*lead, hh, p, ww, p)
    return x.max(axis=(-3, -1))


def _phases(x: Array) -> Array:
    """(n h w) -> (n 4 4 h/4+1 w/4+1): ph[:, p, q, i, j] = pad(x, 2)[:, 4i + p, 4j + q]."""
    n, h, w = x.shape
    xp = jnp.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD)))
    return xp.reshape(n, h // 4 + 1, 4, w // 4 + 1, 4).transpose(0, 2, 4, 1, 3)


def shifted(ph: Array, s: int, t: int, h: int, w: int) -> Array:
    """pad(x)[:, 4i + s, 4j + t] for i < h, j < w (s, t < 8), a static slice of the phases."""
    return ph[:, s % 4, t % 4, s // 4:s // 4 + h, t // 4:t // 4 + w]


def _tiled_weights(w: Array) -> Array:
    """(c 5 5) -> (4 4 5 5) indexed [rb, cb]: channel c = 4 cb + rb (the `tile` layout)."""
    return w.reshape(4, 4, KERNEL, KERNEL).transpose(1, 0, 2, 3)


def window_values(ph: Array, wt: Array, a: int, b: int, h: int, wd: int) -> Array:
    """Conv output at positions (4i + a, 4j + b) for the channels of wt (r c 5 5), indexed
    [rb, cb]: (n r h c w), tiled."""
    acc = None
    for dy in range(KERNEL):
        for dx in range(KERNEL):
            xs = shifted(ph, a + dy, b + dx, h, wd)[:, None, :, None, :]
            term = xs * wt[None, :, None, :, None, dy, dx]
            acc = term if acc is None else acc + term
    return acc


CHUNK = 32  # frames per `lax.map` iteration of the pooled conv


def map_frames(fn, *arrays, chunk: int | None = None):
    """fn over chunks of at most CHUNK frames (leading axis of every array leaf) under
    `lax.map`; `chunk` frames per chunk instead where given (it must divide the frames).

    Returns fn's outputs stacked over chunks, (chunks, ...): `unchunk` restores per-frame
    outputs, `.sum(0)` reduces per-chunk ones. The loop boundary makes XLA materialize each
    chunk's result once. Without it, XLA fuses the 400-term convolution into every consumer
    of its output (the stacked output, the saved residuals, the tiled reshape) and recomputes
    it in each: measured 4x the work.
    """
    n = jax.tree.leaves(arrays)[0].shape[0]
    c = chunk or max(d for d in range(1, CHUNK + 1) if n % d == 0)
    split = jax.tree.map(lambda a: a.reshape((n // c, c) + a.shape[1:]), arrays)
    return jax.lax.map(lambda a: fn(*a), split)


def unchunk(tree):
    return jax.tree.map(lambda o: o.reshape((-1,) + o.shape[2:]), tree)


def _window_max(x: Array, w: Array, exact: bool, with_arg: bool):
    """Max over each 4x4 window of the 16 convolutions (before relu), tiled, and optionally
    the first arg-max (4a + b for window offset (a, b)), int8."""
    n, hh, ww = x.shape
    h, wd = hh // POOL, ww // POOL
    dtype = jnp.int16 if exact else jnp.float32
    ph = _phases(x.astype(dtype))
    wt = _tiled_weights(w.astype(dtype))
    best = arg = None
    for a in range(POOL):
        for b in range(POOL):
            v = window_values(ph, wt, a, b, h, wd)
            if best is None:
                best = v
                arg = jnp.zeros(v.shape, jnp.int16) if with_arg else None
            else:
                if with_arg:
                    arg = jnp.where(v > best, jnp.int16(POOL * a + b), arg)
                best = jnp.maximum(best, v)
    return best, arg


def _pooled_code(x: Array, w: Array, exact: bool) -> Array:
    """One array per chunk: exact mode packs window max and arg-max as 16 * max + arg (int16,
    exact while |max| <= 2047, i.e. for +-1 or small-integer inputs and weights), so the
    forward is computed once; float mode returns (max, arg)."""
    best, arg = _window_max(x, w, exact, True)
    if exact:
        return best * 16 + arg
    return best, arg.astype(jnp.int8)


def _decode(code, exact: bool):
    """-> (window max float32, arg-max int8) from `_pooled_code`'s output."""
    if exact:
        return (code >> 4).astype(jnp.float32), (code & 15).astype(jnp.int8)
    return code


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def pooled_conv(x: Array, w: Array, exact: bool = False, input_grad: bool = True) -> Array:
    """max over each 4x4 window of relu(conv(x, w_c)) for 16 kernels at once, tiled.

    x: (n h w) planes, h and w multiples of 4.  w: (16 5 5) kernels (already quantized).
    Returns (n 4 h/4 4 w/4) float32 indexed [n, rb, i, cb, j] for channel c = 4 cb + rb,
    so `.reshape(n, h, w)` is the sensor's tiled plane (`tile` of the (n c h/4 w/4) maps)
    without a transpose: the 16 maps are computed directly in that layout.
    `exact=True` computes in int16, exact for +-1 (or small integer) inputs and weights.
    `input_grad=False` skips the gradient to `x` (first layer: its input is data).
    Inference computes only the maxima; training also the arg-max, packed with the maximum.
    """
    best = unchunk(map_frames(lambda xc: _window_max(xc, w, exact, False)[0], x))
    return jnp.maximum(best, 0).astype(jnp.float32)


def _pooled_conv_fwd(x, w, exact, input_grad):
    code = unchunk(map_frames(lambda xc: _pooled_code(xc, w, exact), x))
    best, _ = _decode(code, exact)
    xs = x.astype(jnp.int8) if exact else x
    return jnp.maximum(best, 0.0), (xs, w, code)


def argmax_kernel_grad(ph: Array, g: Array, arg: Array, h: int, wd: int) -> Array:
    """The gradient of pooled maxima to their kernels (r c 5 5), indexed [rb, cb]: each
    window's gradient g (n r h c w) times the input patch at its arg-max (4a + b), from the
    input's phases ph (`shifted`)."""
    dwt = []
    for dy in range(KERNEL):
        for dx in range(KERNEL):
            patch = jnp.zeros(g.shape, ph.dtype)
            for a in range(POOL):
                for b in range(POOL):
                    xsab = shifted(ph, a + dy, b + dx, h, wd)[:, None, :, None, :]
                    patch = jnp.where(arg == POOL * a + b, xsab, patch)
            dwt.append(jnp.einsum("nrics,nrics->rc", g, patch.astype(jnp.float32)))
    return jnp.stack(dwt, -1).reshape(g.shape[1], g.shape[3], KERNEL, KERNEL)


def _input_grad_taps() -> np.ndarray:
    """(16 25 64) 0/1: window offset o = 4a + b and kernel tap k = 5 dy + dx reach the
    padded input at (4i + a + dy, 4j + b + dx), key 8 (a + dy) + (b + dx) of the 8 x 8
    positions a window's patches cover."""
    taps = np.zeros((POOL * POOL, KERNEL * KERNEL, 64), np.float32)
    for a in range(POOL):
        for b in range(POOL):
            for dy in range(KERNEL):
                for dx in range(KERNEL):
                    taps[POOL * a + b, KERNEL * dy + dx, 8 * (a + dy) + b + dx] = 1.0
    return taps


# The input gradient of the pooled conv as one product: sum over channels and offsets of
# each window's one-hot arg-max gradient times the kernel's taps, placed on the 64 keys.
# Measured per chunk of 32 frames: 3.4 ms, against 9.3 ms for 16 products and 400 shifted
# accumulations.
_INPUT_GRAD_TAPS = _input_grad_taps()


def _pooled_conv_bwd_chunk(xs, w, best, arg, g, input_grad):
    """Gradients of one chunk of frames: dx (or None) and dw (16 5 5)."""
    n, hh, ww = xs.shape
    h, wd = hh // POOL, ww // POOL
    # relu: no gradient where the window's maximum was <= 0
    g = jnp.where(best > 0, g, 0.0)
    # (rb, cb, 5, 5) -> (c = 4 cb + rb, 5, 5)
    dw = argmax_kernel_grad(_phases(xs), g, arg, h, wd).transpose(1, 0, 2, 3).reshape(
        16, KERNEL, KERNEL)
    if not input_grad:
        return dw
    # gradient to the input: each window's gradient through its arg-max patch, as ONE
    # matrix product per chunk (`_INPUT_GRAD_TAPS`), then 4 shifted adds into the phases
    one_hot = jnp.where(arg[..., None] == jnp.arange(POOL * POOL, dtype=arg.dtype),
                        g[..., None], 0.0)                                   # (n r i c s o)
    wt = _tiled_weights(w.astype(jnp.float32)).reshape(4, 4, KERNEL * KERNEL)
    weights = jnp.einsum("rck,okq->rcoq", wt, _INPUT_GRAD_TAPS)              # (r c 16 64)
    acc = jnp.einsum("nricso,rcoq->nisq", one_hot, weights,                # (n i s 64)
                     precision=jax.lax.Precision.HIGHEST)
    acc = acc.reshape(n, h, wd, 2, POOL, 2, POOL)     # key 8 s + t, s = 4 oy + p, t = 4 ox + q
    dxp = jnp.zeros((n, h + 1, POOL, wd + 1, POOL), jnp.float32)
    for oy in range(2):
        for ox in range(2):
            part = acc[:, :, :, oy, :, ox, :].transpose(0, 1, 3, 2, 4)       # (n i p j q)
            dxp = dxp.at[:, oy:oy + h, :, ox:ox + wd, :].add(part)
    dxp = dxp.reshape(n, hh + 2 * PAD, ww + 2 * PAD)
    return dxp[:, PAD:PAD + hh, PAD:PAD + ww], dw


def _pooled_conv_bwd(exact, input_grad, res, g):
    xs, w, code = res

    def chunk(xc, cc, gc):
        best, arg = _decode(cc, exact)
        return _pooled_conv_bwd_chunk(xc, w, best, arg, gc, input_grad)

    out = map_frames(chunk, xs, code, g)
    if input_grad:
        dx, dw = unchunk(out[0]), out[1].sum(0)
    else:
        dx, dw = jnp.zeros(xs.shape, jnp.float32), out.sum(0)
    return dx, dw.astype(w.dtype)


pooled_conv.defvjp(_pooled_conv_fwd, _pooled_conv_bwd)
