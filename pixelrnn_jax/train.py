"""Training and evaluation: `train_and_evaluate(config, workdir)`.

optax Adam on softmax cross-entropy, reduce-on-plateau learning rate, best model by
validation accuracy, orbax checkpoints every epoch (rerunning with the same workdir resumes),
`metrics.jsonl` (one record per epoch) and `results.json` at the end.

The train step is data-parallel over a `jax.sharding.Mesh` of all devices (batch sharded,
parameters replicated): the same code runs on one CPU, on simulated host devices, a GPU or a
TPU slice. Everything a step depends on is a function of (seed, epoch, step), so a resumed
run reproduces an uninterrupted one bit for bit on CPU.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from functools import partial
from pathlib import Path
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from pixelrnn_jax import accounting
from pixelrnn_jax.cells import get_cell_spec
from pixelrnn_jax.config import ModelConfig
from pixelrnn_jax.model import PixelRNNModel

log = logging.getLogger("pixelrnn_jax")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (flags map one to one onto these fields)."""

    model: ModelConfig = ModelConfig()
    dataset: str = "synthetic_gesture"
    data_dir: str | None = None
    batch_size: int = 32            # global batch (split over devices)
    per_device_batch_size: int = 0  # if > 0: global batch = this x number of devices
    num_epochs: int = 30
    learning_rate: float = 1e-2
    encoder_lr_scale: float = 0.1   # encoder learning rate = this x learning_rate
    seed: int = 0
    num_frames: int = 16
    shift_fraction: float = 0.1     # random spatial shift, fraction of the frame side
    plateau_patience: int = 4       # epochs without val-loss improvement before decaying
    plateau_factor: float = 0.5
    min_learning_rate: float = 1e-5
    checkpoint_keep: int = 3
    export_weights: bool = True
    max_videos: int = 0             # if > 0: a class-balanced subset of the splits (smoke tests)
    init_from: str | None = None    # a finished run's workdir: start from its best parameters

    def __post_init__(self):
        checks = (("batch_size", self.batch_size >= 1, ">= 1"),
                  ("num_epochs", self.num_epochs >= 0, ">= 0"),
                  ("per_device_batch_size", self.per_device_batch_size >= 0, ">= 0"),
                  ("learning_rate", 0 < self.learning_rate < math.inf, "> 0 and finite"),
                  ("encoder_lr_scale", 0 <= self.encoder_lr_scale < math.inf,
                   ">= 0 and finite"),
                  ("num_frames", self.num_frames >= 1, ">= 1"),
                  ("shift_fraction", 0 <= self.shift_fraction < 0.5, "in [0, 0.5)"),
                  ("plateau_patience", self.plateau_patience >= 0, ">= 0"),
                  ("plateau_factor", 0 < self.plateau_factor <= 1, "in (0, 1]"),
                  ("min_learning_rate", self.min_learning_rate >= 0, ">= 0"),
                  ("checkpoint_keep", self.checkpoint_keep >= 1, ">= 1"),
                  ("max_videos", self.max_videos >= 0, ">= 0 (0: all)"))
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)} is invalid: it must be {valid}")
        # checked here, before any data is loaded
        if self.num_frames % self.model.K:
            raise ValueError(f"num_frames={self.num_frames} is not a multiple of "
                             f"K={self.model.K}; choose K dividing the clip length")

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


class TrainingError(RuntimeError):
    """A run that cannot continue (non-finite loss, unwritable workdir, ...)."""


# --------------------------------------------------------------------------------------
# pure step functions
# --------------------------------------------------------------------------------------


def make_optimizer(learning_rate: float, encoder_lr_scale: float = 1.0
                   ) -> optax.GradientTransformation:
    """Adam with an injectable learning rate (reduce-on-plateau changes it between epochs).

    The on-sensor encoder's step is `encoder_lr_scale` times the decoder's: every flip of a
    binary weight changes whole feature maps, so the encoder moves more slowly than the
    linear decoder that reads them.
    """
    def encoder_mask(params):
        return {k: jax.tree.map(lambda _: k == "encoder", v) for k, v in params.items()}

    def build(learning_rate):
        return optax.chain(optax.scale_by_adam(),
                           optax.masked(optax.scale(encoder_lr_scale), encoder_mask),
                           optax.scale_by_learning_rate(learning_rate))

    return optax.inject_hyperparams(build)(learning_rate=learning_rate)


