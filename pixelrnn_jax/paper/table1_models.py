"""The in-pixel CNN feature encoders compared in paper Table 1 (the comparison: `table1`).

Every encoder runs on the sensor, frame by frame, with quantized weights, and reads one
64x64 plane of binary features out to the same off-sensor decoder (`model.Decoder`, one
fully connected layer):

    images (b 64 64) normalized intensities  ->  readout (b 64 64) of +-1

Shapes: `b` images, `c` channels, `h w` a plane. Input pixels are binarized with
sign(x), sign(0) = +1, as in the core model (Liu 2020 adds a learned offset, below).

| name      | encoder (reference)                             | weights    | parameters |
|-----------|-------------------------------------------------|------------|------------|
| `bose`    | Bose et al., ICCV 2019 / ECCV 2020              | {-1, 0, 1} | 257        |
| `liu2020` | Liu et al., BMVC 2020, strided convolutions     | {-1, +1}   | 258        |
| `liu2022` | Liu & Lu, CVPRW 2022, binarized fully conv. net | {-1, +1}   | 2,374      |
| `ours`    | the binary 2-layer CNN of the core library      | {-1, +1}   | 802        |

The parameter counts are derived from the modules (`onsensor_params`), not typed in.

Reimplementation choices. The PixelRNN paper gives each encoder's weight precision, layer
count and parameter count; where the cited papers' details are not restated there, the
choices below are made to keep a 64x64 binary readout and exactly Table 1's count.

* `bose` (257 = 16 x 4 x 4 + 1). Bose et al. run one convolutional layer on the sensor
  (16 ternary kernels applied to copies of the binary image laid out in a 4x4 grid of the
  pixel array) and compute the second layer of their 2-layer CNN, a fully connected one, off
  the array; here that second layer is the common off-sensor decoder. Assumed: 4x4 kernels,
  'same' zero padding (1 before, 2 after: the kernel covers offsets -1..+2), ReLU, 4x4
  max-pool, one learned threshold for all maps, binarize, tile the 16 maps of 16x16. Ternary
  weights use `quantizers.ternary` (zero within |w| <= 0.5 of the latent value).
* `liu2020` (258 = 16 x 4 x 4 + 2). Liu et al. replace convolution + max-pooling by a
  strided convolution, so the sensor computes 1/16 of the sums. Assumed: one layer of 16
  binary 4x4 kernels with stride 4 (non-overlapping windows, 64x64 -> 16 maps of 16x16, no
  padding), one learned output threshold, and one learned input threshold (the comparator
  level at which the array binarizes the image: x = sign(I - t_in)).
* `liu2022` (2,374 = 4 x 3 x 3 + 8 x 4 x 3 x 3 + 16 x 8 x 4 x 4 + 2). A 3-layer binarized
  fully convolutional network with multi-channel kernels. Assumed channels 4, 8, 16; layers 1
  and 2: 3x3 kernels, 'same' padding, 2x2 max-pool, a learned threshold each, binarize
  (64 -> 32 -> 16); as in binarized networks the binarization is the only non-linearity (no
  ReLU: sign is monotone, so this equals max-pooling the binary maps, and a threshold near 0
  has no pile of ReLU zeros on it to flip the whole layer at once); layer 3: 4x4 kernels
  over the 8 maps, 'same' padding (1 before, 2 after), binarized at 0 (the sign of the sum,
  no learned threshold), 16 maps of 16x16.
* `ours` (802 = 2 x 401): two `encoder.InPixelCNN` layers (16 binary 5x5 kernels, ReLU, 4x4
  max-pool, one threshold, binarize, tile), the same modules and parameter names
  (`cnn_0`, `cnn_1`) as the core model's encoder.

Model size (Table 1, "parameters x quantization of the values"): bytes = parameters x
log2(levels of the weights) / 8, with thresholds counted at the weight precision; ternary
weights carry log2(3) = 1.585 bits. This reproduces Table 1's size column exactly when its
figures are read as kilobytes (10^3 bytes): 257 x 1.585 / 8 = 50.9 B (0.05), 258 / 8 = 32.3
B (0.03), 2,374 / 8 = 296.8 B (0.30), 802 / 8 = 100.3 B (0.10); the column's unit "MB" does
not fit any convention (802 one-bit values are 100 bytes), and 2-bit storage of the ternary
weights would give 0.06 for Bose.
"""
from __future__ import annotations

