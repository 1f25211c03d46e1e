"""Sweeps: many seeds and learning rates of one configuration in one compiled program.

The members' parameters and optimizer states are stacked on a leading axis and the train
step of a single run is vmapped over them (`Stepper(members=...)`); the epoch loop is the
single run's (`training.loop.fit`), so a sweep keeps every guard a run has: the frame-size
and batch checks, `per_device_batch_size`, `max_videos`, the non-finite guard, checkpoints
and resume, and each member's own plateau learning rate and best epoch. When the members
divide among the devices they are split over them (`Stepper`), on one host or many; else the
batch is, as in a single run.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import init
from pixelrnn_jax.training import rundir
from pixelrnn_jax.training.checkpoints import CheckpointStore
from pixelrnn_jax.training.config import TrainConfig
from pixelrnn_jax.training.distributed import is_primary
from pixelrnn_jax.training.loop import fit
from pixelrnn_jax.training.run import (
    RESUMABLE_CHANGES,
    evaluation_batches,
    prepare_dataset,
    schedule_of,
    training_batches,
)
from pixelrnn_jax.training.steps import (
    Stepper,
    classification_eval,
    classification_loss,
    learning_rate_of,
    make_mesh,
    make_optimizer,
)

__all__ = ["init_members", "sweep_stepper", "train_sweep"]


def init_members(config: TrainConfig, seeds, learning_rates):
    """Stacked parameters and optimizer states, one member per (seed, learning rate); a
    member's initialization is the one a single run of its seed starts from."""
    members = [(int(s), float(lr)) for s in seeds for lr in learning_rates]
    if not members:
        raise ValueError("a sweep needs at least one seed and one learning rate")
    tx = make_optimizer(config.learning_rate, config.encoder_lr_scale)
    params = [init(jax.random.split(jax.random.key(s))[0], config.model,
                   config.num_frames)["params"] for s, _ in members]
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    opt_state = jax.vmap(tx.init)(params)
    opt_state.hyperparams["learning_rate"] = jnp.asarray([lr for _, lr in members], jnp.float32)
    return members, tx, params, opt_state


def sweep_stepper(config: TrainConfig, tx, members: int, mesh=None) -> Stepper:
    """The train and eval steps of all members at once."""
    cfg = config.model
    return Stepper(classification_loss(cfg), classification_eval(cfg), tx, mesh=mesh,
                   members=members)


def train_sweep(config: TrainConfig, seeds, learning_rates, workdir=None, *,
                dataset=None, devices=None) -> dict:
    """Trains every (seed, learning rate) of `config` together with `jax.vmap`.

    All members see the same batches (the data order of `config.seed`); they differ in
    initialization, noise draws and learning rate. Returns per-member validation and test
    accuracy of each member's best epoch, and the mean / best over members; with a workdir,
    checkpoints every epoch (a rerun resumes) and writes `sweep.json` and `metrics.jsonl`.
    """
    for name in ("init_from", "ideal_epochs"):
        if getattr(config, name):
            raise ValueError(f"{name}={getattr(config, name)!r}: a sweep starts every member "
                             f"from its own initialization; train a warm-started model with "
                             f"experiments/train.py")
    mesh = make_mesh(devices)
    config, dataset, batch_size = prepare_dataset(config, dataset, int(mesh.devices.size))
    members, tx, params, opt_state = init_members(config, seeds, learning_rates)
    stepper = sweep_stepper(config, tx, len(members), mesh)
    rows = stepper.local_rows(batch_size)
    wd = None if workdir is None else rundir.prepare(workdir)
    identity = rundir.run_identity({**config.to_dict(), "members": members}, RESUMABLE_CHANGES)
    state = fit(
        stepper, params, opt_state, schedule=schedule_of(config),
        train_batches=training_batches(config, dataset.train, batch_size, rows),
        validate=lambda p: stepper.evaluate(
            p, evaluation_batches(config, dataset.val, batch_size, rows), batch_size),
        step_rng=jax.random.split(jax.random.key(config.seed))[1],
        store=None if wd is None else CheckpointStore(wd / "checkpoints",
                                                      keep=config.checkpoint_keep),
        run=identity, workdir=wd, name="sweep ")
    test = stepper.evaluate(state.best_params, evaluation_batches(
        config, dataset.test, batch_size, rows), batch_size)["accuracy"]
    meta = state.meta
    best_val = np.asarray(meta["best_val_accuracy"])
    lrs = learning_rate_of(state.opt_state)
    rows = [{"seed": s, "learning_rate": lr, "val_accuracy": float(v), "test_accuracy": float(t),
             "best_epoch": int(e), "final_learning_rate": float(f)}
            for (s, lr), v, t, e, f in zip(members, best_val, test, meta["best_epoch"], lrs)]
    seconds = max(meta["train_seconds"], 1e-9)
    out = {"members": rows, "test_accuracy_mean": float(np.mean(test)),
           "test_accuracy_best": float(np.max(test)),
           "test_accuracy_of_best_val": float(test[int(np.argmax(best_val))]),
           "train_videos_per_s": meta["videos_seen"] / seconds,
           "member_videos_per_s": len(members) * meta["videos_seen"] / seconds}
    if wd is not None and is_primary():
        rundir.write_json(wd / "sweep.json", out)
    return out