def _needs_rng(cfg: ModelConfig) -> bool:
    return any(s > 0 for s in (cfg.noise_input, cfg.noise_cnn, cfg.noise_gate, cfg.noise_out))


def _logits(params, video, cfg: ModelConfig, rng):
    """(b classes), or (b t classes) for cells scored frame by frame (RAW, S1.1.1)."""
    model = PixelRNNModel(cfg)
    if get_cell_spec(cfg.cell).frame_accuracy:
        return model.apply({"params": params}, video, rng, method=PixelRNNModel.frame_logits)
    return model.apply({"params": params}, video, rng)


def _per_video(values):
    """(b,) or (b t) -> (b,): a frame-scored video counts the fraction of its frames."""
    return values.mean(axis=1) if values.ndim == 2 else values


def _losses_and_hits(logits, label):
    lab = label[:, None] if logits.ndim == 3 else label
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, lab)
    hits = (jnp.argmax(logits, -1) == lab).astype(jnp.float32)
    return _per_video(losses), _per_video(hits)


def loss_and_logits(params, video, label, cfg: ModelConfig, rng):
    logits = _logits(params, video, cfg, rng)
    losses, _ = _losses_and_hits(logits, label)
    return losses.mean(), logits


def train_step(params, opt_state, batch, rng, *, cfg: ModelConfig, tx):
    """One optimizer step; returns (params, opt_state, metrics)."""
    noise_rng = rng if _needs_rng(cfg) else None
    (loss, logits), grads = jax.value_and_grad(loss_and_logits, has_aux=True)(
        params, batch["video"], batch["label"], cfg, noise_rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    correct = jnp.sum(_losses_and_hits(logits, batch["label"])[1])
    gnorm = optax.global_norm(grads)
    return params, opt_state, {"loss": loss, "correct": correct, "grad_norm": gnorm}


def eval_step(params, batch, *, cfg: ModelConfig):
    """Summed loss and correct count over the valid entries of a (padded) batch."""
    logits = _logits(params, batch["video"], cfg, None)
    losses, hits = _losses_and_hits(logits, batch["label"])
    w = batch["mask"]
    return {"loss": jnp.sum(losses * w), "correct": jnp.sum(hits * w), "count": jnp.sum(w)}


# --------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------


def make_mesh(devices=None) -> Mesh:
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices, ("data",))


def global_batch_size(config: TrainConfig, mesh: Mesh) -> int:
    n = mesh.devices.size
    gb = config.per_device_batch_size * n if config.per_device_batch_size else config.batch_size
    if gb % n:
        raise ValueError(f"batch_size {gb} is not divisible by the {n} devices; set "
                         f"--batch_size to a multiple of {n} or use --per_device_batch_size")
    return gb


class Stepper:
    """The jitted, sharded train and eval steps for one model configuration."""

    def __init__(self, cfg: ModelConfig, mesh: Mesh, learning_rate: float,
                 encoder_lr_scale: float = 1.0):
        self.cfg, self.mesh = cfg, mesh
        self.tx = make_optimizer(learning_rate, encoder_lr_scale)
        self.replicated = NamedSharding(mesh, P())
        self.sharded = NamedSharding(mesh, P("data"))
        self._train = jax.jit(partial(train_step, cfg=cfg, tx=self.tx), donate_argnums=(0, 1))
        self._eval = jax.jit(partial(eval_step, cfg=cfg))

    def put_batch(self, batch: dict) -> dict:
        return {k: jax.device_put(np.asarray(v), self.sharded) for k, v in batch.items()}

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated)

    def train(self, params, opt_state, batch, rng):
        return self._train(params, opt_state, self.put_batch(batch), rng)

    def evaluate(self, params, batches: Iterable[dict], batch_size: int) -> dict:
        tot = {"loss": 0.0, "correct": 0.0, "count": 0.0}
        for batch in batches:
            out = self._eval(params, self.put_batch(pad_batch(batch, batch_size)))
            for k in tot:
                tot[k] += float(out[k])
        n = max(tot["count"], 1.0)
        return {"loss": tot["loss"] / n, "accuracy": tot["correct"] / n, "count": int(tot["count"])}