import dataclasses
import math
from functools import lru_cache, partial
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import Decoder, InPixelCNN, ModelConfig, ops
from pixelrnn_jax.core.quantizers import sign, ternary

__all__ = ["SIDE", "NUM_MAPS", "TERNARY_DELTA", "BoseCNN", "Liu2020CNN", "Liu2022FCN",
           "OursCNN", "EncoderSpec", "ENCODERS", "get_encoder", "onsensor_params",
           "bits_per_param", "model_bytes", "ImageClassifier", "check_images", "init",
           "encode", "calibrate_thresholds"]

Array = jax.Array

SIDE = 64          # the encoders' input plane and readout plane
NUM_MAPS = 16
TERNARY_DELTA = 0.5


def _binarize_input(images: Array, m: float, offset: Array | float = 0.0) -> Array:
    return sign(images.astype(jnp.float32) - offset, m)


class BoseCNN(nn.Module):
    """Bose et al.: 16 ternary 4x4 kernels, ReLU, 4x4 max-pool, threshold (257 parameters)."""

    m: float = 2.0

    @nn.compact
    def __call__(self, images: Array) -> Array:
        kernel = self.param("kernel", nn.initializers.normal(1.0), (NUM_MAPS, 4, 4))
        threshold = self.param("threshold", nn.initializers.constant(1.0), ())
        x = _binarize_input(images, self.m)[:, None]
        w = ternary(kernel, self.m, TERNARY_DELTA)[:, None]
        y = ops.max_pool(jax.nn.relu(ops.conv2d(x, w, (1, 2))), 4)
        out = sign(y - threshold, self.m)
        self.sow("intermediates", "threshold", out)
        return ops.tile(out)


class Liu2020CNN(nn.Module):
    """Liu et al. 2020: 16 binary 4x4 kernels at stride 4, learned input and output
    thresholds (258 parameters)."""

    m: float = 2.0

    @nn.compact
    def __call__(self, images: Array) -> Array:
        kernel = self.param("kernel", nn.initializers.normal(0.5), (NUM_MAPS, 4, 4))
        input_threshold = self.param("input_threshold", nn.initializers.zeros, ())
        threshold = self.param("threshold", nn.initializers.constant(1.0), ())
        x = _binarize_input(images, self.m, input_threshold)[:, None]
        y = ops.conv2d(x, sign(kernel, self.m)[:, None], (0, 0), stride=4)
        out = sign(y - threshold, self.m)
        self.sow("intermediates", "threshold", out)
        return ops.tile(out)


class Liu2022FCN(nn.Module):
    """Liu & Lu 2022: 3-layer binarized fully convolutional network, channels 4, 8, 16
    (2,374 parameters)."""

    m: float = 2.0

    @nn.compact
    def __call__(self, images: Array) -> Array:
        m = self.m
        x = _binarize_input(images, m)[:, None]
        for i, (c_in, c_out) in enumerate(((1, 4), (4, 8))):
            k = self.param(f"kernel_{i}", nn.initializers.normal(0.5), (c_out, c_in, 3, 3))
            t = self.param(f"threshold_{i}", nn.initializers.constant(1.0), ())
            y = ops.max_pool(ops.conv2d(x, sign(k, m), (1, 1)), 2)
            x = sign(y - t, m)
            self.sow("intermediates", f"threshold_{i}", x)
        k = self.param("kernel_2", nn.initializers.normal(0.5), (NUM_MAPS, 8, 4, 4))
        return ops.tile(sign(ops.conv2d(x, sign(k, m), (1, 2)), m))


