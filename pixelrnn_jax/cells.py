"""Recurrent cells of the on-sensor encoder and their registry.

A cell is described by a `CellSpec`: the names of its 5x5 kernels and learned scalars, what
the accounting needs (state planes, output plane), and three pure functions the scan encoder
calls:

  input_terms(p, x, cfg)            all input-only terms for every frame, one batched op
                                     outside the scan (e.g. w_f * x_t);  x: (t n h w),
                                     time-major: the scan walks the leading axis
  step(p, state, terms_t, noise_t, cfg) -> state      one frame, inside `lax.scan`
  output(p, state, terms_t, noise_t, cfg) -> o         the readout at the last frame of a
                                     window, from the state entering that frame

`p` holds the *quantized* kernels (binary cells see +-1 kernels) and the raw scalars.
Shapes: `n` batch (times windows), `t` frames, `h w` the plane.

Cells of supplement S1.1.3, all without biases (the sensor cannot add them) except genRNN's
two gate offsets, which Table S4 counts. Kernels named `w_*` act on the input x_t (the CNN
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

The camera baselines (RAW, difference and event camera) are registered from
`pixelrnn_jax.baselines`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from pixelrnn_jax import ops
from pixelrnn_jax.quantizers import heaviside, sign

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CellSpec:
    name: str
    kernels: tuple[str, ...]
    scalars: tuple[str, ...]
    input_terms: Callable[..., dict]
    step: Callable[..., Any]
    output: Callable[..., Array]
    init_state: Callable[..., Any]
    precisions: tuple[str, ...] = ("1bit", "32bit")
    uses_cnn: bool = True
    # accounting (supplement Table S4): see pixelrnn_jax.accounting for the convention
    state_planes: int = 1
    separate_output: bool = False
    counted_scalars: int = 0
    # which noise sites the cell quantizes (keys of the noise dict passed to step/output)
    gate_sites: tuple[str, ...] = ()
    description: str = ""
    # camera baselines (pixelrnn_jax.baselines):
    # read out at every frame instead of once per K-frame window; encode gives (b t h w)
    per_frame: bool = False
    # decoder scores every frame on its own; a video's logits are the mean over its frames
    frame_decoder: bool = False
    # every frame is a sample: loss and accuracy over frames (RAW, supplement S1.1.1)
    frame_accuracy: bool = False
    # binary configs binarize the input intensities; a camera keeps them
    binarize_input: bool = True
    # bits per stored feature value when not the precision's (RAW pixels: see accounting.py)
    value_bits: int | None = None


CELLS: dict[str, CellSpec] = {}


def register(spec: CellSpec) -> CellSpec:
    CELLS[spec.name] = spec
    return spec


def get_cell_spec(name: str) -> CellSpec:
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}: choose one of {sorted(CELLS)}") from None


def ones_state(p, shape, cfg):
    """Hidden state reset to all ones (supplement S1.2, 'Hidden State Initialization')."""
    del p, cfg
    return jnp.ones(shape, jnp.float32)


def _noisy(x: Array, noise_t: dict | None, site: str) -> Array:
    if noise_t is None or site not in noise_t:
        return x
    return x + noise_t[site]


# --------------------------------------------------------------------------------------
# PixelRNN (paper Eq. 2-4, supplement Eq. S25-S27)
#   f_t = psi_f(w_f * x_t + u_f * h_{t-1} - theta)
#   h_t = f_t (.) h_{t-1}
#   o_t = psi_o(w_o * x_t + u_o * h_{t-1}),  psi_o = identity
# Binary: psi_f = sign (tanh surrogate), h in {-1, +1}. 32 bit: psi_f = sigmoid, h real.
# --------------------------------------------------------------------------------------


def _pixelrnn_terms(p, x, cfg):
    return {"f": ops.conv5x5(x, p["w_f"]), "o": ops.conv5x5(x, p["w_o"])}


def _pixelrnn_step(p, h, terms_t, noise_t, cfg):
    pre = _noisy(terms_t["f"] + ops.conv5x5(h, p["u_f"]) - p["theta"], noise_t, "f")
    f = sign(pre, cfg.m) if cfg.binary else jax.nn.sigmoid(pre)
    return f * h


def _pixelrnn_output(p, h, terms_t, noise_t, cfg):
    return _noisy(terms_t["o"] + ops.conv5x5(h, p["u_o"]), noise_t, "o")


PIXELRNN = register(CellSpec(
    name="pixelrnn",
    kernels=("w_f", "u_f", "w_o", "u_o"),
    scalars=("theta",),
    input_terms=_pixelrnn_terms,
    step=_pixelrnn_step,
    output=_pixelrnn_output,
    init_state=ones_state,
    state_planes=1,
    separate_output=True,
    counted_scalars=0,
    gate_sites=("f",),
    description="PixelRNN: f = psi(w_f*x + u_f*h - theta), h = f.h, o = w_o*x + u_o*h",
))


# --------------------------------------------------------------------------------------
# Shared pieces of the baseline RNN cells
# --------------------------------------------------------------------------------------


def _conv5x5_stack(x: Array, ws: Array) -> Array:
    """Cross-correlation of planes x (... h w) with c kernels ws (c 5 5) at once: (... c h w).

    `ops.conv5x5`'s semantics (zero padding 2) as one `lax.conv` with c output channels, so a
    cell's convolutions of one plane go together. On XLA:CPU the gradient of a GRU or LSTM
    scan built this way compiles several times faster than one built from `ops.conv5x5`'s
    25-shift form, which runs faster once compiled; the baselines take the short compile, as
    an ablation compiles some thirty models. HIGHEST precision keeps 32-bit sums out of TF32.
    """
    lead = x.shape[:-2]
    y = jax.lax.conv_general_dilated(
        x.reshape((-1, 1) + x.shape[-2:]), ws[:, None], (1, 1),
        ((ops.PAD, ops.PAD), (ops.PAD, ops.PAD)), precision=jax.lax.Precision.HIGHEST)
    return y.reshape(lead + y.shape[1:])


def _convs(p, x, names):
    """{name: p[name] * x} for kernels `names` applied to the same planes x."""
    y = _conv5x5_stack(x, jnp.stack([p[n] for n in names]))
    return {n: y[..., i, :, :] for i, n in enumerate(names)}


def _input_terms(p, x, cfg):
    """w * x_t for every input kernel `w_*` of the cell, all frames at once."""
    del cfg
    return _convs(p, x, sorted(n for n in p if n.startswith("w_")))


def _gate(pre, cfg):
    """Gate nonlinearity: sigmoid at 32 bit, sign in the binary (-1, 1) regime."""
    return sign(pre, cfg.m) if cfg.binary else jax.nn.sigmoid(pre)


def _tanh(pre, cfg):
    """Candidate nonlinearity: tanh at 32 bit, sign in the binary (-1, 1) regime."""
    return sign(pre, cfg.m) if cfg.binary else jnp.tanh(pre)


def _interpolate(g, h, h_new, cfg):
    """(1 - g) h + g h~ (S16, S19, S22); binarized with sign in the binary (-1, 1) regime."""
    h = (1.0 - g) * h + g * h_new
    return sign(h, cfg.m) if cfg.binary else h


def _pres(p, terms_t, h, names, noise_t, sites=None, scalars=None):
    """[w_g * x_t + u_g * h (+ scalar) for g in names], one stacked convolution of h, each
    with the noise of its site (default: the gate's name)."""
    uh = _convs(p, h, ["u_" + g for g in names])
    sites = sites or names
    scalars = scalars or [None] * len(names)
    out = []
    for g, site, scalar in zip(names, sites, scalars):
        pre = terms_t["w_" + g] + uh["u_" + g]
        if scalar is not None:
            pre = pre + p[scalar]
        out.append(_noisy(pre, noise_t, site))
    return out


def _readout_after_step(step):
    """Readout of cells that send their hidden state h_t after the readout frame."""
    def output(p, state, terms_t, noise_t, cfg):
        new = step(p, state, terms_t, noise_t, cfg)
        h = new[1] if isinstance(new, tuple) else new
        return _noisy(h, noise_t, "o")
    return output


# --------------------------------------------------------------------------------------
# SRNN (S4-S6): h~_t = w_h * x_t + u_h * h_{t-1};  h_t = psi_h(h~_t);  o_t = h~_t
# The readout is the pre-activation plane, which becomes h_t in place: no extra plane.
# --------------------------------------------------------------------------------------


def _srnn_step(p, h, terms_t, noise_t, cfg):
    return _tanh(*_pres(p, terms_t, h, ["h"], noise_t), cfg)


def _srnn_output(p, h, terms_t, noise_t, cfg):
    return _noisy(terms_t["w_h"] + _convs(p, h, ["u_h"])["u_h"], noise_t, "o")


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
    description="SRNN: h~ = w_h*x + u_h*h, h = psi(h~), o = h~",
))


