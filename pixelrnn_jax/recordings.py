"""Real SCAMP-5 readouts and the off-sensor linear decoder fine-tuned on them.

The sensor reads out the PixelRNN output o_t of the last frame of each video as a 64x64 block
(rows and columns 128:192 of its 256x256 readout image), stored as 8-bit values `v` with
`o = (v - 127) / 10` (10 analog units = one +-1 product; the range clips at about +-12.7).
Two sources are read:

  * an archive like `cambridge_scamp5_outputs.npz`: `outputs` uint8 (n 64 64), `labels` (n,),
    `names` (n,), optionally `official_train` (n,) bool, the authors' decoder split;
  * a folder of the sensor's saved frames, `<class>/<video>/15_output.BMP` (256x256 grayscale),
    classes in sorted order (numerically when the folder names are numbers).

The decoder is multinomial logistic regression on per-pixel standardized readouts (statistics
of the training videos only) with an L2 weight decay, trained full-batch with Adam. The weight
decay and the crop are chosen by stratified k-fold cross-validation on the training videos;
the test videos are used once, for the final figure.

    rec = load_recordings("cambridge_scamp5_outputs.npz")
    results, decoder = finetune_decoder(rec, DecoderConfig())
    logits = decoder.logits(rec.readouts)
"""
from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array

SIDE = 64  # the readout block
BLOCK = slice(128, 192)  # where it lies in the 256x256 readout image
FRAME_FILE = "15_output.BMP"
ZERO_LEVEL, SCALE = 127.0, 10.0


@dataclasses.dataclass
class Recordings:
    """Sensor readouts of n videos.

    readouts (n 64 64) float32 in model units ((v - 127) / 10); labels (n,) int32 from 0;
    names (n,) str; official_train (n,) bool or None when the source has no official split;
    class_names: the folder name of each label (None for archives).
    """

    readouts: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    official_train: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    source: str = ""

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)


def to_model_units(values) -> np.ndarray:
    """8-bit readout values -> o in model units."""
    return ((np.asarray(values, np.float32) - ZERO_LEVEL) / SCALE).astype(np.float32)


def read_npz(path, required: tuple[str, ...], kind: str, expected: str) -> dict:
    """All arrays of a NumPy .npz archive, with one-line errors for a missing file, a file
    that is not an archive, or missing arrays (`kind` names the archive, `expected` says
    what it should hold)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} archive not found: {path}")
    try:
        data = np.load(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a NumPy .npz archive ({e})") from None
    with data:
        missing = [k for k in required if k not in data.files]
        if missing:
            raise ValueError(f"{path} lacks array(s) {missing} (found {data.files}); expected "
                             f"{expected}")
        return {k: data[k] for k in data.files}


def load_archive(path) -> Recordings:
    """Reads an archive with `outputs`, `labels`, `names` and optionally `official_train`."""
    path = Path(path)
    data = read_npz(path, ("outputs", "labels", "names"), "recordings",
                    "outputs (n, 64, 64) uint8, labels (n,), names (n,)")
    outputs, labels, names = data["outputs"], data["labels"], data["names"]
    train = data.get("official_train")
    n = len(outputs)
    if outputs.ndim != 3 or outputs.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{path}: outputs has shape {outputs.shape}, expected (n, {SIDE}, {SIDE})")
    if n == 0:
        raise ValueError(f"{path}: outputs holds no videos")
    if labels.shape != (n,) or names.shape != (n,):
        raise ValueError(f"{path}: labels {labels.shape} and names {names.shape} must both be "
                         f"({n},) to match outputs")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"{path}: labels must be integers >= 0, got {labels.dtype} "
                         f"with minimum {labels.min()}")
    if train is not None:
        if train.shape != (n,) or train.dtype != np.bool_:
            raise ValueError(f"{path}: official_train must be ({n},) bool, got "
                             f"{train.dtype} {train.shape}")
        if train.all() or not train.any():
            raise ValueError(f"{path}: official_train must mark some, not all, videos")
    return Recordings(to_model_units(outputs), labels.astype(np.int32), names.astype(str),
                      train, None, str(path))


def _class_order(names: list[str]) -> list[str]:
    if all(n.isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def load_frame_folder(path) -> Recordings:
    """Reads `<class>/<video>/15_output.BMP` readout images (256x256 grayscale)."""
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"recordings folder not found: {root}")
    classes = _class_order([p.name for p in root.iterdir() if p.is_dir()])
    images, labels, names, missing = [], [], [], []
    for label, cls in enumerate(classes):
        for video in sorted(p for p in (root / cls).iterdir() if p.is_dir()):
            file = video / FRAME_FILE
            if not file.is_file():
                missing.append(str(video))
                continue
            try:
                with Image.open(file) as im:
                    img = np.asarray(im.convert("L"))
            except OSError as e:
                raise ValueError(f"{file}: unreadable image ({e})") from None
            if img.shape != (256, 256):
                raise ValueError(f"{file}: readout image is {img.shape[0]}x{img.shape[1]}, "
                                 f"expected 256x256")
            images.append(img[BLOCK, BLOCK])
            labels.append(label)
            names.append(video.name)
    if missing:
        raise ValueError(f"{len(missing)} video folder(s) under {root} lack {FRAME_FILE}, e.g. "
                         f"{missing[0]}")
    if not images:
        raise ValueError(f"no readouts under {root}: expected <class>/<video>/{FRAME_FILE}")
    if len(classes) < 2:
        raise ValueError(f"{root} holds readouts of {len(classes)} class; need at least 2")
    return Recordings(to_model_units(np.stack(images)), np.asarray(labels, np.int32),
                      np.asarray(names), None, tuple(classes), str(root))


def load_recordings(path) -> Recordings:
    """An archive (.npz file) or a folder of saved readout frames."""
    path = Path(path)
    if path.is_dir():
        return load_frame_folder(path)
    if path.is_file():
        return load_archive(path)
    raise FileNotFoundError(f"recordings not found: {path} (give an .npz archive or a folder "
                            f"of <class>/<video>/{FRAME_FILE})")


# ----------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------


def stratified_folds(labels, k: int, seed: int) -> np.ndarray:
    """Fold id 0..k-1 of every sample, each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), np.int32)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + int(c)) % k
    return folds


