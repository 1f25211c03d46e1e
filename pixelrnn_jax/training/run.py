"""A training run: `train_and_evaluate(config, workdir)`.

optax Adam on softmax cross-entropy, reduce-on-plateau learning rate, best model by
validation accuracy, orbax checkpoints every epoch (rerunning with the same workdir resumes),
`metrics.jsonl` (one record per epoch) and `results.json` at the end: the one loop of
`training.loop` on the video classifier of `training.steps`.

The train step is data-parallel over a `jax.sharding.Mesh` of all devices (batch sharded,
parameters replicated): the same code runs on one CPU, on simulated host devices, a GPU, a
TPU slice, or many hosts (`training.distributed`: each process prepares its rows of every
batch, all write the checkpoints, process 0 alone the metrics, results and weights).
Everything a step depends on is a function of (seed, epoch, step), so a resumed run
reproduces an uninterrupted one bit for bit on CPU, and the global batch of a step is the
same whatever the number of processes.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from pixelrnn_jax import data as data_lib
from pixelrnn_jax import plots
from pixelrnn_jax.core import NOISE_SITES, ModelConfig, accounting, decode, encode, init
from pixelrnn_jax.core.deployed import save_deployed_weights
from pixelrnn_jax.training import rundir
from pixelrnn_jax.training.checkpoints import CheckpointStore
from pixelrnn_jax.training.config import TrainConfig
from pixelrnn_jax.training.distributed import is_primary, primary_first
from pixelrnn_jax.training.loop import Schedule, fit
from pixelrnn_jax.training.steps import (
    Stepper,
    classification_eval,
    classification_loss,
    make_mesh,
    make_optimizer,
)

__all__ = ["train_and_evaluate", "prepare_dataset", "global_batch_size", "limit_videos",
           "evaluation_batches", "schedule_of", "load_trained", "initial_params",
           "RESUMABLE_CHANGES"]

log = logging.getLogger("pixelrnn_jax")

# fields a rerun may change and still resume the same run (sensor_lr_scale acts only through
# the learning rate of the epochs after a warm-up, which their run's identity holds)
RESUMABLE_CHANGES = ("num_epochs", "data_dir", "checkpoint_keep", "export_weights",
                     "sensor_lr_scale")
# what a run started from another may change: training noise, the surrogate's steepness and
# the program the encoder runs (a model of the paper's program fine-tuned on the chip's)
FINE_TUNE_CHANGES = NOISE_SITES + ("m", "sensor", "sensor_calibration")


def global_batch_size(config: TrainConfig, devices: int) -> int:
    gb = config.per_device_batch_size * devices if config.per_device_batch_size \
        else config.batch_size
    if gb % devices:
        raise ValueError(f"batch_size {gb} is not divisible by the {devices} devices; set "
                         f"--batch_size to a multiple of {devices} or use "
                         f"--per_device_batch_size")
    return gb


def limit_videos(dataset, max_videos: int):
    """At most about `max_videos` videos in all, each split shrunk in proportion (at least one
    video each) and balanced over the classes: the first videos of every class in turn."""
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
        return data_lib.Split.from_videos(split.name, [split.video(int(i)) for i in idx],
                                          labels[idx], [split.names[i] for i in idx],
                                          split.frame_size)

    small = dict(zip(("train", "val", "test"), map(shrink, splits)))
    info = {**dataset.split_info, "max_videos": max_videos,
            "sizes": {k: v.num_videos for k, v in small.items()},
            "names": {k: list(v.names) for k, v in small.items()}}
    return dataclasses.replace(dataset, **small, split_info=info,
                               description=f"{dataset.description}; limited to {max_videos} "
                                           f"videos")


def prepare_dataset(config: TrainConfig, dataset=None, devices: int = 1):
    """(config, dataset, global batch size) of a run: the dataset loaded (unless given) and
    limited to `max_videos`, the model's class count set from it, and every check a run
    makes before it trains (frame size, batch against devices and the training split)."""
    cfg = config.model
    if dataset is None:
        # built on first use into a folder every process may share: built once, then read
        dataset = primary_first(lambda: data_lib.load_dataset(
            config.dataset, config.data_dir, seed=config.seed, frame_size=cfg.frame_size,
            raw=cfg.cell == "raw"), "dataset")
    if config.max_videos:
        dataset = limit_videos(dataset, config.max_videos)
    if dataset.num_classes != cfg.num_classes:
        config = config.replace(model=cfg.replace(num_classes=dataset.num_classes))
    if dataset.frame_size != cfg.frame_size:
        raise ValueError(f"the dataset {dataset.name!r} has {dataset.frame_size}x"
                         f"{dataset.frame_size} frames but the model expects frame_size="
                         f"{cfg.frame_size}; load the dataset with that frame_size or set "
                         f"--frame_size={dataset.frame_size}")
    batch_size = global_batch_size(config, devices)
    if dataset.train.num_videos < batch_size:
        raise ValueError(f"the training split has {dataset.train.num_videos} videos, fewer "
                         f"than one batch of {batch_size}; lower --batch_size")
    return config, dataset, batch_size


def schedule_of(config: TrainConfig) -> Schedule:
    return Schedule(config.num_epochs, config.plateau_patience, config.plateau_factor,
                    config.min_learning_rate)


def training_batches(config: TrainConfig, split, batch_size: int, rows: slice | None = None):
    """The batches of epoch e: shuffled, augmented, prefetched on a host thread; `rows`:
    this process's rows of each (`Stepper.local_rows`)."""
    return lambda epoch: data_lib.prefetch(data_lib.batches(
        split, batch_size, train=True, seed=config.seed, epoch=epoch,
        num_frames=config.num_frames, shift_fraction=config.shift_fraction,
        drop_remainder=True, rows=rows))