class OursCNN(nn.Module):
    """The core library's binary 2-layer in-pixel CNN (802 parameters)."""

    m: float = 2.0

    @nn.compact
    def __call__(self, images: Array) -> Array:
        cfg = ModelConfig(cnn_layers=2, m=self.m)
        x = _binarize_input(images, self.m)[None]  # time-major (t=1 b h w)
        for i in range(2):
            x, _ = InPixelCNN(cfg, first=(i == 0), name=f"cnn_{i}")(x)
            self.sow("intermediates", f"cnn_{i}.threshold", x)
        return x[0]


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """An encoder of Table 1 and the paper's figures for it."""

    name: str
    title: str
    reference: str
    module: Callable[..., nn.Module]
    weight_levels: int
    paper_accuracy: dict  # dataset -> test accuracy (fraction)
    paper_params: int
    paper_size_kb: float
    #: learned feature thresholds in layer order: (parameter path, name of the sown output)
    thresholds: tuple = ()


ENCODERS: dict[str, EncoderSpec] = {s.name: s for s in (
    EncoderSpec("bose", "Bose", "Bose et al., ICCV 2019 / ECCV 2020", BoseCNN, 3,
                {"mnist": 0.950, "cifar10": 0.398, "cambridge_hand_gesture": 0.434}, 257, 0.05,
                ((("threshold",), "threshold"),)),
    EncoderSpec("liu2020", "Liu 2020", "Liu et al., BMVC 2020", Liu2020CNN, 2,
                {"mnist": 0.800, "cifar10": 0.325, "cambridge_hand_gesture": 0.574}, 258, 0.03,
                ((("threshold",), "threshold"),)),
    EncoderSpec("liu2022", "Liu 2022", "Liu & Lu, CVPRW 2022", Liu2022FCN, 2,
                {"mnist": 0.951, "cifar10": 0.326, "cambridge_hand_gesture": 0.602}, 2374, 0.30,
                ((("threshold_0",), "threshold_0"), (("threshold_1",), "threshold_1"))),
    EncoderSpec("ours", "Our CNN", "binary 2-layer in-pixel CNN (this library)", OursCNN, 2,
                {"mnist": 0.909, "cifar10": 0.431, "cambridge_hand_gesture": 0.681}, 802, 0.10,
                ((("cnn_0", "threshold"), "cnn_0.threshold"),
                 (("cnn_1", "threshold"), "cnn_1.threshold"))),
)}


def get_encoder(name: str) -> EncoderSpec:
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}: choose from {list(ENCODERS)}") from None


# ------------------------------------------------------------------------- accounting

@lru_cache(maxsize=None)
def _param_shapes(name: str) -> dict:
    module = get_encoder(name).module()
    images = jax.ShapeDtypeStruct((1, SIDE, SIDE), jnp.float32)
    return jax.eval_shape(lambda x: module.init(jax.random.key(0), x), images)["params"]


