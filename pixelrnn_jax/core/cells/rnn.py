"""The recurrent cells of supplement S1.1.3 (the protocol a cell follows: `registry`), all
without biases (the sensor cannot add them) except genRNN's two gate offsets, which Table S4
counts. Kernels named `w_*` act on the input x_t (the CNN
output), `u_*` on the hidden state.

| name       | equations      | 32 bit psi            | binary psi                   | readout |
|------------|----------------|-----------------------|------------------------------|---------|
| `srnn`     | S4-S6          | tanh                  | sign                         | h~_t    |
| `lstm`     | S7-S12         | sigmoid (all, as S12) | sign; c_t, h_t binarized     | h_t     |
| `gru`      | S13-S16        | sigmoid z, r; tanh h~ | sign; h_t binarized          | h_t     |
| `mgu`      | S17-S19        | sigmoid f; tanh h~    | sign; h_t binarized          | h_t     |
| `genrnn11` | S20-S23        | sigmoid f, h~         | sign, h in {-1, 1}           | o_t     |
| `genrnn01` | S20-S23        | sigmoid f, h~         | heaviside, h in {0, 1}       | o_t     |
| `pixelrnn` | S25-S27        | sigmoid f             | sign                         | o_t     |

"sign" is `quantizers.sign` (gradient of tanh(m x)), "heaviside" `quantizers.heaviside`
(gradient of sigmoid(m x)): the (-1, 1) and (0, 1) binarization regimes of supplement S1.2.
In the (-1, 1) regime a state update (1 - g) h + g h~ with g in {-1, 1} is binarized with
sign, which selects h~ where g = 1 and keeps h where g = -1. The regimes differ only when
binary, so `genrnn01` and `genrnn11` are the same model at 32 bit (as in Table S4). The
kernels stay +-1 in both regimes; the (0, 1) regime quantizes the gates and the state.
Every hidden state (LSTM: c and h) starts at all ones and is reset every K frames. `o_t`
readouts use h_{t-1}; `h_t` readouts are the state after the readout frame.

The camera baselines (RAW, difference and event camera) are in `cameras`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pixelrnn_jax.core import ops
from pixelrnn_jax.core.cells.registry import CellSpec, ones_state, register, with_noise
from pixelrnn_jax.core.quantizers import heaviside, sign

__all__ = ["PIXELRNN", "SRNN", "LSTM", "GRU", "MGU", "GENRNN01", "GENRNN11"]



# --------------------------------------------------------------------------------------
# PixelRNN (paper Eq. 2-4, supplement Eq. S25-S27)
#   f_t = psi_f(w_f * x_t + u_f * h_{t-1} - theta)
#   h_t = f_t (.) h_{t-1}
#   o_t = psi_o(w_o * x_t + u_o * h_{t-1}),  psi_o = identity
# Binary: psi_f = sign (tanh surrogate), h in {-1, +1}. 32 bit: psi_f = sigmoid, h real.
# --------------------------------------------------------------------------------------


def _pixelrnn_terms(p, x, ctx):
    return {"f": ops.conv5x5(x, p["w_f"])}


def _pixelrnn_output_terms(p, x, ctx):
    return {"o": ops.conv5x5(x, p["w_o"])}


def _pixelrnn_step(p, h, terms_t, noise_t, ctx):
    pre = with_noise(terms_t["f"] + ops.conv5x5(h, p["u_f"]) - p["theta"], noise_t, "f")
    f = sign(pre, ctx.m) if ctx.binary else jax.nn.sigmoid(pre)
    return f * h, {"f": pre}


def _pixelrnn_output(p, h, terms_t, noise_t, ctx):
    return with_noise(terms_t["o"] + ops.conv5x5(h, p["u_o"]), noise_t, "o")


PIXELRNN = register(CellSpec(
    name="pixelrnn",
    kernels=("w_f", "u_f", "w_o", "u_o"),
    scalars=("theta",),
    input_terms=_pixelrnn_terms,
    step=_pixelrnn_step,
    output=_pixelrnn_output,
    init_state=ones_state,
    output_terms=_pixelrnn_output_terms,
    state_planes=1,
    separate_output=True,
    counted_scalars=0,
    gate_sites=("f",),
))


# --------------------------------------------------------------------------------------
# Shared pieces of the baseline RNN cells
# --------------------------------------------------------------------------------------


def _convs(p, x, names):
    """{name: p[name] * x} for kernels `names` applied to the same planes x, each through
    the fused 25-shift kernel with its hand-written VJP (`ops.conv5x5`), as PixelRNN's: on
    XLA:CPU 2-4x faster per train step than one `lax.conv` with the kernels stacked, and 5-8x
    faster than one 25-tap loop over all kernels at once (measured; it compiles faster)."""
    return {n: ops.conv5x5(x, p[n]) for n in names}


def _input_terms(p, x, ctx):
    """w * x_t for every input kernel `w_*` of the cell, all frames at once."""
    del ctx
    return _convs(p, x, sorted(n for n in p if n.startswith("w_")))


def _input_terms_but_readout(p, x, ctx):
    """`_input_terms` of every kernel but the readout's w_o (`_readout_input_term`)."""
    del ctx
    return _convs(p, x, sorted(n for n in p if n.startswith("w_") and n != "w_o"))


