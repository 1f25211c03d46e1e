"""The off-sensor linear decoder fine-tuned on readouts (real ones or simulated).

Multinomial logistic regression on per-pixel standardized readouts (statistics of the
training videos only) with an L2 weight decay, trained full-batch with Adam, every candidate
weight decay at once (the members of one vmapped step) through the project's epoch loop
(`training.loop.fit`, one full-batch step per epoch). The weight decay and the crop are
chosen by stratified k-fold cross-validation on the training videos; the test videos are
used once, for the final figure.

    rec = recordings.load_recordings("cambridge_scamp5_outputs.npz")
    results, decoder = finetune_decoder(rec, DecoderConfig())
    logits = decoder.logits(rec.readouts)
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pixelrnn_jax.sensor.recordings import SIDE, Recordings, stratified_folds, train_test_split
from pixelrnn_jax.training import Schedule, Stepper, fit, make_optimizer

__all__ = ["DecoderConfig", "LinearDecoder", "cross_validate", "fit_decoder",
           "select_and_fit", "finetune_decoder", "accuracy_own_statistics"]


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


def _loss(params, batch, rng, member):
    """Mean cross-entropy over the rows in use (`weight` 0/1) + wd/2 |W|^2."""
    del rng
    logits = batch["x"] @ params["kernel"] + params["bias"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    w = batch["weight"]
    loss = (ce * w).sum() / w.sum() + 0.5 * member["wd"] * jnp.sum(params["kernel"] ** 2)
    return loss, {"correct": ((jnp.argmax(logits, -1) == batch["label"]) * w).sum()}


@functools.lru_cache(maxsize=8)
def _stepper(learning_rate: float, members: int) -> Stepper:
    # one compiled step per (rate, grid size), reused by every fold and call
    return Stepper(_loss, None, make_optimizer(learning_rate), members=members,
                   member_axis=True)


def _fit_members(x: np.ndarray, y: np.ndarray, weight: np.ndarray, wds, num_classes: int,
                 steps: int, learning_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """One decoder per weight decay in `wds`, all trained together from zero on the rows of
    (x (n d), y (n,)) with weight 1: kernels (g d classes), biases (g classes)."""
    wds = jnp.asarray(wds, jnp.float32)
    g = len(wds)
    stepper = _stepper(float(learning_rate), g)
    params = {"kernel": jnp.zeros((g, x.shape[1], num_classes)),
              "bias": jnp.zeros((g, num_classes))}
    opt_state = jax.vmap(stepper.tx.init)(params)
    batch = {"x": np.asarray(x, np.float32), "label": np.asarray(y, np.int32),
             "weight": np.asarray(weight, np.float32)}
    state = fit(stepper, params, opt_state, schedule=Schedule(steps),
                train_batches=lambda epoch: [batch], step_rng=jax.random.key(0),
                name="decoder ", member_data={"wd": wds}, progress_every=steps)
    return np.asarray(state.params["kernel"]), np.asarray(state.params["bias"])


def cross_validate(x: np.ndarray, y: np.ndarray, config: DecoderConfig,
                   num_classes: int, groups: np.ndarray | None = None) -> list[dict]:
    """Mean k-fold accuracy of every (margin, weight decay) on the training videos only.

    groups: (n,) the video each row comes from, when a video gives several rows (noise
    draws): the folds then split videos, never a video's rows.
    """
    if groups is None:
        groups = np.arange(len(y))
    names, first = np.unique(groups, return_index=True)
    gy = np.asarray(y)[first]
    counts = np.bincount(gy, minlength=num_classes)
    present = counts[counts > 0]
    k = min(config.folds, int(present.min()))
    if k < 2:
        raise ValueError(f"cross-validation needs >= 2 training videos per class; the smallest "
                         f"class has {present.min()}")
    folds = stratified_folds(gy, k, config.seed)[np.searchsorted(names, groups)]
    table = []
    for margin in config.margins:
        accs = np.zeros((len(config.weight_decays), k))
        for f in range(k):
            fit_rows = folds != f
            mean, std = _stats(x[fit_rows], margin)  # statistics of the fold's training part
            feats = _features(x, margin, mean, std)
            kernel, bias = _fit_members(feats, y, fit_rows, config.weight_decays, num_classes,
                                        config.steps, config.learning_rate)
            held = ~fit_rows
            for g in range(len(config.weight_decays)):
                pred = (feats[held] @ kernel[g] + bias[g]).argmax(-1)
                accs[g, f] = float((pred == y[held]).mean())
        for g, wd in enumerate(config.weight_decays):
            table.append({"margin": margin, "weight_decay": wd,
                          "cv_accuracy": float(accs[g].mean()),
                          "fold_accuracies": accs[g].tolist()})
    return table


def fit_decoder(x: np.ndarray, y: np.ndarray, margin: int, weight_decay: float,
                config: DecoderConfig, num_classes: int) -> LinearDecoder:
    """Trains the decoder on all of (x, y) with one setting."""
    mean, std = _stats(x, margin)
    feats = _features(x, margin, mean, std)
    kernel, bias = _fit_members(feats, y, np.ones(len(y)), [weight_decay], num_classes,
                                config.steps, config.learning_rate)
    return LinearDecoder(margin, mean, std, kernel[0], bias[0])


def select_and_fit(x: np.ndarray, y: np.ndarray, config: DecoderConfig, num_classes: int,
                   groups: np.ndarray | None = None) -> tuple[LinearDecoder, dict]:
    """The (margin, weight decay) of the best cross-validated accuracy on (x, y) (folds by
    `groups`), retrained on all of it; and the chosen row of the table."""
    table = cross_validate(x, y, config, num_classes, groups)
    best = max(table, key=lambda r: (r["cv_accuracy"], r["weight_decay"], -r["margin"]))
    return fit_decoder(x, y, best["margin"], best["weight_decay"], config, num_classes), best


def accuracy_own_statistics(decoder: LinearDecoder, x, y) -> float:
    """Accuracy of `decoder` on readouts standardised per pixel by their own statistics (no
    labels): what a decoder trained in one domain (simulated or real readouts) sees in the
    other once the other's pixel means and spreads are known."""
    x = np.asarray(x, np.float32)
    mean, std = _stats(x, decoder.margin)
    feats = _features(x, decoder.margin, mean, std)
    return float(((feats @ decoder.kernel + decoder.bias).argmax(-1) == np.asarray(y)).mean())


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
