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
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from pixelrnn_jax import ops
from pixelrnn_jax.quantizers import sign

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
    # camera baselines override the derived plane count and scale (see accounting.py)
    feature_planes: int | None = None
    memory_scale: float = 1.0


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