def evaluation_batches(config: TrainConfig, split, batch_size: int,
                       rows: slice | None = None):
    return data_lib.batches(split, batch_size, train=False, seed=config.seed, epoch=0,
                            num_frames=config.num_frames, rows=rows,
                            eval_clip=config.eval_clip)


def train_and_evaluate(config: TrainConfig, workdir, *, dataset=None, devices=None) -> dict:
    """Trains, evaluates, checkpoints and writes results; returns the results dict.

    `dataset` (a `pixelrnn_jax.data.DatasetSplits`) overrides loading `config.dataset`.
    Rerunning with the same workdir resumes from the last complete epoch (with any number
    of processes). In a distributed run every process calls it alike; each returns the
    results, process 0 writes them.
    """
    wd = rundir.prepare(workdir)
    mesh = make_mesh(devices)
    config, dataset, batch_size = prepare_dataset(config, dataset, int(mesh.devices.size))
    asked, warmup = config, None
    if config.model.sensor != "ideal" and config.ideal_epochs:
        config, warmup = _after_ideal_warmup(config, wd, dataset, devices)
    cfg = config.model
    tx = make_optimizer(config.learning_rate, config.encoder_lr_scale)
    stepper = Stepper(classification_loss(cfg), classification_eval(cfg), tx, mesh=mesh)
    rows = stepper.local_rows(batch_size)
    log.info("devices: %d x %s, global batch %d%s", mesh.devices.size,
             mesh.devices.flat[0].platform, batch_size,
             f"; process {jax.process_index()} of {jax.process_count()} feeds rows "
             f"{rows.start}-{rows.stop - 1}" if jax.process_count() > 1 else "")

    init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
    params = init(init_rng, cfg, config.num_frames)["params"]
    if config.init_from:
        params = initial_params(config.init_from, cfg, params)
    if warmup is not None:
        params = decoder_fit_to_readouts(params, cfg, evaluation_batches(
            config, dataset.train, batch_size), jax.random.fold_in(init_rng, 1))
    state = fit(
        stepper, params, tx.init(params), schedule=schedule_of(config),
        train_batches=training_batches(config, dataset.train, batch_size, rows),
        validate=lambda p: stepper.evaluate(
            p, evaluation_batches(config, dataset.val, batch_size, rows), batch_size),
        step_rng=step_rng,
        store=CheckpointStore(wd / "checkpoints", keep=config.checkpoint_keep),
        run=rundir.run_identity(config.to_dict(), RESUMABLE_CHANGES), workdir=wd)

    def score(split):
        return stepper.evaluate(state.best_params, evaluation_batches(
            config, split, batch_size, rows), batch_size)

    test, val, train = score(dataset.test), score(dataset.val), score(dataset.train)
    meta = state.meta
    results = {
        "test_accuracy": test["accuracy"], "val_accuracy": val["accuracy"],
        "train_accuracy": train["accuracy"], "test_loss": test["loss"],
        "best_epoch": meta["best_epoch"], "epochs": meta["epoch"],
        "train_videos_per_s": meta["videos_seen"] / max(meta["train_seconds"], 1e-9),
        "train_seconds": meta["train_seconds"],
        "onsensor_params": accounting.onsensor_params(cfg),
        "feature_bytes_per_pixel": accounting.feature_bytes_per_pixel(cfg),
        "readout_values_per_16_frames": accounting.readout_values_per_16_frames(cfg),
        "dataset": {"name": config.dataset, "data_dir": config.data_dir,
                    "description": dataset.description, "split": dataset.split_info,
                    "num_classes": dataset.num_classes},
        "devices": {"count": int(mesh.devices.size),
                    "platform": mesh.devices.flat[0].platform,
                    "processes": jax.process_count()},
        "jax_version": jax.__version__,
        "sensor": {"forward": cfg.sensor, "calibration": cfg.sensor_calibration,
                   # validation, test and train accuracy run the same forward pass, no noise
                   "model_selection": f"validation accuracy through the {cfg.sensor} forward "
                                      f"pass, noise off"},
        "config": asked.to_dict(),
        "workdir": str(wd),
    }
    if warmup is not None:
        results["ideal_warmup"] = warmup
        results["train_seconds_with_warmup"] = meta["train_seconds"] + warmup["train_seconds"]
    if is_primary():
        rundir.write_json(wd / "results.json", results)
        _save_artifacts(config, wd, state.best_params)
    return results


