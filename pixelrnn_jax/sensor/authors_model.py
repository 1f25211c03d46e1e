"""The authors' binary PixelRNN as this library's model, and back: their weights as model
variables (`to_variables`), a trained binary model as their weights (`from_variables`), their
off-sensor decoder, and the per-frame intermediates of their reference samples.

    w = authors_files.load_weights("cam_noise_iw10.txt")
    variables = to_variables(w, ModelConfig(num_classes=9))
    o = pixelrnn_jax.encode(variables, video, config)        # the authors' encoder
    steps = intermediates(variables, binarized, config)      # cnn_out, hidden, forget, o
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ModelConfig, encode, unwrap_params
from pixelrnn_jax.core.encoder import effective_threshold
from pixelrnn_jax.core.quantizers import numpy_sign
from pixelrnn_jax.sensor.authors_files import (
    CELL_KERNELS,
    OfficialWeights,
    load_weights_text,
    validate,
)

__all__ = ["check_binary_pixelrnn", "to_variables", "from_variables", "official_decode",
           "intermediates", "write_intermediates"]


# ----------------------------------------------------------------------------------------
# this library's parameters
# ----------------------------------------------------------------------------------------


def check_binary_pixelrnn(config: ModelConfig, cnn_layers: int) -> None:
    """The authors' files hold a binary PixelRNN of 1 or 2 CNN layers: one line if not."""
    if config.cell != "pixelrnn" or not config.binary:
        raise ValueError(f"the authors' weights are a binary PixelRNN: use cell='pixelrnn', "
                         f"precision='1bit' (got cell={config.cell!r}, "
                         f"precision={config.precision!r})")
    if config.cnn_layers != cnn_layers:
        raise ValueError(f"the weights have {cnn_layers} CNN layer(s) but config.cnn_layers="
                         f"{config.cnn_layers}; set cnn_layers={cnn_layers}")


def to_variables(weights: OfficialWeights, config: ModelConfig) -> dict:
    """The authors' encoder as this library's variables: latent kernels set to their +-1
    values, CNN thresholds thresh1 (/ thresh2), cell theta = rnn_threshold.

    The decoder's dense layer is zero: the authors' decoder (1x1 conv, affine, tanh, minus
    thresh3, linear) is not a single linear layer; apply it with `official_decode`.
    """
    validate(weights)
    check_binary_pixelrnn(config, weights.cnn_layers)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    enc = {"cnn_0": {"kernel": f32(weights.conv1), "threshold": f32(weights.thresh1)}}
    if weights.conv2 is not None:
        enc["cnn_1"] = {"kernel": f32(weights.conv2), "threshold": f32(weights.thresh2)}
    enc["cell"] = {k: f32(getattr(weights, k)) for k in CELL_KERNELS}
    enc["cell"]["theta"] = f32(weights.rnn_threshold)
    side = config.plane_size
    dec = {"dense": {"kernel": jnp.zeros((side * side, config.num_classes), jnp.float32),
                     "bias": jnp.zeros((config.num_classes,), jnp.float32)}}
    return {"params": {"encoder": enc, "decoder": dec}}


def _binary(latent) -> np.ndarray:
    return numpy_sign(latent).astype(np.float64)


def from_variables(variables) -> OfficialWeights:
    """The deployed binary encoder of a trained binary PixelRNN (latent kernels -> sign, with
    sign(0) = +1), ready for `save_weights_text` / `save_header`. Thresholds are the float32
    values of the variables (the authors' files hold float32 values, so they round-trip).
    Decoder fields are None."""
    params = unwrap_params(variables)
    try:
        enc = params["encoder"]
        cell = enc["cell"]
        cnn0 = enc["cnn_0"]
    except KeyError as e:
        raise ValueError(f"variables lack {e.args[0]!r}: expected a binary PixelRNN with one or "
                         f"two CNN layers (params/encoder/cnn_0, params/encoder/cell)") from None
    missing = [k for k in (*CELL_KERNELS, "theta") if k not in cell]
    if missing:
        raise ValueError(f"variables' cell lacks {missing}: expected the 'pixelrnn' cell")
    fields = {"conv1": _binary(cnn0["kernel"]),
              "thresh1": float(effective_threshold(np.asarray(cnn0["threshold"]), True))}
    if "cnn_1" in enc:
        fields["conv2"] = _binary(enc["cnn_1"]["kernel"])
        fields["thresh2"] = float(effective_threshold(np.asarray(enc["cnn_1"]["threshold"]),
                                                      True))
    for k in CELL_KERNELS:
        fields[k] = _binary(cell[k])
    fields["rnn_threshold"] = float(cell["theta"])
    return OfficialWeights(**fields)


