"""The whole model (on-sensor encoder + off-sensor decoder) and the library entry points.

    variables = pixelrnn_jax.init(jax.random.key(0), config)
    readout = pixelrnn_jax.encode(variables, video, config)     # (b, t/K, 64, 64)
    logits = pixelrnn_jax.classify(variables, video, config)    # (b, classes)

Camera baselines read out every frame, (b, t, h, w). Those whose decoder scores each frame
alone (RAW, event camera) also give `frame_logits` (b, t, classes); their `classify` is the
mean of the frame logits over the frames.

`video` holds normalized intensities (ImageNet-normalized grayscale; the binary encoder
binarizes with sign(x), sign(0) = +1), shaped (b t H W) or (t H W) for a single video.
All three are pure functions of (variables, inputs, rng), work under `jit` and `vmap`,
and run on CPU, GPU and TPU.
"""
from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import packed_encoder
from pixelrnn_jax.core.config import ModelConfig
from pixelrnn_jax.core.encoder import Encoder

__all__ = ["Decoder", "PixelRNNModel", "check_video", "as_variables", "unwrap_params", "init",
           "encode", "classify", "frame_logits", "decode"]

Array = jax.Array


class Decoder(nn.Module):
    """Off-sensor decoder: one full-precision fully connected layer, readout -> classes.

    With `decoder="plain"` the layer sees the readout as it is (the paper's decoder). With
    "standardized" (the default) the readout of each video is standardized (zero mean, unit
    variance over its values) before the layer, which makes the decoder indifferent to the
    sensor's gain and offset, and the layer acts on x / sqrt(D) (D readout values) so an Adam
    step moves the logits by about the learning rate whatever the readout size.

    Cells with `frame_decoder` (RAW, event camera) apply the layer to every readout frame on
    its own, standardized per frame: (b t h w) -> (b t classes); their video logits are the
    mean over the frames.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, readout: Array, per_frame: bool = False) -> Array:
        frames = self.config.spec.frame_decoder
        if per_frame and not frames:
            raise ValueError(_no_frame_logits(self.config))
        lead = readout.shape[:2] if frames else readout.shape[:1]
        flat = readout.reshape(lead + (-1,)).astype(jnp.float32)
        if self.config.decoder == "plain":
            # the paper's layer; PyTorch's nn.Linear initialisation U(+-1/sqrt(D))
            init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
        else:
            flat = (flat - flat.mean(-1, keepdims=True)) * jax.lax.rsqrt(
                flat.var(-1, keepdims=True) + 1e-6)
            flat = flat / np.sqrt(flat.shape[-1])
            init = nn.initializers.normal(1.0)
        logits = nn.Dense(self.config.num_classes, name="dense", kernel_init=init)(flat)
        return logits.mean(axis=1) if frames and not per_frame else logits


def _no_frame_logits(config: ModelConfig) -> str:
    return (f"cell {config.cell!r} is decoded from all its readouts at once and has no "
            f"per-frame logits; use classify (frame logits exist for the camera baselines "
            f"'raw' and 'event')")


class PixelRNNModel(nn.Module):
    config: ModelConfig

    def setup(self):
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    def __call__(self, video: Array, rng: Array | None = None) -> Array:
        return self.decoder(self.encoder(video, rng))

    def encode(self, video: Array, rng: Array | None = None, intermediates: bool = False):
        return self.encoder(video, rng, intermediates)

    def decode(self, readout: Array) -> Array:
        return self.decoder(readout)

    def frame_logits(self, video: Array, rng: Array | None = None) -> Array:
        return self.decoder(self.encoder(video, rng), per_frame=True)


def check_video(video, config: ModelConfig, name: str = "video") -> None:
    """Raises a ValueError naming what is wrong with a video batch before JAX sees it."""
    shape = getattr(video, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array of normalized intensities, got "
                        f"{type(video).__name__}")
    if len(shape) not in (3, 4):
        raise ValueError(f"{name} must be (batch, frames, height, width) or (frames, height, "
                         f"width); got rank {len(shape)} with shape {tuple(shape)}")
    dtype = np.dtype(video.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{name} must hold float normalized intensities, got dtype {dtype}; "
                         f"convert uint8 frames with pixelrnn_jax.data.normalize_frames")
    side = config.frame_size
    if tuple(shape[-2:]) != (side, side):
        raise ValueError(f"{name} frames must be {side}x{side} (config.frame_size), got "
                         f"{shape[-2]}x{shape[-1]}; resize them or set frame_size")
    t = shape[-3]
    if t < config.K or t % config.K:
        raise ValueError(f"{name} has {t} frames, which is not a positive multiple of "
                         f"K={config.K}; pass a multiple of K frames or change K")
    if not isinstance(video, jax.core.Tracer):
        if not bool(np.isfinite(np.asarray(video)).all()):
            raise ValueError(f"{name} contains NaN or infinite values; clean the input frames")


def as_variables(params) -> dict:
    """{'params': ...} from model variables or the bare parameter tree."""
    if isinstance(params, dict) and "params" in params:
        return params
    return {"params": params}


def unwrap_params(variables) -> dict:
    """The bare parameter tree from model variables {'params': ...} or the tree itself."""
    return as_variables(variables)["params"]


def init(rng: Array, config: ModelConfig, num_frames: int | None = None) -> dict:
    """Initial variables {'params': ...} of the model for `num_frames` frames (default K)."""
    t = config.K if num_frames is None else num_frames
    video = jnp.zeros((1, t, config.frame_size, config.frame_size), jnp.float32)
    check_video(video, config)
    return _init_jit(rng, video, config)


@partial(jax.jit, static_argnames=("config",))
def _init_jit(rng, video, config):
    return PixelRNNModel(config).init(rng, video)


def _batched(video):
    return (video[None], True) if video.ndim == 3 else (video, False)


@partial(jax.jit, static_argnames=("config", "intermediates"))
def _encode_jit(variables, video, config, rng, intermediates=False):
    return PixelRNNModel(config).apply(variables, video, rng, intermediates,
                                       method=PixelRNNModel.encode)


@partial(jax.jit, static_argnames=("config",))
def _classify_jit(variables, video, config, rng):
    return PixelRNNModel(config).apply(variables, video, rng)


@partial(jax.jit, static_argnames=("config",))
def _frame_logits_jit(variables, video, config, rng):
    return PixelRNNModel(config).apply(variables, video, rng, method=PixelRNNModel.frame_logits)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _encode_exact(params, video, config):
    """The packed forward pass; its gradient is the float path's (the same function, so the
    same surrogate gradients)."""
    return packed_encoder.encode_packed(params, video, config)


def _encode_exact_fwd(params, video, config):
    return packed_encoder.encode_packed(params, video, config), (params, video)


def _encode_exact_bwd(config, res, g):
    params, video = res
    _, vjp = jax.vjp(lambda p, v: _encode_jit({"params": p}, v, config, None), params, video)
    return vjp(g)


_encode_exact.defvjp(_encode_exact_fwd, _encode_exact_bwd)


def encode(params, video, config: ModelConfig, *, rng: Array | None = None,
           intermediates: bool = False, packed: bool | None = None):
    """What the sensor reads out: (b t H W) -> (b t/K h w) (o_t every K frames); the camera
    baselines read out every frame, (b t h w).

    A single video (t H W) gives (t/K h w). With `rng`, the noise of `config` (noise-aware
    setting) is added before every quantizer; without it the encoder is deterministic.
    `intermediates=True` returns (readout, {name: (b t h w) per-frame activations}), see
    `Encoder`.

    `packed` chooses the implementation of binary models: bit logic on packed words
    (`packed_encoder`, bit-exact with the float path and several times faster on CPUs) or
    the float path. None (default) packs wherever that is exact: binary models of the cells
    in `packed_encoder.PACKED_CELLS` (pixelrnn, srnn, lstm, gru, mgu, genrnn11, genrnn01)
    with 0, 1 or 2 CNN layers, when no noise is drawn and no intermediates are asked for.
    The camera baselines and 32-bit models always take the float path. True requires the
    packed path (a ValueError says why a model cannot take it); False forces the float path.
    Either way the gradient is the float path's surrogate gradient.
    """
    check_video(video, config)
    video, single = _batched(jnp.asarray(video))
    reason = packed_encoder.unsupported(config, rng=rng, intermediates=intermediates)
    if packed and reason:
        raise ValueError(f"packed=True, but the packed encoder cannot run this model: {reason}")
    if packed is None:
        packed = reason is None
    if packed:
        out = _encode_exact(unwrap_params(params), video, config)
        return out[0] if single else out
    out = _encode_jit(as_variables(params), video, config, rng, intermediates)
    return jax.tree.map(lambda a: a[0], out) if single else out


def classify(params, video, config: ModelConfig, *, rng: Array | None = None) -> Array:
    """Class logits (b classes) of the whole model, encoder and decoder."""
    check_video(video, config)
    video, single = _batched(jnp.asarray(video))
    out = _classify_jit(as_variables(params), video, config, rng)
    return out[0] if single else out


def frame_logits(params, video, config: ModelConfig, *, rng: Array | None = None) -> Array:
    """Logits of every frame (b t classes) for the cells whose decoder scores frames alone.

    RAW's accuracy (supplement S1.1.1) is the fraction of frames whose logits pick the video's
    label; `classify` of these cells is the mean of these logits over the frames.
    """
    if not config.spec.frame_decoder:
        raise ValueError(_no_frame_logits(config))
    check_video(video, config)
    video, single = _batched(jnp.asarray(video))
    out = _frame_logits_jit(as_variables(params), video, config, rng)
    return out[0] if single else out


def decode(params, readout: Array, config: ModelConfig) -> Array:
    """Decoder logits from readouts (b t/K h w), e.g. ones recorded on a real sensor."""
    return PixelRNNModel(config).apply(as_variables(params), jnp.asarray(readout),
                                       method=PixelRNNModel.decode)