def _after_ideal_warmup(config: TrainConfig, wd: Path, dataset, devices):
    """Trains the first `ideal_epochs` through the ideal program (W/ideal_warmup, resumable
    like any run) and returns (the config of the rest: from the warm-up's best parameters,
    at its last learning rate times sensor_lr_scale, num_epochs - ideal_epochs epochs; a
    summary of the warm-up).
    The decisions of the chip's program are those of the paper's, displaced: a model that
    has learned the task through the ideal program is a start from which training through
    the chip's errors converges in far fewer of its (5 times slower) epochs."""
    first = min(config.ideal_epochs, config.num_epochs)
    # the ideal program reads no calibration: warm-ups of every calibration are one run
    ideal = config.replace(model=config.model.replace(
        sensor="ideal", sensor_calibration=ModelConfig().sensor_calibration),
        num_epochs=first, ideal_epochs=0, sensor_lr_scale=TrainConfig().sensor_lr_scale)
    done = train_and_evaluate(ideal, wd / "ideal_warmup", dataset=dataset, devices=devices)
    records = rundir.read_metrics(wd / "ideal_warmup" / "metrics.jsonl")
    lr = float(records[-1]["learning_rate"]) if records else config.learning_rate
    rest = config.replace(init_from=str(wd / "ideal_warmup"),
                          learning_rate=lr * config.sensor_lr_scale,
                          num_epochs=config.num_epochs - first, ideal_epochs=0)
    summary = {"workdir": str(wd / "ideal_warmup"), "epochs": first,
               "val_accuracy": done["val_accuracy"], "test_accuracy": done["test_accuracy"],
               "final_learning_rate": lr, "train_seconds": done["train_seconds"]}
    return rest, summary


