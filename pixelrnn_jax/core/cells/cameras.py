"""Camera baselines of supplement S1.1: RAW, difference camera, synchronous event camera.

They are cells of the same registry and run through the same scan encoder as the RNNs, with
three differences a `CellSpec` states: they have no in-pixel CNN (`uses_cnn=False`), they
read out at every frame (`per_frame`), and they see the intensities themselves, not their
signs (`binarize_input=False`). None has a learned on-sensor parameter; the off-sensor
decoder is the same fully connected layer as for the RNNs.

| name         | on the sensor (per frame t)                    | precision | decoder            |
|--------------|------------------------------------------------|-----------|--------------------|
| `raw`        | o_t = x_t (S1)                                 | 32 bit    | each frame alone   |
| `difference` | o_t = psi_o(x_t - h_{t-1}), h_t = x_t (S2-S3)  | 1 bit     | all frames at once |
| `event`      | S28-S30 (below)                                | 1 bit     | each frame, mean   |

psi_o is the ternary quantizer with threshold `config.delta` (`quantizers.ternary`:
-1 below -delta, 0 within, +1 above). Decoders (`PixelRNNModel.frame_logits`):

* RAW: the decoder classifies every 256x256 frame on its own; S1.1.1 scores RAW by the
  fraction of frames classified correctly (`frame_accuracy`: train and score it on
  `frame_logits`, every frame labelled with its video's class). `classify` gives the mean of
  the frame logits, a video-level score.
* difference camera: the supplement does not say; here the decoder reads all 16 ternary
  frames at once (N = 16 x 64 x 64 inputs, S1.1's "N = the elements of the output"), as the
  RNN decoders read all their windows.
* event camera: S1.1.4 averages the scores over the 16 frames; the decoder scores every
  frame and `classify` returns the mean of the frame logits.

Event camera (S28-S30), the genRNN with no CNN, w_f = w_h = w_o = 1, u_f = u_o = -1,
u_h = 0 and psi_h the identity:

    f_t = [|x_t - h_{t-1}| > delta],   h_t = f_t x_t + (1 - f_t) h_{t-1},
    o_t = psi_o(x_t - h_{t-1}).

u_h = 0 makes the candidate h~_t = x_t, so h_t is the intensity at each pixel's last event.
(Eq. S29 as printed has f_t (x_t - h_{t-1}) in place of f_t x_t, which would need u_h = -1
and contradicts the stated weights; the weights are followed here.)

Both cameras start every K-frame window with their reference h at the window's first frame
(h_{-1} = x_0, `ModelConfig.camera_reference="first_frame"`, as a physical event sensor: frame
0 emits nothing), or with camera_reference="zero" at 0, the mean of normalized intensities,
so that the first frame reports each pixel's polarity about the mean (a static image of the
first frame, which these temporal-only cameras would otherwise not see). The camera planes
count in the accounting as a state (h) and an output (o); the event camera's f_t is consumed
where it is formed. RAW holds one plane, its frame.
"""
from __future__ import annotations

import jax.numpy as jnp

from pixelrnn_jax.core.cells.registry import CellSpec, register, with_noise
from pixelrnn_jax.core.quantizers import heaviside, ternary

__all__ = ["RAW", "DIFFERENCE", "EVENT"]


def reference_state(p, shape, ctx, first=None):
    """The camera's reference intensity at the start of each window: the first frame itself
    (`camera_reference="first_frame"`, a physical event sensor's reference is the scene it
    starts on, so frame 0 emits nothing) or 0, the mean of normalized intensities."""
    del p
    if ctx.camera_reference == "first_frame" and first is not None:
        return first["x"]
    return jnp.zeros(shape, jnp.float32)


def _intensity_terms(p, x, ctx):
    del p, ctx
    return {"x": x}


def _events(h, terms_t, noise_t, ctx):
    return ternary(with_noise(terms_t["x"] - h, noise_t, "o"), ctx.m, ctx.delta)


# RAW (S1): the frame itself; no state.

def _raw_state(p, shape, ctx, first=None):
    del p, shape, ctx, first
    return ()


def _raw_step(p, state, terms_t, noise_t, ctx):
    return state, {}


def _raw_output(p, state, terms_t, noise_t, ctx):
    return with_noise(terms_t["x"], noise_t, "o")


RAW = register(CellSpec(
    name="raw",
    kernels=(),
    scalars=(),
    input_terms=_intensity_terms,
    step=_raw_step,
    output=_raw_output,
    init_state=_raw_state,
    precisions=("32bit",),
    uses_cnn=False,
    state_planes=0,
    separate_output=True,
    per_frame=True,
    frame_decoder=True,
    frame_accuracy=True,
    binarize_input=False,
    # Table S4 lists RAW at 1.50 bytes per pixel: one plane of 12-bit pixel values.
    value_bits=12,
))


# Difference camera (S2-S3): h_t = x_t, o_t = psi_o(x_t - h_{t-1}).

def _difference_step(p, h, terms_t, noise_t, ctx):
    return terms_t["x"], {}


def _difference_output(p, h, terms_t, noise_t, ctx):
    return _events(h, terms_t, noise_t, ctx)


DIFFERENCE = register(CellSpec(
    name="difference",
    kernels=(),
    scalars=(),
    input_terms=_intensity_terms,
    step=_difference_step,
    output=_difference_output,
    init_state=reference_state,
    precisions=("1bit",),
    uses_cnn=False,
    state_planes=1,
    separate_output=True,
    per_frame=True,
    frame_decoder=False,
    binarize_input=False,
))


# Synchronous event camera (S28-S30).

def _event_step(p, h, terms_t, noise_t, ctx):
    x = terms_t["x"]
    f = heaviside(jnp.abs(x - h) - ctx.delta, ctx.m)
    return f * x + (1.0 - f) * h, {}


def _event_output(p, h, terms_t, noise_t, ctx):
    return _events(h, terms_t, noise_t, ctx)


EVENT = register(CellSpec(
    name="event",
    kernels=(),
    scalars=(),
    input_terms=_intensity_terms,
    step=_event_step,
    output=_event_output,
    init_state=reference_state,
    precisions=("1bit",),
    uses_cnn=False,
    state_planes=1,
    separate_output=True,
    per_frame=True,
    frame_decoder=True,
    binarize_input=False,
))
