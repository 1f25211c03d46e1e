"""The binary encoder on packed words (`packed`): input binarization, the in-pixel CNN and
the recurrent cell as bit logic, bit-exact with `Encoder` where `unsupported` returns None.

Windows of K frames are packed 32 to a word (bit l of a word: window l of a group of 32), so
the cell's state is one word plane per 32 windows and a step is word logic on planes.
Every gate's pre-activation is an integer sum of +-1 (or {0, 1}) products, counted
bit-sliced over the 50 taps of its two kernels and compared against the integer its float
scalar (theta, b_f, b_h, or 0) implies at each pixel (`packed.smallest_passing`). The
gates' arithmetic on +-1 bits (1 = +1):

| cell       | step                                                       | readout          |
|------------|------------------------------------------------------------|------------------|
| `pixelrnn` | h = XNOR(f, h)                                             | o = w_o*x + u_o*h |
| `srnn`     | h = gate(h)                                                | w_h*x + u_h*h    |
| `lstm`     | c = XNOR(f, c) OR XNOR(i, c~), h = XNOR(o, c)              | h after the step |
| `gru`      | h~ from XNOR(r, h); h = z ? h~ : h                         | h after the step |
| `mgu`      | h~ from XNOR(f, h); h = f ? h~ : h                         | h after the step |
| `genrnn11` | h = f ? h~ : h                                             | w_o*x + u_o*h    |
| `genrnn01` | h = f ? h~ : h, h in {0, 1} (counted with weight 1, x 2)   | w_o*x + u_o*h    |

Integer readouts are counted bit-sliced and unpacked once per window. The camera baselines
and 32-bit models stay on the float path.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pixelrnn_jax.core import ops, packed
from pixelrnn_jax.core.config import ModelConfig

__all__ = ["PACKED_CELLS", "unsupported", "encode_packed", "word_ops", "bit_ops_per_frame"]

Array = jax.Array

PACKED_CELLS = ("pixelrnn", "srnn", "lstm", "gru", "mgu", "genrnn11", "genrnn01")


def unsupported(config: ModelConfig, *, rng=None, intermediates: bool = False) -> str | None:
    """Why the packed encoder cannot reproduce `encode` for these arguments (None: it can)."""
    if config.sensor != "ideal":
        return f"sensor={config.sensor!r} runs that program's float forward pass"
    if not config.binary:
        return f"precision {config.precision!r} is not binary"
    if config.cell not in PACKED_CELLS:
        return f"cell {config.cell!r} has no bit-logic form (those: {', '.join(PACKED_CELLS)})"
    if rng is not None and config.noisy:
        return "the config draws noise (noise-aware setting) and a PRNG key was passed"
    if intermediates:
        return "intermediates are computed on the float path only"
    return None


class _Sum(NamedTuple):
    """An integer pre-activation sum of +-1 weights times one plane per kernel:
    gain * (bit-sliced count) + offset (H W)."""
    masks: list          # per kernel: (5 5) uint32 XOR masks
    exps: list           # per kernel: the weight 2**e of its product bits in the count
    gain: int
    offset: Array        # (H W) int32
    limit: int           # the largest count


def _sum(kernels: list, zero_one: list, shape) -> _Sum:
    """Kernels (latent, 5 5) applied to +-1 planes, or {0, 1} planes where `zero_one`."""
    gain = 1 if any(zero_one) else 2
    exps, offset = [], jnp.zeros(shape, jnp.int32)
    for k, zo in zip(kernels, zero_one):
        if zo:   # w h = (h XOR m) - [w = -1]
            exps.append(0)
            offset = offset - jnp.sum(k < 0, dtype=jnp.int32)
        else:    # sum of w x = 2 count - 25 + (weights on the padding)
            exps.append(0 if gain == 2 else 1)
            offset = offset - packed.TAPS + packed.pad_sum(k, shape)
    limit = sum(packed.TAPS << e for e in exps)
    return _Sum([packed.weight_masks(k) for k in kernels], exps, gain, offset, limit)


def _count(s: _Sum, planes: list, shape, nw: int) -> list:
    terms = []
    for masks, e, plane in zip(s.masks, s.exps, planes):
        terms += packed.conv_terms(plane, masks, e, shape, nw)
    return packed.count_bits(terms, s.limit)


def _gate_masks(s: _Sum, passes, nw: int) -> Array:
    """(bits H W*nw) comparator words: the count at which the float comparison first passes."""
    bound = packed.TAPS * len(s.masks)
    t = packed.smallest_passing(passes, -bound, bound)
    need = -((s.offset - t) // s.gain)          # ceil((t - offset) / gain)
    return jnp.repeat(packed.not_below_masks(need, (s.limit + 1).bit_length()), nw, axis=-1)


def _value(s: _Sum, bits: list, n: int, nw: int) -> Array:
    """The sum as float32 (H W n) from its bit words (H W*nw).

    Plane by plane under a loop: fused into the unpacking, which reads every word 32 times,
    the count would be recomputed for every bit."""
    hh = s.offset.shape[0]
    planes = jnp.stack([jnp.zeros_like(bits[0]) if b is None else b for b in bits])

    def add(total, inp):
        plane, e = inp
        value = packed.unpack(plane.reshape(hh, -1, nw), n).astype(jnp.int32)
        return total + (value << e), None

    total0 = jnp.zeros(s.offset.shape + (n,), jnp.int32)
    total, _ = jax.lax.scan(add, total0, (planes, jnp.arange(len(bits), dtype=jnp.int32)))
    return (s.gain * total + s.offset[..., None]).astype(jnp.float32)


def _pad(plane: Array, nw: int) -> Array:
    """Zero padding of planes (... H W*nw) by 2 pixels: (... H+4 (W+4)*nw)."""
    lead, (hh, wn) = plane.shape[:-2], plane.shape[-2:]
    pad = [(0, 0)] * len(lead) + [(ops.PAD, ops.PAD)] * 2 + [(0, 0)]
    plane = jnp.pad(plane.reshape(lead + (hh, wn // nw, nw)), pad)
    return plane.reshape(lead + (hh + 2 * ops.PAD, wn + 2 * ops.PAD * nw))


def _xnor(a, b):
    return ~(a ^ b)


def _select(g, a, b):
    """a where g, else b."""
    return (g & a) | (~g & b)


def _gate_scalar(cell: str, gate: str, p: dict):
    """The float path's comparison of a gate's integer sum v (float32)."""
    if cell == "pixelrnn":
        return lambda v: v - p["theta"] >= 0
    if cell.startswith("genrnn"):
        b = p["b_" + gate]
        return (lambda v: v + b > 0) if cell == "genrnn01" else (lambda v: v + b >= 0)
    return lambda v: v >= 0


_GATES = {   # a cell's gates g, each summing w_g * x + u_g * h
    "pixelrnn": ("f",), "srnn": ("h",), "lstm": ("f", "i", "o", "c"),
    "gru": ("z", "r", "h"), "mgu": ("f", "h"), "genrnn11": ("f", "h"), "genrnn01": ("f", "h"),
}
_READOUT = {"pixelrnn": "o", "srnn": "h", "genrnn11": "o", "genrnn01": "o"}


def _run_cell(cell: str, p: dict, x: Array, n: int) -> Array:
    """The cell over packed inputs x (k H W nw): the readout (H W n) float32.

    Planes are (H W*nw): a pixel's nw words side by side, so every tap is one contiguous
    slice of the padded plane."""
    k, hh, ww, nw = x.shape
    shape = (hh, ww)
    zo = cell == "genrnn01"
    sums = {g: _sum([p["w_" + g], p["u_" + g]], [False, zo], shape) for g in _GATES[cell]}
    masks = {g: _gate_masks(s, _gate_scalar(cell, g, p), nw) for g, s in sums.items()}
    xp = _pad(x.reshape(k, hh, ww * nw), nw)

    def gate(g, xt, hp):
        return packed.at_least(_count(sums[g], [xt, hp], shape, nw), list(masks[g]))

    def step(state, xt):
        if cell == "lstm":
            c, h = state
            hp = _pad(h, nw)
            f, i, o, cn = (gate(g, xt, hp) for g in ("f", "i", "o", "c"))
            c = _xnor(f, c) | _xnor(i, cn)
            return (c, _xnor(o, c)), None
        h = state
        hp = _pad(h, nw)
        if cell == "pixelrnn":
            return _xnor(gate("f", xt, hp), h), None
        if cell == "srnn":
            return gate("h", xt, hp), None
        if cell in ("gru", "mgu"):
            z = gate("z" if cell == "gru" else "f", xt, hp)
            scaled = _xnor(gate("r", xt, hp) if cell == "gru" else z, h)
            return _select(z, gate("h", xt, _pad(scaled, nw)), h), None
        return _select(gate("f", xt, hp), gate("h", xt, hp), h), None

    ones = jnp.full((hh, ww * nw), packed.ONES, jnp.uint32)
    state = (ones, ones) if cell == "lstm" else ones
    if cell in _READOUT:
        if k > 1:
            state, _ = jax.lax.scan(step, state, xp[:k - 1])
        g = _READOUT[cell]
        s = _sum([p["w_" + g], p["u_" + g]], [False, zo], shape)
        return _value(s, _count(s, [xp[k - 1], _pad(state, nw)], shape, nw), n, nw)
    # the readout frame's step inside the loop too: its output is then stored once, not
    # recomputed for every bit it is unpacked to
    state, _ = jax.lax.scan(step, state, xp)
    h = (state[1] if cell == "lstm" else state).reshape(hh, ww, nw)
    return 2.0 * packed.unpack(h, n).astype(jnp.float32) - 1.0


@partial(jax.jit, static_argnames=("config",))
def _encode(params: dict, video: Array, config: ModelConfig) -> Array:
    enc = params["encoder"]
    b, t = video.shape[:2]
    k = config.K
    nwin = t // k
    x = ops.max_pool(video.astype(jnp.float32), config.input_pool)
    hh, ww = x.shape[-2:]
    # windows folded into the batch as the scan encoder folds them (window i of video j is
    # n = i * b + j), packed along n
    nw = -(-nwin * b // packed.WORD)

    def frame(i, words):
        xi = jnp.concatenate([jax.lax.dynamic_index_in_dim(x, w * k + i, 1, keepdims=False)
                              for w in range(nwin)])                    # (nwin*b H W)
        return words.at[i].set(packed.pack(xi >= 0, 0))

    # frame by frame under a loop: fused into a transposing consumer, packing would gather
    # its 32 bits instead of loading them as vectors
    words = jax.lax.fori_loop(0, k, frame, jnp.zeros((k, nw, hh, ww), jnp.uint32))
    words = jnp.transpose(words, (0, 2, 3, 1))                          # (k H W nw)
    if config.cnn_layers:
        planes = jnp.transpose(words, (1, 2, 0, 3)).reshape(hh, ww, k * nw)
        for i in range(config.cnn_layers):
            layer = enc[f"cnn_{i}"]
            planes = packed.pooled_layer(planes, layer["kernel"], layer["threshold"])
        words = jnp.transpose(planes.reshape(hh, ww, k, nw), (2, 0, 1, 3))
    o = _run_cell(config.cell, enc["cell"], words, nwin * b)
    return jnp.transpose(o.reshape(hh, ww, nwin, b), (3, 2, 0, 1))


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _encode_no_grad(params: dict, video: Array, config: ModelConfig) -> Array:
    return _encode(params, video, config)


def _no_grad_fwd(params, video, config):
    return _encode(params, video, config), None


def _no_grad_bwd(config, res, g):
    # bit logic has no surrogate gradient: a silent zero would stall training
    raise ValueError("the packed encoder has no gradient; differentiate encode(..., "
                     "packed=False)")


_encode_no_grad.defvjp(_no_grad_fwd, _no_grad_bwd)


def encode_packed(params: dict, video: Array, config: ModelConfig) -> Array:
    """`encode` of a binary model on packed words: (b t H W) -> (b t/K h w), bit-exact.

    `params` holds the bare parameters ({'encoder': ..., 'decoder': ...}); raises a
    ValueError (one line) when `unsupported` gives a reason, and when differentiated.
    """
    reason = unsupported(config)
    if reason:
        raise ValueError(f"the packed encoder cannot run this model: {reason}")
    return _encode_no_grad(params, video, config)


_WORD_OPS = {"and", "or", "xor", "not", "shift_left", "shift_right_logical"}


def word_ops(jaxpr) -> int:
    """Bitwise word operations (and, or, xor, not, shifts on unsigned words: one per output
    element) a jaxpr executes, loops counted by their trip counts."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in _WORD_OPS:
            aval = eqn.outvars[0].aval
            if jnp.issubdtype(aval.dtype, jnp.unsignedinteger):
                total += int(aval.size)
            continue
        reps = eqn.params.get("length", 1) if name == "scan" else 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += reps * word_ops(inner)
    return total


def bit_ops_per_frame(params: dict, video_shape: tuple, config: ModelConfig) -> float:
    """The bit operations (word operations x 32) `encode_packed` spends per input frame on a
    batch of `video_shape` (b t H W), counted in its traced program (`word_ops`)."""
    video = jax.ShapeDtypeStruct(tuple(video_shape), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda p, v: _encode(p, v, config))(params, video)
    return word_ops(jaxpr.jaxpr) * packed.WORD / (video_shape[0] * video_shape[1])