def pad_batch(batch: dict, size: int) -> dict:
    """Pads an evaluation batch to `size` (no recompilation) with a 0/1 `mask`."""
    n = len(batch["label"])
    if n > size:
        raise ValueError(f"batch of {n} larger than {size}")
    pad = size - n
    out = {"video": np.concatenate([batch["video"], np.zeros((pad,) + batch["video"].shape[1:],
                                                             batch["video"].dtype)]),
           "label": np.concatenate([batch["label"], np.zeros(pad, np.int32)]).astype(np.int32),
           "mask": np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])}
    return out


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------


def _prepare_workdir(workdir) -> Path:
    wd = Path(workdir)
    try:
        wd.mkdir(parents=True, exist_ok=True)
        probe = wd / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"workdir {wd} is not writable ({e.strerror}); choose another "
                            f"--workdir") from None
    return wd


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _lr_of(opt_state) -> float:
    return float(opt_state.hyperparams["learning_rate"])


def _set_lr(opt_state, lr: float):
    opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return opt_state


def reduce_on_plateau(lr, best_loss, bad_epochs, val_loss, config: TrainConfig):
    """One epoch of reduce-on-plateau (torch's ReduceLROnPlateau on the validation loss):
    the learning rate is multiplied by `plateau_factor` (floored at `min_learning_rate`) once
    the loss has not improved by 1e-4 for more than `plateau_patience` epochs. Works on
    scalars and, element by element, on arrays (one entry per sweep member).

    Returns (learning rate, best loss, epochs without improvement).
    """
    lr, best_loss, val_loss = (np.asarray(a, np.float64) for a in (lr, best_loss, val_loss))
    better = val_loss < best_loss - 1e-4
    best_loss = np.where(better, val_loss, best_loss)
    bad_epochs = np.where(better, 0, np.asarray(bad_epochs) + 1)
    decay = bad_epochs > config.plateau_patience
    lr = np.where(decay, np.maximum(lr * config.plateau_factor, config.min_learning_rate), lr)
    bad_epochs = np.where(decay, 0, bad_epochs)
    if lr.ndim == 0:
        return float(lr), float(best_loss), int(bad_epochs)
    return lr, best_loss, bad_epochs