def _readout_input_term(p, x, ctx):
    """w_o * x_t, at the readout frame only (`CellSpec.output_terms`)."""
    del ctx
    return _convs(p, x, ["w_o"])


def _gate(pre, ctx):
    """Gate nonlinearity: sigmoid at 32 bit, sign in the binary (-1, 1) regime."""
    return sign(pre, ctx.m) if ctx.binary else jax.nn.sigmoid(pre)


def _tanh(pre, ctx):
    """Candidate nonlinearity: tanh at 32 bit, sign in the binary (-1, 1) regime."""
    return sign(pre, ctx.m) if ctx.binary else jnp.tanh(pre)


def _interpolate(g, h, h_new, ctx):
    """(1 - g) h + g h~ (S16, S19, S22); binarized with sign in the binary (-1, 1) regime."""
    h = (1.0 - g) * h + g * h_new
    return sign(h, ctx.m) if ctx.binary else h


def _pres(p, terms_t, h, gates, noise_t, sites=None, scalars=None) -> dict:
    """{site: w_g * x_t + u_g * h (+ scalar)} for the gates g, one stacked convolution of h,
    each with the noise of its site (default: the gate's name)."""
    uh = _convs(p, h, ["u_" + g for g in gates])
    sites = sites or gates
    scalars = scalars or [None] * len(gates)
    out = {}
    for g, site, scalar in zip(gates, sites, scalars):
        pre = terms_t["w_" + g] + uh["u_" + g]
        if scalar is not None:
            pre = pre + p[scalar]
        out[site] = with_noise(pre, noise_t, site)
    return out


def _readout_after_step(step):
    """Readout of cells that send their hidden state h_t after the readout frame."""
    def output(p, state, terms_t, noise_t, ctx):
        new, _ = step(p, state, terms_t, noise_t, ctx)
        h = new[1] if isinstance(new, tuple) else new
        return with_noise(h, noise_t, "o")
    return output


# --------------------------------------------------------------------------------------
# SRNN (S4-S6): h~_t = w_h * x_t + u_h * h_{t-1};  h_t = psi_h(h~_t);  o_t = h~_t
# The readout is the pre-activation plane, which becomes h_t in place: no extra plane.
# --------------------------------------------------------------------------------------


def _srnn_step(p, h, terms_t, noise_t, ctx):
    pre = _pres(p, terms_t, h, ["h"], noise_t)
    return _tanh(pre["h"], ctx), pre


def _srnn_output(p, h, terms_t, noise_t, ctx):
    return with_noise(terms_t["w_h"] + _convs(p, h, ["u_h"])["u_h"], noise_t, "o")


SRNN = register(CellSpec(
    name="srnn",
    kernels=("w_h", "u_h"),
    scalars=(),
    input_terms=_input_terms,
    step=_srnn_step,
    output=_srnn_output,
    init_state=ones_state,
    state_planes=1,
    separate_output=False,
    gate_sites=("h",),
))


# --------------------------------------------------------------------------------------
# Convolutional LSTM (S7-S12), state (c, h), h read out:
#   f, i, o, c~ = psi(w * x_t + u * h_{t-1}),  c_t = f c_{t-1} + i c~,  h_t = o sigma(c_t)
# 32 bit: every psi and the squashing of c_t are sigmoids, as the supplement writes them.
# Binary: every psi is sign, c_t is binarized, and h_t = o sign(c_t).
# The output gate o_t is a plane of its own (held while c_t is formed), hence
# separate_output; its noise site is "og" ("o" is the readout's).
# --------------------------------------------------------------------------------------


def _lstm_step(p, state, terms_t, noise_t, ctx):
    c, h = state
    pre = _pres(p, terms_t, h, ["f", "i", "o", "c"], noise_t, sites=["f", "i", "og", "c"])
    f, i, og, c_new = (_gate(pre[s], ctx) for s in ("f", "i", "og", "c"))
    c = f * c + i * c_new
    if ctx.binary:
        c = sign(c, ctx.m)
        return (c, og * c), pre
    return (c, og * jax.nn.sigmoid(c)), pre


def _pair_ones_state(p, shape, ctx, first=None):
    return ones_state(p, shape, ctx), ones_state(p, shape, ctx)