# --------------------------------------------------------------------------------------
# Convolutional LSTM (S7-S12), state (c, h), h read out:
#   f, i, o, c~ = psi(w * x_t + u * h_{t-1}),  c_t = f c_{t-1} + i c~,  h_t = o sigma(c_t)
# 32 bit: every psi and the squashing of c_t are sigmoids, as the supplement writes them.
# Binary: every psi is sign, c_t is binarized, and h_t = o sign(c_t).
# The output gate o_t is a plane of its own (held while c_t is formed), hence
# separate_output; its noise site is "og" ("o" is the readout's).
# --------------------------------------------------------------------------------------


def _lstm_step(p, state, terms_t, noise_t, cfg):
    c, h = state
    f, i, og, c_new = (_gate(pre, cfg) for pre in _pres(
        p, terms_t, h, ["f", "i", "o", "c"], noise_t, sites=["f", "i", "og", "c"]))
    c = f * c + i * c_new
    if cfg.binary:
        c = sign(c, cfg.m)
        return c, og * c
    return c, og * jax.nn.sigmoid(c)


def _pair_ones_state(p, shape, cfg):
    return ones_state(p, shape, cfg), ones_state(p, shape, cfg)


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
    description="ConvLSTM: c = f.c + i.c~, h = o.sigma(c); h read out",
))


