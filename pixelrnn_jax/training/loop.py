"""The one epoch loop of the project: every training (a run, a vmapped sweep, the Table 1
encoders, the readout decoder) goes through `fit`.

Per epoch: the steps over `train_batches(epoch)` with a key folded from (epoch, step), a
guard that stops at the first non-finite loss or gradient, validation, the reduce-on-plateau
learning rate, the best parameters by validation accuracy, one line of metrics in
`metrics.jsonl`, a checkpoint, and a progress line with an ETA. A rerun with a checkpoint
store resumes after the last complete epoch and reproduces the uninterrupted run.

A sweep (a `Stepper` with members) keeps all of it per member: its own learning rate on its
own plateau, its own best epoch; the per-member values are lists in the metrics and meta.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.training import rundir
from pixelrnn_jax.training.checkpoints import CheckpointStore
from pixelrnn_jax.training.distributed import is_primary
from pixelrnn_jax.training.errors import TrainingError
from pixelrnn_jax.training.steps import Stepper, learning_rate_of, set_learning_rate, to_host

__all__ = ["Schedule", "LoopState", "fit", "reduce_on_plateau"]

log = logging.getLogger("pixelrnn_jax")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long and at which rate: `num_epochs`; the learning rate decays by
    `plateau_factor` (floored at `min_learning_rate`) once the validation loss has not
    improved by 1e-4 for more than `plateau_patience` epochs (None: no decay)."""

    num_epochs: int
    plateau_patience: int | None = None
    plateau_factor: float = 0.5
    min_learning_rate: float = 1e-5


def reduce_on_plateau(lr, best_loss, bad_epochs, val_loss, schedule):
    """One epoch of reduce-on-plateau (torch's ReduceLROnPlateau on the validation loss).

    `schedule`: anything with plateau_patience, plateau_factor and min_learning_rate (a
    `Schedule` or a `TrainConfig`). Works on scalars and, element by element, on arrays (one
    entry per sweep member). Returns (learning rate, best loss, epochs without improvement).
    """
    lr, best_loss, val_loss = (np.asarray(a, np.float64) for a in (lr, best_loss, val_loss))
    better = val_loss < best_loss - 1e-4
    best_loss = np.where(better, val_loss, best_loss)
    bad_epochs = np.where(better, 0, np.asarray(bad_epochs) + 1)
    decay = bad_epochs > schedule.plateau_patience
    lr = np.where(decay, np.maximum(lr * schedule.plateau_factor, schedule.min_learning_rate),
                  lr)
    bad_epochs = np.where(decay, 0, bad_epochs)
    if lr.ndim == 0:
        return float(lr), float(best_loss), int(bad_epochs)
    return lr, best_loss, bad_epochs


@dataclasses.dataclass
class LoopState:
    """What a checkpoint holds: parameters, optimizer state, the best parameters so far and
    the loop's host state (`meta`: epoch, plateau counters, best validation, timing)."""

    params: dict
    opt_state: object
    best_params: dict
    meta: dict

    def tree(self) -> dict:
        return {"params": self.params, "opt_state": self.opt_state,
                "best_params": self.best_params}


def _per_member(value, members: int | None):
    return value if members is None else [value] * members


def _host(value):
    """Meta and metric values as JSON: floats and ints, lists per member."""
    a = np.asarray(value)
    return a.item() if a.ndim == 0 else a.tolist()


def _finite(*values) -> bool:
    return all(np.isfinite(np.asarray(v)).all() for v in values)


