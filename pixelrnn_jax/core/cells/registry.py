"""The registry of recurrent cells and camera baselines, and what a cell is.

A cell is a `CellSpec`: the names of its 5x5 kernels and learned scalars, what the accounting
needs (state planes, output plane), and four pure functions the scan encoder calls:

  input_terms(p, x, ctx) -> dict       all input-only terms for every frame, one batched op
                                       outside the scan (e.g. w_f * x_t); x: (t n h w)
  step(p, state, terms_t, noise_t, ctx) -> (state, pre)
                                       one frame, inside `lax.scan`; `pre` holds the
                                       pre-activation of every gate quantizer, keyed by its
                                       noise site (exactly `gate_sites`, a test checks it)
  output(p, state, terms_t, noise_t, ctx) -> o
                                       the readout at the last frame of a window, from the
                                       state entering that frame
  output_terms(p, x_t, ctx) -> dict    (optional) the input-only terms only `output` reads
                                       (w_o * x_t), computed at the readout frame alone:
                                       among `input_terms`, K - 1 of every K frames would
                                       be computed for nothing, and under differentiation
                                       XLA cannot cut them out of the conv's loop (9 % of
                                       PixelRNN's scan gradient, benchmarks/NOTES.md)
  init_state(p, shape, ctx, first) -> state
                                       the state at the start of every window; `first`:
                                       the window's first frame's input terms

`p` holds the *quantized* kernels (binary cells see +-1 kernels) and the raw scalars;
`noise_t` is None or {site: noise plane} for the gate sites and the readout site "o";
`ctx` is the `CellContext`: all a cell reads of the model config.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["CellSpec", "CellContext", "CELLS", "register", "get_cell_spec", "ones_state",
           "with_noise", "READOUT_SITE"]

Array = jax.Array

READOUT_SITE = "o"


class CellContext(NamedTuple):
    """The settings a cell's equations depend on (static under `jit`)."""

    m: float          # surrogate steepness of the quantizers
    binary: bool      # 1-bit (sign / heaviside gates) or 32-bit (sigmoid / tanh)
    delta: float      # camera baselines' event threshold
    camera_reference: str = "first_frame"   # cameras' reference at a window's start


@dataclasses.dataclass(frozen=True)
class CellSpec:
    name: str
    kernels: tuple[str, ...]
    scalars: tuple[str, ...]
    input_terms: Callable[..., dict]
    step: Callable[..., Any]
    output: Callable[..., Array]
    init_state: Callable[..., Any]
    output_terms: Callable[..., dict] | None = None
    precisions: tuple[str, ...] = ("1bit", "32bit")
    uses_cnn: bool = True
    # accounting (supplement Table S4): see pixelrnn_jax.core.accounting for the convention
    state_planes: int = 1
    separate_output: bool = False
    counted_scalars: int = 0
    # the gate quantizers' noise sites: the keys of the `pre` dict `step` returns
    gate_sites: tuple[str, ...] = ()
    # camera baselines (cells.cameras):
    # read out at every frame instead of once per K-frame window; encode gives (b t h w)
    per_frame: bool = False
    # decoder scores every frame on its own; a video's logits are the mean over its frames
    frame_decoder: bool = False
    # every frame is a sample: loss and accuracy over frames (RAW, supplement S1.1.1)
    frame_accuracy: bool = False
    # binary configs binarize the input intensities; a camera keeps them
    binarize_input: bool = True
    # bits per stored feature value when not the precision's (RAW pixels: see accounting)
    value_bits: int | None = None

    def frame_terms(self, p, x, ctx) -> dict:
        """Every input-only term of frames x, the readout's included (for a readout at
        every frame)."""
        terms = self.input_terms(p, x, ctx)
        if self.output_terms is not None:
            terms = {**terms, **self.output_terms(p, x, ctx)}
        return terms

    @property
    def noise_sites(self) -> tuple[str, ...]:
        """Every site a cell adds noise at: its gates and the readout."""
        return self.gate_sites + (READOUT_SITE,)


CELLS: dict[str, CellSpec] = {}


def register(spec: CellSpec) -> CellSpec:
    if spec.name in CELLS:
        raise ValueError(f"cell {spec.name!r} is registered twice")
    if READOUT_SITE in spec.gate_sites:
        raise ValueError(f"cell {spec.name!r}: {READOUT_SITE!r} is the readout's noise site")
    CELLS[spec.name] = spec
    return spec


def get_cell_spec(name: str) -> CellSpec:
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}: choose one of {sorted(CELLS)}") from None


def ones_state(p, shape, ctx, first=None):
    """Hidden state reset to all ones (supplement S1.2, 'Hidden State Initialization')."""
    del p, ctx, first
    return jnp.ones(shape, jnp.float32)


def with_noise(x: Array, noise_t: dict | None, site: str) -> Array:
    """x plus the noise of `site`, when the step draws any there."""
    if noise_t is None or site not in noise_t:
        return x
    return x + noise_t[site]