# --------------------------------------------------------------------------------------
# Convolutional GRU (S13-S16), h read out. The update gate reads h through u_z.
#   z = psi(w_z * x + u_z * h),  r = psi(w_r * x + u_r * h)
#   h~ = psi_h(w_h * x + u_h * (r h)),  h_t = (1 - z) h + z h~
# --------------------------------------------------------------------------------------


def _gru_step(p, h, terms_t, noise_t, cfg):
    z, r = (_gate(pre, cfg) for pre in _pres(p, terms_t, h, ["z", "r"], noise_t))
    h_new = _tanh(*_pres(p, terms_t, r * h, ["h"], noise_t), cfg)
    return _interpolate(z, h, h_new, cfg)


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
    description="ConvGRU: h = (1-z).h + z.h~, h~ = psi(w_h*x + u_h*(r.h)); h read out",
))


# --------------------------------------------------------------------------------------
# Convolutional MGU (S17-S19), h read out:
#   f = psi(w_f * x + u_f * h),  h~ = psi_h(w_h * x + u_h * (f h)),  h_t = (1 - f) h + f h~
# --------------------------------------------------------------------------------------


def _mgu_step(p, h, terms_t, noise_t, cfg):
    f = _gate(*_pres(p, terms_t, h, ["f"], noise_t), cfg)
    h_new = _tanh(*_pres(p, terms_t, f * h, ["h"], noise_t), cfg)
    return _interpolate(f, h, h_new, cfg)


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
    description="ConvMGU: h = (1-f).h + f.h~, h~ = psi(w_h*x + u_h*(f.h)); h read out",
))


# --------------------------------------------------------------------------------------
# genRNN (S20-S23), in the (0, 1) and the (-1, 1) binarization regimes:
#   f = psi_f(w_f * x + u_f * h + b_f),  h~ = psi_h(w_h * x + u_h * h + b_h)
#   h_t = (1 - f) h + f h~,              o_t = w_o * x + u_o * h_{t-1}  (psi_o = identity)
# 32 bit: psi_f = psi_h = sigmoid (S23's note). The two offsets b_f, b_h are the only
# biases Table S4 counts (553 = 401 + 6 x 25 + 2).
# --------------------------------------------------------------------------------------


def _make_genrnn_step(regime: str):
    def step(p, h, terms_t, noise_t, cfg):
        pre_f, pre_h = _pres(p, terms_t, h, ["f", "h"], noise_t, scalars=["b_f", "b_h"])
        if cfg.binary and regime == "01":
            # gates and state in {0, 1}: the interpolation is an exact selection
            f, h_new = heaviside(pre_f, cfg.m), heaviside(pre_h, cfg.m)
            return (1.0 - f) * h + f * h_new
        if cfg.binary:
            return _interpolate(sign(pre_f, cfg.m), h, sign(pre_h, cfg.m), cfg)
        return _interpolate(jax.nn.sigmoid(pre_f), h, jax.nn.sigmoid(pre_h), cfg)
    return step


def _genrnn_output(p, h, terms_t, noise_t, cfg):
    return _noisy(terms_t["w_o"] + _convs(p, h, ["u_o"])["u_o"], noise_t, "o")


for _regime in ("01", "11"):
    register(CellSpec(
        name=f"genrnn{_regime}",
        kernels=("w_f", "u_f", "w_h", "u_h", "w_o", "u_o"),
        scalars=("b_f", "b_h"),
        input_terms=_input_terms,
        step=_make_genrnn_step(_regime),
        output=_genrnn_output,
        init_state=ones_state,
        state_planes=1,
        separate_output=True,
        counted_scalars=2,
        gate_sites=("f", "h"),
        description=(f"genRNN, binary regime {'(0, 1)' if _regime == '01' else '(-1, 1)'}: "
                     "h = (1-f).h + f.h~, o = w_o*x + u_o*h"),
    ))
del _regime


from pixelrnn_jax import baselines  # noqa: E402,F401  registers the camera baselines