def decoder_fit_to_readouts(params, cfg: ModelConfig, batches, key, steps: int = 100,
                            learning_rate: float = 0.01):
    """`params` with the decoder layer refitted from zero (full batch, Adam) to the readouts
    of `batches` through `cfg`'s sensor, its noise drawn: the encoder of a model trained
    through another program keeps its weights, the decoder learns this program's layout and
    scale (a decoder left as it was scores below chance on the chip's readouts). Few small
    steps (logits of about steps x learning_rate) stop it short of fitting one draw of the
    noise, which a full fit does (100 % on its draw, 31 % on the next, Table 3's protocol)."""
    readouts, labels = [], []
    for i, batch in enumerate(batches):
        readouts.append(encode(params, batch["video"], cfg, rng=jax.random.fold_in(key, i)))
        labels.append(batch["label"])
    readouts, labels = jnp.concatenate(readouts), jnp.concatenate(labels)
    frozen = {k: v for k, v in params.items() if k != "decoder"}
    tx = optax.adam(learning_rate)

    def loss(dec):
        logits = decode({**frozen, "decoder": dec}, readouts, cfg)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def fit_steps(dec):
        def step(carry, _):
            dec, opt = carry
            updates, opt = tx.update(jax.grad(loss)(dec), opt, dec)
            return (optax.apply_updates(dec, updates), opt), None
        return jax.lax.scan(step, (dec, tx.init(dec)), None, length=steps)[0][0]

    start = jax.tree.map(jnp.zeros_like, params["decoder"])
    return {**frozen, "decoder": fit_steps(start)}


def _save_artifacts(config: TrainConfig, wd: Path, params) -> None:
    """Best parameters, training curves and the binary weights the sensor loads."""
    params = jax.device_get(params)
    (wd / "best_params.msgpack").write_bytes(serialization.to_bytes(params))
    records = rundir.read_metrics(wd / "metrics.jsonl")
    if records:   # none after zero epochs
        plots.training_curves(records, wd / "training_curves.png")
    if config.export_weights and config.model.binary:
        save_deployed_weights({"params": params}, config.model, wd / "sensor_weights")


def initial_params(workdir, cfg: ModelConfig, template):
    """The best parameters of the finished run in `workdir` as the start of a new run of
    `cfg` (e.g. noise-aware fine-tuning of a noise-free model): the models must be the same
    but for the training noise and the surrogate's steepness."""
    old, variables = load_trained(workdir)
    a = {k: v for k, v in old.model.to_dict().items() if k not in FINE_TUNE_CHANGES}
    b = {k: v for k, v in cfg.to_dict().items() if k not in FINE_TUNE_CHANGES}
    diff = sorted(k for k in a if a[k] != b.get(k))
    if diff:
        raise ValueError(f"--init_from={workdir} trained a different model: "
                         + ", ".join(f"{k}={a[k]!r} there, {b.get(k)!r} here" for k in diff)
                         + "; only the noise sites, --m and the sensor may change")
    params = variables["params"]
    if jax.tree.structure(params) != jax.tree.structure(template):
        raise ValueError(f"--init_from={workdir}: its parameters do not fit this model")
    return jax.tree.map(lambda p, t: jnp.asarray(p, t.dtype), params, template)


def load_trained(workdir) -> tuple[TrainConfig, dict]:
    """(config, variables) of a finished run: its results.json and best_params.msgpack."""
    wd = Path(workdir)
    res, blob = wd / "results.json", wd / "best_params.msgpack"
    for f in (res, blob):
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: {wd} is not a finished training run "
                                    f"(run experiments/train.py --workdir={wd} first)")
    config = TrainConfig.from_dict(json.loads(res.read_text())["config"])
    template = init(jax.random.key(0), config.model, config.num_frames)["params"]
    params = serialization.from_bytes(template, blob.read_bytes())
    return config, {"params": params}