def train_and_evaluate(config: TrainConfig, workdir, *, dataset=None, devices=None) -> dict:
    """Trains, evaluates, checkpoints and writes results; returns the results dict.

    `dataset` (a `pixelrnn_jax.data.DatasetSplits`) overrides loading `config.dataset`.
    Rerunning with the same workdir resumes from the last complete epoch.
    """
    from pixelrnn_jax import data as data_lib
    from pixelrnn_jax.checkpoint import CheckpointStore

    wd = _prepare_workdir(workdir)
    cfg = config.model
    if dataset is None:
        dataset = data_lib.load_dataset(config.dataset, config.data_dir, seed=config.seed,
                                        frame_size=cfg.frame_size)
    if config.max_videos:
        dataset = limit_videos(dataset, config.max_videos)
    if dataset.num_classes != cfg.num_classes:
        cfg = cfg.replace(num_classes=dataset.num_classes)
        config = config.replace(model=cfg)
    if dataset.frame_size != cfg.frame_size:
        raise ValueError(f"the dataset {dataset.name!r} has {dataset.frame_size}x"
                         f"{dataset.frame_size} frames but the model expects frame_size="
                         f"{cfg.frame_size}; load the dataset with that frame_size or set "
                         f"--frame_size={dataset.frame_size}")
    mesh = make_mesh(devices)
    batch_size = global_batch_size(config, mesh)
    if dataset.train.num_videos < batch_size:
        raise ValueError(f"the training split has {dataset.train.num_videos} videos, fewer "
                         f"than one batch of {batch_size}; lower --batch_size")
    stepper = Stepper(cfg, mesh, config.learning_rate, config.encoder_lr_scale)
    log.info("devices: %d x %s, global batch %d", mesh.devices.size,
             mesh.devices.flat[0].platform, batch_size)

    base_rng = jax.random.key(config.seed)
    init_rng, step_rng = jax.random.split(base_rng)
    from pixelrnn_jax.model import init as model_init
    params = model_init(init_rng, cfg, config.num_frames)["params"]
    if config.init_from:
        params = initial_params(config.init_from, cfg, params)
    opt_state = stepper.tx.init(params)
    meta = {"epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "bad_epochs": 0,
            "best_val_loss": math.inf, "train_seconds": 0.0, "videos_seen": 0,
            "run": _run_identity(config)}
    best_params = params

    store = CheckpointStore(wd / "checkpoints", keep=config.checkpoint_keep)
    restored = store.restore_latest({"params": params, "opt_state": opt_state,
                                     "best_params": best_params},
                                    check=partial(_check_same_run, config, wd))
    if restored is not None:
        tree, meta = restored
        params, opt_state, best_params = tree["params"], tree["opt_state"], tree["best_params"]
        log.info("resuming from %s after epoch %d", store.directory, meta["epoch"])
    _truncate_metrics(wd / "metrics.jsonl", meta["epoch"])
    params, opt_state, best_params = stepper.replicate((params, opt_state, best_params))

    for epoch in range(meta["epoch"] + 1, config.num_epochs + 1):
        t0 = time.perf_counter()
        tot_loss = tot_correct = 0.0
        n_seen = 0
        batches = data_lib.prefetch(data_lib.batches(
            dataset.train, batch_size, train=True, seed=config.seed, epoch=epoch,
            num_frames=config.num_frames, shift_fraction=config.shift_fraction,
            drop_remainder=True))
        for step, batch in enumerate(batches):
            rng = jax.random.fold_in(jax.random.fold_in(step_rng, epoch), step)
            params, opt_state, m = stepper.train(params, opt_state, batch, rng)
            loss, gnorm = float(m["loss"]), float(m["grad_norm"])
            if not (math.isfinite(loss) and math.isfinite(gnorm)):
                kept = (f"the last good checkpoint (epoch {meta['epoch']}) is kept in "
                        f"{store.directory}" if meta["epoch"] else "no checkpoint was written")
                raise TrainingError(
                    f"non-finite loss or gradient at epoch {epoch}, step {step} (loss={loss}, "
                    f"gradient norm={gnorm}); {kept}; lower --learning_rate or check the "
                    f"training data")
            tot_loss += loss * len(batch["label"])
            tot_correct += float(m["correct"])
            n_seen += len(batch["label"])
        train_time = time.perf_counter() - t0
        val = stepper.evaluate(params, data_lib.batches(
            dataset.val, batch_size, train=False, seed=config.seed, epoch=0,
            num_frames=config.num_frames), batch_size)
        lr = _lr_of(opt_state)
        new_lr, meta["best_val_loss"], meta["bad_epochs"] = reduce_on_plateau(
            lr, meta["best_val_loss"], meta["bad_epochs"], val["loss"], config)
        if new_lr != lr:
            lr = new_lr
            opt_state = _set_lr(opt_state, lr)
        if val["accuracy"] > meta["best_val_accuracy"]:
            meta["best_val_accuracy"], meta["best_epoch"] = val["accuracy"], epoch
            best_params = jax.tree.map(jnp.copy, params)
        meta["epoch"] = epoch
        meta["train_seconds"] += train_time
        meta["videos_seen"] += n_seen
        record = {"epoch": epoch, "train_loss": tot_loss / n_seen,
                  "train_accuracy": tot_correct / n_seen, "val_loss": val["loss"],
                  "val_accuracy": val["accuracy"], "learning_rate": lr,
                  "videos_per_s": n_seen / train_time, "epoch_seconds": train_time}
        # the record first: a run killed before the checkpoint is complete drops it again
        # when it resumes (_truncate_metrics), one killed after keeps it
        with open(wd / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        store.save(epoch, {"params": params, "opt_state": opt_state,
                           "best_params": best_params}, meta)
        remaining = (config.num_epochs - epoch) * (time.perf_counter() - t0)
        log.info("epoch %3d/%d  loss %.4f  train %.3f  val %.3f  lr %.2g  %.0f videos/s  "
                 "ETA %s", epoch, config.num_epochs, record["train_loss"],
                 record["train_accuracy"], val["accuracy"], lr, record["videos_per_s"],
                 _fmt_seconds(remaining))

    results = _final_results(config, dataset, stepper, best_params, meta, wd, batch_size)
    _write_json_atomic(wd / "results.json", results)
    _save_artifacts(config, wd, best_params)
    return results


def limit_videos(dataset, max_videos: int):
    """At most about `max_videos` videos in all, each split shrunk in proportion (at least one
    video each) and balanced over the classes: the first videos of every class in turn."""
    from pixelrnn_jax.data import Split

    splits = (dataset.train, dataset.val, dataset.test)
    total = sum(s.num_videos for s in splits)
    if max_videos >= total:
        return dataset

    def shrink(split):
        keep = min(split.num_videos, max(1, round(split.num_videos * max_videos / total)))
        labels = np.asarray(split.labels)
        rank = np.empty(len(labels), np.int64)
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            rank[members] = np.arange(len(members))
        idx = np.sort(np.lexsort((labels, rank))[:keep])
        return Split.from_videos(split.name, [split.video(int(i)) for i in idx], labels[idx],
                                 [split.names[i] for i in idx], split.frame_size)

    small = dict(zip(("train", "val", "test"), map(shrink, splits)))
    info = {**dataset.split_info, "max_videos": max_videos,
            "sizes": {k: v.num_videos for k, v in small.items()},
            "names": {k: list(v.names) for k, v in small.items()}}
    return dataclasses.replace(dataset, **small, split_info=info,
                               description=f"{dataset.description}; limited to {max_videos} "
                                           f"videos")


# fields a rerun may change and still resume the same run
_RESUMABLE_CHANGES = ("num_epochs", "data_dir", "checkpoint_keep", "export_weights")


def _run_identity(config: TrainConfig) -> dict:
    d = config.to_dict()
    for k in _RESUMABLE_CHANGES:
        d.pop(k)
    return json.loads(json.dumps(d))


def _check_same_run(config: TrainConfig, wd: Path, meta: dict) -> None:
    """Refuses to resume checkpoints of a run with other settings (they would be ignored)."""
    saved, now = meta.get("run"), _run_identity(config)
    if saved is None or saved == now:
        return
    a, b = _flatten(saved), _flatten(now)
    diff = ", ".join(f"{k}={b.get(k)!r} (checkpoints: {a.get(k)!r})"
                     for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    raise ValueError(f"workdir {wd} holds checkpoints of a run with other settings: {diff}; "
                     f"rerun with the settings of that run to resume it, or choose another "
                     f"--workdir")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s"


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Drops metric lines of epochs after the restored checkpoint (a killed run's tail,
    possibly a half-written last line)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["epoch"] <= epoch:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(l + "\n" for l in keep))
    os.replace(tmp, path)


def _final_results(config, dataset, stepper, best_params, meta, wd, batch_size) -> dict:
    from pixelrnn_jax import data as data_lib

    def run(split):
        return stepper.evaluate(best_params, data_lib.batches(
            split, batch_size, train=False, seed=config.seed, epoch=0,
            num_frames=config.num_frames), batch_size)

    cfg = config.model
    test, val, train = run(dataset.test), run(dataset.val), run(dataset.train)
    return {
        "test_accuracy": test["accuracy"],
        "val_accuracy": val["accuracy"],
        "train_accuracy": train["accuracy"],
        "test_loss": test["loss"],
        "best_epoch": meta["best_epoch"],
        "epochs": meta["epoch"],
        "train_videos_per_s": meta["videos_seen"] / max(meta["train_seconds"], 1e-9),
        "train_seconds": meta["train_seconds"],
        "onsensor_params": accounting.onsensor_params(cfg),
        "feature_bytes_per_pixel": accounting.feature_bytes_per_pixel(cfg),
        "readout_values_per_16_frames": accounting.readout_values_per_16_frames(cfg),
        "dataset": {"name": config.dataset, "data_dir": config.data_dir,
                    "description": dataset.description, "split": dataset.split_info,
                    "num_classes": dataset.num_classes},
        "devices": {"count": int(stepper.mesh.devices.size),
                    "platform": stepper.mesh.devices.flat[0].platform},
        "jax_version": jax.__version__,
        "config": config.to_dict(),
        "workdir": str(wd),
    }


def _save_artifacts(config: TrainConfig, wd: Path, params) -> None:
    """Best parameters, training curves and the binary weights the sensor loads."""
    from flax import serialization
    (wd / "best_params.msgpack").write_bytes(serialization.to_bytes(jax.device_get(params)))
    try:
        from pixelrnn_jax import plots
        if (wd / "metrics.jsonl").exists():   # absent after zero epochs
            plots.training_curves(wd / "metrics.jsonl", wd / "training_curves.png")
    except ImportError:  # matplotlib missing: the numbers are in metrics.jsonl
        log.warning("matplotlib not available: no training_curves.png")
    if config.export_weights and config.model.binary:
        from pixelrnn_jax import export
        export.export_for_sensor({"params": jax.device_get(params)}, config.model,
                                 wd / "sensor_weights")


# --------------------------------------------------------------------------------------
# sweeps: many seeds / learning rates of one configuration in one compiled program
# --------------------------------------------------------------------------------------


def init_members(config: TrainConfig, seeds, learning_rates):
    """Stacked parameters and optimizer states, one member per (seed, learning rate)."""
    from pixelrnn_jax.model import init as model_init
    cfg = config.model
    members = [(int(s), float(lr)) for s in seeds for lr in learning_rates]
    tx = make_optimizer(config.learning_rate, config.encoder_lr_scale)
    params = [model_init(jax.random.split(jax.random.key(s))[0], cfg, config.num_frames)["params"]
              for s, _ in members]
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    opt_state = jax.vmap(tx.init)(params)
    opt_state.hyperparams["learning_rate"] = jnp.asarray([lr for _, lr in members], jnp.float32)
    return members, tx, params, opt_state


def sweep_step_fn(cfg: ModelConfig, tx):
    """One jitted step for all members at once: vmap over stacked params and states."""
    return jax.jit(jax.vmap(partial(train_step, cfg=cfg, tx=tx), in_axes=(0, 0, None, 0)))


def train_sweep(config: TrainConfig, seeds, learning_rates, workdir=None, *,
                dataset=None) -> dict:
    """Trains every (seed, learning rate) of `config` together with `jax.vmap`.

    All members see the same batches (the data order of `config.seed`); they differ in
    initialization, noise draws and learning rate. Each member's learning rate is reduced on
    its own validation-loss plateau (`config.plateau_patience`, `plateau_factor`,
    `min_learning_rate`, as `train_and_evaluate`). Returns per-member validation and test
    accuracy of each member's best epoch, and the mean / best over members.
    """
    from pixelrnn_jax import data as data_lib

    cfg = config.model
    if dataset is None:
        dataset = data_lib.load_dataset(config.dataset, config.data_dir, seed=config.seed,
                                        frame_size=cfg.frame_size)
    if dataset.num_classes != cfg.num_classes:
        cfg = cfg.replace(num_classes=dataset.num_classes)
        config = config.replace(model=cfg)
    members, tx, params, opt_state = init_members(config, seeds, learning_rates)
    m = len(members)
    step = sweep_step_fn(cfg, tx)
    evaluate = jax.jit(jax.vmap(partial(eval_step, cfg=cfg), in_axes=(0, None)))
    batch_size = config.batch_size
    best_val = np.full(m, -1.0)
    best_loss, bad_epochs = np.full(m, np.inf), np.zeros(m, int)
    lrs = np.asarray(opt_state.hyperparams["learning_rate"], np.float64)
    best_params = params
    t_train, seen = 0.0, 0

    def run_eval(p, split):
        tot = np.zeros((m, 3))
        for batch in data_lib.batches(split, batch_size, train=False, seed=config.seed,
                                      epoch=0, num_frames=config.num_frames):
            out = evaluate(p, pad_batch(batch, batch_size))
            tot += np.stack([np.asarray(out[k]) for k in ("loss", "correct", "count")], 1)
        count = np.maximum(tot[:, 2], 1)
        return tot[:, 0] / count, tot[:, 1] / count

    base = jax.random.key(config.seed)
    for epoch in range(1, config.num_epochs + 1):
        t0 = time.perf_counter()
        for s, batch in enumerate(data_lib.prefetch(data_lib.batches(
                dataset.train, batch_size, train=True, seed=config.seed, epoch=epoch,
                num_frames=config.num_frames, shift_fraction=config.shift_fraction,
                drop_remainder=True))):
            keys = jax.random.split(jax.random.fold_in(jax.random.fold_in(base, epoch), s), m)
            params, opt_state, _ = step(params, opt_state,
                                        {k: jnp.asarray(v) for k, v in batch.items()}, keys)
            seen += len(batch["label"])
        jax.block_until_ready(params)
        t_train += time.perf_counter() - t0
        val_loss, val = run_eval(params, dataset.val)
        lrs, best_loss, bad_epochs = reduce_on_plateau(lrs, best_loss, bad_epochs, val_loss,
                                                       config)
        opt_state.hyperparams["learning_rate"] = jnp.asarray(lrs, jnp.float32)
        improved = val > best_val
        best_val = np.where(improved, val, best_val)
        sel = jnp.asarray(improved)
        best_params = jax.tree.map(
            lambda new, old: jnp.where(sel.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
            params, best_params)
        log.info("sweep epoch %d/%d  val %s", epoch, config.num_epochs,
                 " ".join(f"{v:.3f}" for v in val))
    _, test = run_eval(best_params, dataset.test)
    rows = [{"seed": s, "learning_rate": lr, "val_accuracy": float(v), "test_accuracy": float(t),
             "final_learning_rate": float(f)}
            for (s, lr), v, t, f in zip(members, best_val, test, lrs)]
    out = {"members": rows, "test_accuracy_mean": float(np.mean(test)),
           "test_accuracy_best": float(np.max(test)),
           "test_accuracy_of_best_val": float(test[int(np.argmax(best_val))]),
           "train_videos_per_s": seen / max(t_train, 1e-9),
           "member_videos_per_s": m * seen / max(t_train, 1e-9)}
    if workdir is not None:
        wd = _prepare_workdir(workdir)
        _write_json_atomic(wd / "sweep.json", out)
    return out


# what a run started from another may change: training noise and the surrogate's steepness
_FINE_TUNE_CHANGES = ("noise_input", "noise_cnn", "noise_gate", "noise_out", "m")


def initial_params(workdir, cfg: ModelConfig, template):
    """The best parameters of the finished run in `workdir` as the start of a new run of
    `cfg` (e.g. noise-aware fine-tuning of a noise-free model): the models must be the same
    but for the training noise and the surrogate's steepness."""
    old, variables = load_trained(workdir)
    a = {k: v for k, v in old.model.to_dict().items() if k not in _FINE_TUNE_CHANGES}
    b = {k: v for k, v in cfg.to_dict().items() if k not in _FINE_TUNE_CHANGES}
    diff = sorted(k for k in a if a[k] != b.get(k))
    if diff:
        raise ValueError(f"--init_from={workdir} trained a different model: "
                         + ", ".join(f"{k}={a[k]!r} there, {b.get(k)!r} here" for k in diff)
                         + "; only the noise sites and --m may change")
    params = variables["params"]
    if jax.tree.structure(params) != jax.tree.structure(template):
        raise ValueError(f"--init_from={workdir}: its parameters do not fit this model")
    return jax.tree.map(lambda p, t: jnp.asarray(p, t.dtype), params, template)


def load_trained(workdir) -> tuple[TrainConfig, dict]:
    """(config, variables) of a finished run: its results.json and best_params.msgpack."""
    from flax import serialization
    from pixelrnn_jax.model import init as model_init
    wd = Path(workdir)
    res, blob = wd / "results.json", wd / "best_params.msgpack"
    for f in (res, blob):
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: {wd} is not a finished training run "
                                    f"(run experiments/train.py --workdir={wd} first)")
    d = json.loads(res.read_text())["config"]
    model = ModelConfig(**d.pop("model"))
    config = TrainConfig(model=model, **d)
    template = model_init(jax.random.key(0), model, config.num_frames)["params"]
    params = serialization.from_bytes(template, blob.read_bytes())
    return config, {"params": params}