def train_test_split(rec: Recordings, test_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """Boolean train mask: the official split when the source has one, else a stratified split
    with `test_fraction` of every class held out (at least one video per class)."""
    if rec.official_train is not None:
        return rec.official_train.copy(), "official"
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train = np.ones(len(rec), bool)
    for c in np.unique(rec.labels):
        idx = np.flatnonzero(rec.labels == c)
        if len(idx) < 2:
            raise ValueError(f"class {c} has {len(idx)} video; a train/test split needs >= 2")
        rng.shuffle(idx)
        n_test = min(len(idx) - 1, max(1, round(test_fraction * len(idx))))
        train[idx[:n_test]] = False
    return train, f"stratified(test_fraction={test_fraction}, seed={seed})"


# ----------------------------------------------------------------------------------------
# the decoder
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Hyperparameter grid and training of the linear decoder.

    weight_decays / margins: the grid searched by cross-validation (margin m crops the readout
    to rows and columns m:64-m; 1 drops the sensor's grid lines at the block border).
    """

    weight_decays: tuple[float, ...] = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    margins: tuple[int, ...] = (0, 1)
    folds: int = 5
    steps: int = 300
    learning_rate: float = 0.01
    seed: int = 0
    test_fraction: float = 1 / 9

    def __post_init__(self):
        if not self.weight_decays or min(self.weight_decays) < 0:
            raise ValueError(f"weight_decays must be non-empty and >= 0, got {self.weight_decays}")
        if not self.margins or min(self.margins) < 0 or max(self.margins) >= SIDE // 2:
            raise ValueError(f"margins must lie in 0..{SIDE // 2 - 1}, got {self.margins}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.steps < 1 or self.learning_rate <= 0:
            raise ValueError("steps must be >= 1 and learning_rate > 0")


@dataclasses.dataclass
class LinearDecoder:
    """Standardize (training statistics), crop, linear layer: (n 64 64) -> (n classes)."""

    margin: int
    mean: np.ndarray
    std: np.ndarray
    kernel: np.ndarray
    bias: np.ndarray

    def features(self, readouts) -> np.ndarray:
        return _features(np.asarray(readouts, np.float32), self.margin, self.mean, self.std)

    def logits(self, readouts) -> np.ndarray:
        return self.features(readouts) @ self.kernel + self.bias

    def predict(self, readouts) -> np.ndarray:
        return self.logits(readouts).argmax(-1)


def _crop(x: np.ndarray, margin: int) -> np.ndarray:
    return x[:, margin:SIDE - margin, margin:SIDE - margin]


def _stats(x: np.ndarray, margin: int):
    c = _crop(x, margin).reshape(len(x), -1)
    std = c.std(0)
    return c.mean(0), np.where(std < 1e-6, 1.0, std).astype(np.float32)  # constant pixels


def _features(x, margin, mean, std):
    return (_crop(x, margin).reshape(len(x), -1) - mean) / std


def _fit(x: Array, y: Array, weight: Array, wd: Array, num_classes: int, steps: int,
         learning_rate: float):
    """Logistic regression on one problem: x (n d), y (n,), weight (n,) 0/1 rows used.

    Loss: mean cross-entropy over the used rows + wd/2 |W|^2. Full-batch Adam from zero.
    """
    opt = optax.adam(learning_rate)
    params = (jnp.zeros((x.shape[1], num_classes)), jnp.zeros((num_classes,)))

    def loss(p):
        ce = optax.softmax_cross_entropy_with_integer_labels(x @ p[0] + p[1], y)
        return (ce * weight).sum() / weight.sum() + 0.5 * wd * jnp.sum(p[0] ** 2)

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


@partial(jax.jit, static_argnames=("num_classes", "steps", "learning_rate"))
def _fit_grid(x, y, weight, wds, *, num_classes: int, steps: int, learning_rate: float):
    """Many problems at once: x (f n d), y (f n), weight (f n) per fold; wds (g,) ->
    kernels (g f d classes), biases (g f classes)."""
    one = partial(_fit, num_classes=num_classes, steps=steps, learning_rate=learning_rate)
    per_fold = jax.vmap(one, in_axes=(0, 0, 0, None))
    return jax.vmap(per_fold, in_axes=(None, None, None, 0))(x, y, weight, wds)


def cross_validate(x: np.ndarray, y: np.ndarray, config: DecoderConfig,
                   num_classes: int) -> list[dict]:
    """Mean k-fold accuracy of every (margin, weight decay) on the training videos only."""
    counts = np.bincount(y, minlength=num_classes)
    k = min(config.folds, int(counts.min()))
    if k < 2:
        raise ValueError(f"cross-validation needs >= 2 training videos per class; the smallest "
                         f"class has {counts.min()}")
    folds = stratified_folds(y, k, config.seed)
    wds = jnp.asarray(config.weight_decays, jnp.float32)
    table = []
    for margin in config.margins:
        feats = []
        for f in range(k):
            mean, std = _stats(x[folds != f], margin)  # statistics of the fold's training part
            feats.append(_features(x, margin, mean, std))
        weight = np.stack([(folds != f).astype(np.float32) for f in range(k)])
        yk = np.broadcast_to(y, weight.shape)
        kernel, bias = _fit_grid(jnp.asarray(np.stack(feats)), jnp.asarray(yk),
                                    jnp.asarray(weight), wds, num_classes=num_classes,
                                    steps=config.steps, learning_rate=config.learning_rate)
        kernel, bias = np.asarray(kernel), np.asarray(bias)
        for g, wd in enumerate(config.weight_decays):
            accs = []
            for f in range(k):
                held = folds == f
                pred = (feats[f][held] @ kernel[g, f] + bias[g, f]).argmax(-1)
                accs.append(float((pred == y[held]).mean()))
            table.append({"margin": margin, "weight_decay": wd, "cv_accuracy": float(np.mean(accs)),
                          "fold_accuracies": accs})
    return table


def fit_decoder(x: np.ndarray, y: np.ndarray, margin: int, weight_decay: float,
                config: DecoderConfig, num_classes: int) -> LinearDecoder:
    """Trains the decoder on all of (x, y) with one setting."""
    mean, std = _stats(x, margin)
    feats = _features(x, margin, mean, std)
    kernel, bias = _fit_grid(jnp.asarray(feats)[None], jnp.asarray(y)[None],
                                jnp.ones((1, len(y)), jnp.float32),
                                jnp.asarray([weight_decay], jnp.float32), num_classes=num_classes,
                                steps=config.steps, learning_rate=config.learning_rate)
    return LinearDecoder(margin, mean, std, np.asarray(kernel[0, 0]), np.asarray(bias[0, 0]))


def finetune_decoder(rec: Recordings, config: DecoderConfig) -> tuple[dict, LinearDecoder]:
    """Chooses the setting by cross-validation on the training videos, retrains on all of them,
    and evaluates once on the test videos. Returns (results, decoder)."""
    train, split = train_test_split(rec, config.test_fraction, config.seed)
    x, y = rec.readouts, rec.labels
    ncls = rec.num_classes
    table = cross_validate(x[train], y[train], config, ncls)
    best = max(table, key=lambda r: (r["cv_accuracy"], r["weight_decay"], -r["margin"]))
    decoder = fit_decoder(x[train], y[train], best["margin"], best["weight_decay"], config, ncls)
    acc = lambda m: float((decoder.predict(x[m]) == y[m]).mean())  # noqa: E731
    test = ~train
    per_class = {int(c): float((decoder.predict(x[test & (y == c)]) == c).mean())
                 for c in np.unique(y[test])}
    results = {
        "test_accuracy": acc(test), "train_accuracy": acc(train),
        "val_accuracy": best["cv_accuracy"], "val_method": f"{len(best['fold_accuracies'])}-fold "
                                                           f"stratified CV on the training videos",
        "n_train": int(train.sum()), "n_test": int(test.sum()), "split": split,
        "weight_decay": best["weight_decay"], "margin": best["margin"],
        "test_accuracy_per_class": per_class, "cv_table": table,
        "source": rec.source, "class_names": rec.class_names,
        "config": dataclasses.asdict(config),
    }
    return results, decoder