def official_decode(weights: OfficialWeights, readout) -> np.ndarray:
    """The authors' off-sensor decoder on readouts (b ... 64 64) -> logits (b classes):
    sign(fin_conv) * o, affine, tanh, minus thresh3, flatten, linear."""
    needed = ("fin_conv_weight", "fin_convpost_weight", "fin_convpost_bias", "fc_weight",
              "fc_bias", "thresh3")
    missing = [n for n in needed if getattr(weights, n) is None]
    if missing:
        raise ValueError(f"the weights carry no complete decoder (missing {missing})")
    r = np.asarray(readout, np.float64)
    z = r * np.sign(weights.fin_conv_weight.reshape(-1)[0])
    z = z * weights.fin_convpost_weight.reshape(-1)[0] + weights.fin_convpost_bias.reshape(-1)[0]
    z = np.tanh(z) - weights.thresh3
    z = z.reshape(z.shape[0], -1)
    if z.shape[1] != weights.fc_weight.shape[1]:
        raise ValueError(f"readout has {z.shape[1]} values per video, the decoder expects "
                         f"{weights.fc_weight.shape[1]}")
    return z @ weights.fc_weight.T + weights.fc_bias


# ----------------------------------------------------------------------------------------
# per-step intermediates
# ----------------------------------------------------------------------------------------


def intermediates(variables, binarized, config: ModelConfig) -> dict[str, np.ndarray]:
    """Noise-free per-frame activations of a binary PixelRNN, for comparison with the authors'
    reference samples: the encoder's own scan with intermediates (`encode(...,
    intermediates=True)`).

    binarized: (b t h w) bool, True where the input pixel is +1.  Returns NumPy arrays
      cnn_out (b t h w) bool   the tiled CNN output (True = +1)
      cnn_pre (b t h w) f32    the last CNN layer's pooled value minus its threshold, tiled
      hidden  (b t h w) bool   h_{t-1} entering step t (all +1 at every window start)
      forget  (b t h w) bool   f_t (True = +1)
      f_pre   (b t h w) f32    w_f*x_t + u_f*h_{t-1} - theta
      o       (b t h w) f32    o_t = w_o*x_t + u_o*h_{t-1} at every step
    """
    b = np.asarray(binarized)
    if b.ndim != 4 or b.dtype != np.bool_:
        raise ValueError(f"binarized must be a (videos, frames, height, width) bool array, got "
                         f"{b.dtype} {b.shape}")
    side = config.frame_size
    if b.shape[-2:] != (side, side) or config.input_pool != 1:
        raise ValueError(f"binarized frames must be {side}x{side} with input_pool=1, got "
                         f"{b.shape[-2]}x{b.shape[-1]} (input_pool={config.input_pool})")
    if b.shape[1] % config.K:
        raise ValueError(f"binarized has {b.shape[1]} frames, not a multiple of K={config.K}")
    check_binary_pixelrnn(config, config.cnn_layers)
    # the encoder binarizes intensities with sign(x), sign(0) = +1: feed +1 / -1; one video
    # at a time, so a single compiled shape serves every batch size
    canonical = ModelConfig(cnn_layers=config.cnn_layers, m=config.m, K=config.K,
                            frame_size=config.frame_size)
    outs = []
    for video in np.where(b, np.float32(1.0), np.float32(-1.0)):
        _, inter = encode(variables, video[None], canonical, intermediates=True)
        h = np.asarray(inter["state"][0]) > 0
        f_pre = np.asarray(inter["pre"]["f"][0])
        outs.append({"cnn_out": np.asarray(inter["cnn_out"][0]) > 0,
                     "cnn_pre": np.asarray(inter["cnn_pre"][0]), "hidden": h,
                     "forget": f_pre >= 0, "f_pre": f_pre, "o": np.asarray(inter["o"][0])})
    return {k: np.stack([o[k] for o in outs]) for k in outs[0]}


def write_intermediates(weights_path, inputs_path, out_path, K: int = 16) -> dict:
    """`intermediates` of the authors' weight file on the `binarized` frames of an .npz,
    written to `out_path` in the layout of their reference samples (cnn_out, hidden, forget,
    o; plus labels / names when the inputs have them). Returns what it wrote."""
    weights = load_weights_text(weights_path)
    path = Path(inputs_path)
    if not path.is_file():
        raise FileNotFoundError(f"inputs not found: {path}")
    with np.load(path) as data:
        if "binarized" not in data.files:
            raise ValueError(f"{path} has no array 'binarized' (found {data.files}); expected "
                             f"(N, T, 64, 64) bool frames")
        binarized = data["binarized"]
        extras = {k: data[k] for k in ("labels", "names") if k in data.files}
    classes = 0 if weights.fc_bias is None else len(weights.fc_bias)
    config = ModelConfig(cnn_layers=weights.cnn_layers, K=K, num_classes=max(2, classes))
    steps = intermediates(to_variables(weights, config), binarized, config)
    result = {"cnn_out": steps["cnn_out"], "hidden": steps["hidden"],
              "forget": steps["forget"], "o": steps["o"].astype(np.float32), **extras}
    np.savez_compressed(out_path, **result)
    return result