LSTM = register(CellSpec(
    name="lstm",
    kernels=("w_f", "u_f", "w_i", "u_i", "w_o", "u_o", "w_c", "u_c"),
    scalars=(),
    input_terms=_input_terms,
    step=_lstm_step,
    output=_readout_after_step(_lstm_step),
    init_state=_pair_ones_state,
    state_planes=2,
    separate_output=True,
    gate_sites=("f", "i", "og", "c"),
))


# --------------------------------------------------------------------------------------
# Convolutional GRU (S13-S16), h read out. The update gate reads h through u_z.
#   z = psi(w_z * x + u_z * h),  r = psi(w_r * x + u_r * h)
#   h~ = psi_h(w_h * x + u_h * (r h)),  h_t = (1 - z) h + z h~
# --------------------------------------------------------------------------------------


def _gru_step(p, h, terms_t, noise_t, ctx):
    pre = _pres(p, terms_t, h, ["z", "r"], noise_t)
    z, r = _gate(pre["z"], ctx), _gate(pre["r"], ctx)
    pre.update(_pres(p, terms_t, r * h, ["h"], noise_t))
    return _interpolate(z, h, _tanh(pre["h"], ctx), ctx), pre


GRU = register(CellSpec(
    name="gru",
    kernels=("w_z", "u_z", "w_r", "u_r", "w_h", "u_h"),
    scalars=(),
    input_terms=_input_terms,
    step=_gru_step,
    output=_readout_after_step(_gru_step),
    init_state=ones_state,
    state_planes=1,
    separate_output=False,
    gate_sites=("z", "r", "h"),
))


# --------------------------------------------------------------------------------------
# Convolutional MGU (S17-S19), h read out:
#   f = psi(w_f * x + u_f * h),  h~ = psi_h(w_h * x + u_h * (f h)),  h_t = (1 - f) h + f h~
# --------------------------------------------------------------------------------------


def _mgu_step(p, h, terms_t, noise_t, ctx):
    pre = _pres(p, terms_t, h, ["f"], noise_t)
    f = _gate(pre["f"], ctx)
    pre.update(_pres(p, terms_t, f * h, ["h"], noise_t))
    return _interpolate(f, h, _tanh(pre["h"], ctx), ctx), pre


MGU = register(CellSpec(
    name="mgu",
    kernels=("w_f", "u_f", "w_h", "u_h"),
    scalars=(),
    input_terms=_input_terms,
    step=_mgu_step,
    output=_readout_after_step(_mgu_step),
    init_state=ones_state,
    state_planes=1,
    separate_output=False,
    gate_sites=("f", "h"),
))


# --------------------------------------------------------------------------------------
# genRNN (S20-S23), in the (0, 1) and the (-1, 1) binarization regimes:
#   f = psi_f(w_f * x + u_f * h + b_f),  h~ = psi_h(w_h * x + u_h * h + b_h)
#   h_t = (1 - f) h + f h~,              o_t = w_o * x + u_o * h_{t-1}  (psi_o = identity)
# 32 bit: psi_f = psi_h = sigmoid (S23's note). The two offsets b_f, b_h are the only
# biases Table S4 counts (553 = 401 + 6 x 25 + 2).
# --------------------------------------------------------------------------------------


def _make_genrnn_step(regime: str):
    def step(p, h, terms_t, noise_t, ctx):
        pre = _pres(p, terms_t, h, ["f", "h"], noise_t, scalars=["b_f", "b_h"])
        if ctx.binary and regime == "01":
            # gates and state in {0, 1}: the interpolation is an exact selection
            f, h_new = heaviside(pre["f"], ctx.m), heaviside(pre["h"], ctx.m)
            return (1.0 - f) * h + f * h_new, pre
        if ctx.binary:
            return _interpolate(sign(pre["f"], ctx.m), h, sign(pre["h"], ctx.m), ctx), pre
        return _interpolate(jax.nn.sigmoid(pre["f"]), h, jax.nn.sigmoid(pre["h"]), ctx), pre
    return step


def _genrnn_output(p, h, terms_t, noise_t, ctx):
    return with_noise(terms_t["w_o"] + _convs(p, h, ["u_o"])["u_o"], noise_t, "o")


def _genrnn(regime: str) -> CellSpec:
    return register(CellSpec(
        name=f"genrnn{regime}",
        kernels=("w_f", "u_f", "w_h", "u_h", "w_o", "u_o"),
        scalars=("b_f", "b_h"),
        input_terms=_input_terms_but_readout,
        output_terms=_readout_input_term,
        step=_make_genrnn_step(regime),
        output=_genrnn_output,
        init_state=ones_state,
        state_planes=1,
        separate_output=True,
        counted_scalars=2,
        gate_sites=("f", "h"),
    ))


GENRNN01 = _genrnn("01")
GENRNN11 = _genrnn("11")