def onsensor_params(name: str) -> int:
    """Parameters the sensor stores (all of the encoder's), from the module's shapes."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(_param_shapes(name)))


def bits_per_param(name: str) -> float:
    """log2 of the number of weight levels: 1 for binary, log2(3) for ternary."""
    return math.log2(get_encoder(name).weight_levels)


def model_bytes(name: str) -> float:
    """Parameters x bits / 8 (Table 1's model size, in bytes; see the module docstring)."""
    return onsensor_params(name) * bits_per_param(name) / 8.0


# ------------------------------------------------------------------- encoder + decoder

class ImageClassifier(nn.Module):
    """An encoder of `ENCODERS` (parameters under 'enc') followed by the common off-sensor
    linear decoder ('decoder')."""

    encoder: str
    num_classes: int
    m: float = 2.0

    def setup(self):
        self.enc = get_encoder(self.encoder).module(m=self.m)
        self.decoder = Decoder(ModelConfig(num_classes=self.num_classes))

    def __call__(self, images: Array) -> Array:
        return self.decoder(self.enc(images))

    def encode(self, images: Array) -> Array:
        return self.enc(images)


def check_images(images, name: str = "images") -> None:
    """A ValueError naming what is wrong with an image batch before JAX sees it."""
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 3 or tuple(shape[1:]) != (SIDE, SIDE):
        raise ValueError(f"{name} must be (batch, {SIDE}, {SIDE}) normalized intensities, got "
                         f"{None if shape is None else tuple(shape)}; prepare them with "
                         f"pixelrnn_jax.paper.table1.prepare_images and data.normalize_frames")
    if not np.issubdtype(np.dtype(images.dtype), np.floating):
        raise ValueError(f"{name} must hold float normalized intensities, got dtype "
                         f"{images.dtype}; convert uint8 with pixelrnn_jax.data.normalize_frames")


def init(rng: Array, encoder: str, num_classes: int, m: float = 2.0) -> dict:
    """Variables {'params': {'enc': ..., 'decoder': ...}} of encoder + linear decoder."""
    get_encoder(encoder)
    return _init_jit(rng, encoder, num_classes, m)


@partial(jax.jit, static_argnames=("encoder", "num_classes", "m"))
def _init_jit(rng, encoder, num_classes, m):
    return ImageClassifier(encoder, num_classes, m).init(rng, jnp.zeros((1, SIDE, SIDE),
                                                                        jnp.float32))


def encode(variables, images, encoder: str, num_classes: int, m: float = 2.0) -> Array:
    """The readout (b 64 64) of +-1 that `encoder` sends off the sensor."""
    check_images(images)
    return _encode_jit(variables, jnp.asarray(images), encoder, num_classes, m)


@partial(jax.jit, static_argnames=("encoder", "num_classes", "m"))
def _encode_jit(variables, images, encoder, num_classes, m):
    return ImageClassifier(encoder, num_classes, m).apply(variables, images,
                                                          method=ImageClassifier.encode)


def calibrate_thresholds(variables, images, encoder: str, num_classes: int, m: float = 2.0,
                         iters: int = 24, bound: float = 64.0) -> dict:
    """Data-dependent initialization: sets the learned feature thresholds, layer by layer,
    so that each layer's binary output is +1 on as close to half of its values for `images`
    as the integer sums allow (bisection over [-bound, bound], then half-way between two
    integers). Features start informative
    and inside the surrogate gradient's reach instead of saturated at +1 or -1."""
    check_images(images)
    spec = get_encoder(encoder)
    model = ImageClassifier(encoder, num_classes, m)
    x = jnp.asarray(images)

    @jax.jit
    def positive_fraction(params):
        _, state = model.apply({"params": params}, x, method=ImageClassifier.encode,
                               mutable=["intermediates"])
        inter = state["intermediates"]["enc"]
        return {name: jnp.mean(inter[name][0] > 0) for _, name in spec.thresholds}

    def frac(params, path, name, t):
        params = _set_param(params, ("enc",) + path, t)
        return params, float(positive_fraction(params)[name])

    params = jax.tree.map(jnp.asarray, variables["params"])
    for path, name in spec.thresholds:
        lo, hi = -bound, bound  # the fraction of +1 falls as the threshold rises
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            params, f = frac(params, path, name, mid)
            lo, hi = (mid, hi) if f > 0.5 else (lo, mid)
        # The compared values are integers (sums of +-1 or ternary products, ReLU, max):
        # put the threshold half-way between two integers next to the crossing, so that no
        # value sits on it (a pile of ReLU zeros exactly at the threshold would flip at
        # once with its first update).
        c = math.floor(0.5 * (lo + hi))
        best = min(((abs(f - 0.5), p) for p, f in
                    (frac(params, path, name, c + d) for d in (-0.5, 0.5, 1.5))),
                   key=lambda t: t[0])
        params = best[1]
    return {**variables, "params": params}


def _set_param(params, path, value):
    if len(path) == 1:
        return {**params, path[0]: jnp.asarray(value, params[path[0]].dtype)}
    return {**params, path[0]: _set_param(params[path[0]], path[1:], value)}