def _select(improved, new, old):
    if np.ndim(improved) == 0:
        return jax.tree.map(jnp.copy, new) if improved else old
    sel = jnp.asarray(improved)
    return jax.tree.map(
        lambda a, b: jnp.where(sel.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


def _fmt(values, spec: str) -> str:
    a = np.asarray(values)
    return format(a.item(), spec) if a.ndim == 0 else " ".join(format(v, spec) for v in a)


def fit(stepper: Stepper, params, opt_state, *, schedule: Schedule,
        train_batches: Callable[[int], Iterable[dict]],
        validate: Callable[[dict], dict] | None = None, step_rng,
        store: CheckpointStore | None = None, run: dict | None = None, workdir=None,
        name: str = "", member_data=None, progress_every: int = 1) -> LoopState:
    """Trains for `schedule.num_epochs` epochs and returns the final `LoopState`.

    train_batches(epoch): the batches of an epoch (epochs count from 1; deterministic in
      the epoch when the run is to resume exactly). validate(params): {"loss", "accuracy"}
      per member, or None for no validation (the last epoch's parameters are the best).
    step_rng: the key of every step, folded with (epoch, step), split per member.
    store, run, workdir: checkpoints (resume), the run's identity (a checkpoint of another
      run is refused) and the folder of metrics.jsonl; all optional. With several processes
      every process calls `fit` alike (its rows of each batch in `train_batches`), all of
      them write the checkpoints and process 0 alone the metrics.
    member_data: handed to the members' loss (see `Stepper`). progress_every: log one
      progress line every that many epochs (and at the last).
    """
    members = stepper.members
    meta = {"epoch": 0, "best_val_accuracy": _per_member(-1.0, members),
            "best_epoch": _per_member(0, members), "bad_epochs": _per_member(0, members),
            "best_val_loss": _per_member(math.inf, members), "train_seconds": 0.0,
            "videos_seen": 0, "run": run}
    # placed before the restore: the checkpoint is read straight into this run's sharding,
    # whatever the devices and processes that wrote it
    params, opt_state = stepper.place((params, opt_state))
    state = LoopState(params, opt_state, params, meta)
    metrics = None if workdir is None else rundir.prepare(workdir) / "metrics.jsonl"
    if not is_primary():   # the other processes of a distributed run write no metrics
        metrics = None
    if store is not None:
        restored = store.restore_latest(
            state.tree(), check=lambda saved: rundir.check_same_run(saved.get("run"), run, workdir))
        if restored is not None:
            tree, meta = restored
            state = LoopState(tree["params"], tree["opt_state"], tree["best_params"], meta)
            log.info("%sresuming from %s after epoch %d", name, store.directory, meta["epoch"])
    if metrics is not None:
        rundir.truncate_metrics(metrics, state.meta["epoch"])
    params, opt_state, best_params = stepper.place(
        (state.params, state.opt_state, state.best_params))
    best_params = jax.tree.map(jnp.copy, best_params)   # params are donated to the step
    meta = state.meta

    for epoch in range(meta["epoch"] + 1, schedule.num_epochs + 1):
        t0 = time.perf_counter()
        tot_loss = tot_correct = 0.0
        n_seen = 0
        for step, batch in enumerate(train_batches(epoch)):
            rng = jax.random.fold_in(jax.random.fold_in(step_rng, epoch), step)
            params, opt_state, out = stepper.train(params, opt_state, batch, rng, member_data)
            out = to_host(out)
            loss, gnorm = np.asarray(out["loss"], np.float64), np.asarray(out["grad_norm"])
            if not _finite(loss, gnorm):
                where = "" if members is None else \
                    f" (members {np.flatnonzero(~np.isfinite(loss + gnorm)).tolist()})"
                kept = (f"the last good checkpoint (epoch {meta['epoch']}) is kept in "
                        f"{store.directory}" if store is not None and meta["epoch"]
                        else "no checkpoint was written")
                raise TrainingError(
                    f"{name}non-finite loss or gradient at epoch {epoch}, step {step}{where} "
                    f"(loss={_fmt(loss, 'g')}, gradient norm={_fmt(gnorm, 'g')}); {kept}; "
                    f"lower --learning_rate or check the training data")
            size = stepper.global_rows(len(batch["label"]))
            tot_loss = tot_loss + loss * size
            tot_correct = tot_correct + np.asarray(out["correct"], np.float64)
            n_seen += size
        if n_seen == 0:
            raise TrainingError(f"{name}epoch {epoch} has no training batch; lower the "
                                f"batch size")
        train_time = time.perf_counter() - t0
        lr = learning_rate_of(opt_state)
        record = {"epoch": epoch, "train_loss": _host(tot_loss / n_seen),
                  "train_accuracy": _host(tot_correct / n_seen)}
        if validate is not None:
            val = validate(params)
            if schedule.plateau_patience is not None:
                new_lr, best_loss, bad = reduce_on_plateau(
                    lr, meta["best_val_loss"], meta["bad_epochs"], val["loss"], schedule)
                meta["best_val_loss"], meta["bad_epochs"] = _host(best_loss), _host(bad)
                if np.any(np.asarray(new_lr) != lr):
                    opt_state = stepper.place(set_learning_rate(opt_state, new_lr))
                lr = np.asarray(new_lr)
            improved = np.asarray(val["accuracy"]) > np.asarray(meta["best_val_accuracy"])
            meta["best_val_accuracy"] = _host(np.where(improved, val["accuracy"],
                                                       meta["best_val_accuracy"]))
            meta["best_epoch"] = _host(np.where(improved, epoch, meta["best_epoch"]))
            best_params = _select(improved, params, best_params)
            record.update(val_loss=_host(val["loss"]), val_accuracy=_host(val["accuracy"]))
        meta["epoch"] = epoch
        meta["train_seconds"] += train_time
        meta["videos_seen"] += n_seen
        record.update(learning_rate=_host(lr), videos_per_s=n_seen / train_time,
                      epoch_seconds=train_time)
        # the record first: a run killed before the checkpoint is complete drops it again
        # when it resumes (truncate_metrics), one killed after keeps it
        if metrics is not None:
            rundir.append_metrics(metrics, record)
        if store is not None:
            save_best = best_params if validate is not None else params
            store.save(epoch, {"params": params, "opt_state": opt_state,
                               "best_params": save_best}, meta)
        remaining = (schedule.num_epochs - epoch) * (time.perf_counter() - t0)
        if epoch % progress_every and epoch != schedule.num_epochs:
            continue
        val_text = "" if validate is None else f"  val {_fmt(record['val_accuracy'], '.3f')}"
        log.info("%sepoch %3d/%d  loss %s  train %s%s  lr %s  %.0f videos/s  ETA %s", name,
                 epoch, schedule.num_epochs, _fmt(record["train_loss"], ".4f"),
                 _fmt(record["train_accuracy"], ".3f"), val_text, _fmt(lr, ".2g"),
                 record["videos_per_s"], rundir.format_seconds(remaining))
    if validate is None:
        best_params = params
    return LoopState(params, opt_state, best_params, meta)
