"""The pure pieces of a training step and the jitted, sharded steps built from them.

A problem is two pure functions, the thing that varies between the project's trainings:

  loss_fn(params, batch, rng, member) -> (mean loss, {"correct": number correct})
  eval_fn(params, batch, member) -> {"loss": summed loss, "correct": ..., "count": ...}

(`member` holds what differs between the members of a vmapped sweep beyond their parameters
and optimizer state, e.g. a weight decay; None for a single run.) `train_step` turns a loss
into one optimizer step; `Stepper` jits it and the evaluation, shards the batch over a
`jax.sharding.Mesh` of devices, and vmaps both over members when there are any.
"""
from __future__ import annotations

import zlib
from functools import partial
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from pixelrnn_jax.core import ModelConfig, PixelRNNModel
from pixelrnn_jax.training.distributed import barrier

__all__ = ["make_optimizer", "train_step", "classification_loss", "classification_eval",
           "make_mesh", "to_host", "Stepper", "pad_batch", "learning_rate_of",
           "set_learning_rate"]


def make_optimizer(learning_rate: float, encoder_lr_scale: float = 1.0,
                   decay_steps: int | None = None, encoder_key: str = "encoder"
                   ) -> optax.GradientTransformation:
    """Adam with an injectable learning rate (reduce-on-plateau changes it between epochs).

    The parameters under `encoder_key` (the on-sensor encoder) step `encoder_lr_scale` times
    the decoder's: every flip of a binary weight changes whole feature maps, so the encoder
    moves more slowly than the linear decoder that reads them (0 freezes it).
    `decay_steps`: a cosine decay of the rate to 0 over that many steps (a fixed schedule).
    """
    def encoder_mask(params):
        return {k: jax.tree.map(lambda _: k == encoder_key, v) for k, v in params.items()}

    def build(learning_rate):
        parts = [optax.scale_by_adam(),
                 optax.masked(optax.scale(encoder_lr_scale), encoder_mask)]
        if decay_steps is not None:
            parts.append(optax.scale_by_schedule(optax.cosine_decay_schedule(1.0, decay_steps)))
        parts.append(optax.scale_by_learning_rate(learning_rate))
        return optax.chain(*parts)

    return optax.inject_hyperparams(build)(learning_rate=learning_rate)


def learning_rate_of(opt_state):
    """The current learning rate (per member in a sweep) of a `make_optimizer` state."""
    return to_host(opt_state.hyperparams["learning_rate"]).astype(np.float64)


def set_learning_rate(opt_state, lr):
    opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return opt_state


def train_step(params, opt_state, batch, rng, member=None, *, loss_fn: Callable, tx):
    """One optimizer step; returns (params, opt_state, {"loss", "correct", "grad_norm"})."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, rng, member)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {"loss": loss, "correct": aux["correct"],
                               "grad_norm": optax.global_norm(grads)}


# ------------------------------------------------------------------ the video classifier


def _logits(params, video, cfg: ModelConfig, rng):
    """(b classes), or (b t classes) for cells scored frame by frame (RAW, S1.1.1)."""
    model = PixelRNNModel(cfg)
    if cfg.spec.frame_accuracy:
        return model.apply({"params": params}, video, rng, method=PixelRNNModel.frame_logits)
    return model.apply({"params": params}, video, rng)


def _losses_and_hits(logits, label):
    """Per-video loss and hit (b,): a frame-scored video counts the mean over its frames."""
    lab = label[:, None] if logits.ndim == 3 else label
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, lab)
    hits = (jnp.argmax(logits, -1) == lab).astype(jnp.float32)
    if logits.ndim == 3:
        return losses.mean(axis=1), hits.mean(axis=1)
    return losses, hits


def classification_loss(cfg: ModelConfig) -> Callable:
    """The loss of the video classifier: softmax cross-entropy; noise drawn where `cfg` has
    noise sites (the step's key is ignored otherwise, so noise-free steps are exact)."""
    def loss_fn(params, batch, rng, member=None):
        del member
        logits = _logits(params, batch["video"], cfg, rng if cfg.noisy else None)
        losses, hits = _losses_and_hits(logits, batch["label"])
        return losses.mean(), {"correct": hits.sum()}
    return loss_fn


def classification_eval(cfg: ModelConfig) -> Callable:
    """Summed loss and correct count over the valid entries (`mask`) of a padded batch."""
    def eval_fn(params, batch, member=None):
        del member
        losses, hits = _losses_and_hits(_logits(params, batch["video"], cfg, None),
                                        batch["label"])
        w = batch["mask"]
        return {"loss": jnp.sum(losses * w), "correct": jnp.sum(hits * w), "count": jnp.sum(w)}
    return eval_fn


# ------------------------------------------------------------------------- the steps


def make_mesh(devices=None) -> Mesh:
    """A one-axis ("data") mesh of `devices` (default: every device of every process). The
    devices of a process sit side by side, so a process feeds one block of a batch's rows."""
    devices = list(jax.devices() if devices is None else devices)
    if len({d.process_index for d in devices}) > 1:
        devices.sort(key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), ("data",))


def to_host(tree):
    """NumPy values of a pytree of arrays, those spread over other processes' devices too
    (gathered: every process must call it)."""
    def get(x):
        if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)
    return jax.tree.map(get, tree)


def pad_batch(batch: dict, size: int) -> dict:
    """Pads an evaluation batch to `size` (no recompilation) with a 0/1 `mask`."""
    n = len(batch["label"])
    if n > size:
        raise ValueError(f"batch of {n} larger than {size}")
    pad = size - n
    out = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
           for k, v in batch.items() if k != "mask"}
    out["label"] = out["label"].astype(np.int32)
    out["mask"] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return out


class Stepper:
    """The jitted train and eval steps of one problem.

    mesh: the devices of the run (parameters replicated, the batch split over them); None
    runs on the default device without sharding. members: None for a single run, else the
    number of vmapped members; their parameters and optimizer states are stacked on a
    leading axis and every member sees the same batch. When the members divide among the
    mesh's devices, the members are split over them instead of the batch (each device steps
    its members on the whole batch: no gradient crosses devices). `member_data` (given to
    `train` and `evaluate`, a pytree with the members' leading axis when `member_axis`) is
    handed to the loss. Parameters and optimizer state are donated to the step.

    With a mesh over several processes, each process hands `train` and `evaluate` only its
    rows of every batch (`local_rows`), and every process makes the same calls.
    """

    def __init__(self, loss_fn: Callable, eval_fn: Callable | None, tx, *,
                 mesh: Mesh | None = None, members: int | None = None,
                 member_axis: bool = False):
        self.tx, self.mesh, self.members = tx, mesh, members
        step = partial(train_step, loss_fn=loss_fn, tx=tx)
        evaluate = eval_fn
        if members is not None:
            axis = 0 if member_axis else None
            step = jax.vmap(step, in_axes=(0, 0, None, 0, axis))
            if eval_fn is not None:
                evaluate = jax.vmap(eval_fn, in_axes=(0, None, axis))
        self.split_members = (mesh is not None and members is not None
                              and members % mesh.devices.size == 0 and mesh.devices.size > 1)
        train_out = eval_out = None
        if mesh is not None:
            self.replicated = NamedSharding(mesh, P())
            self.sharded = NamedSharding(mesh, P("data"))
            self.state_sharding = self.sharded if self.split_members else self.replicated
            self.batch_sharding = self.replicated if self.split_members else self.sharded
            # the metrics replicated: every process reads them without a gather
            train_out = (self.state_sharding, self.state_sharding, self.replicated)
            eval_out = self.replicated
        self._train = jax.jit(step, donate_argnums=(0, 1), out_shardings=train_out)
        self._eval = None if evaluate is None else jax.jit(evaluate, out_shardings=eval_out)
        self._local = (1 if mesh is None else
                       sum(d.process_index == jax.process_index() for d in mesh.devices.flat))
        self.multiprocess = mesh is not None and self._local < mesh.devices.size
        self._compiled: set = set()

    @property
    def devices(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.devices.size)

    def local_rows(self, batch_size: int) -> slice:
        """The rows of a global batch of `batch_size` this process feeds (all of them with
        one process, or when the members are split and every device sees the whole
        batch)."""
        if not self.multiprocess or self.split_members:
            return slice(0, batch_size)
        spans = sorted((s[0].start or 0, batch_size if s[0].stop is None else s[0].stop)
                       for s in self.batch_sharding.addressable_devices_indices_map(
                           (batch_size,)).values())
        if any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
            raise ValueError(f"the devices of process {jax.process_index()} hold rows "
                             f"{spans} of a batch: not one block (build the mesh with "
                             f"make_mesh)")
        return slice(spans[0][0], spans[-1][1])

    def global_rows(self, local_rows: int) -> int:
        """The rows of the global batch of which this process feeds `local_rows`."""
        if not self.multiprocess or self.split_members:
            return local_rows
        return local_rows * int(self.mesh.devices.size) // self._local

    def put_batch(self, batch: dict) -> dict:
        if self.mesh is None:
            return {k: jnp.asarray(v) for k, v in batch.items()}
        if self.multiprocess:
            return {k: jax.make_array_from_process_local_data(
                        self.batch_sharding, np.asarray(v),
                        (self.global_rows(len(v)),) + np.shape(v)[1:])
                    for k, v in batch.items()}
        return {k: jax.device_put(np.asarray(v), self.batch_sharding) for k, v in batch.items()}

    def replicate(self, tree):
        return tree if self.mesh is None else jax.device_put(tree, self.replicated)

    def place(self, tree):
        """Parameters or optimizer state where the step wants them: replicated, or split by
        member. The same values on every process (a seeded initialization, a checkpoint):
        with several, that is checked once for the whole tree."""
        if self.mesh is None:
            return tree
        if not self.multiprocess:
            return jax.device_put(tree, self.state_sharding)
        sharding = self.state_sharding

        def local(x):   # a value this process holds whole
            return not (isinstance(x, jax.Array) and (x.sharding == sharding
                                                      or not x.is_fully_addressable))

        def put(x):
            if not local(x):
                return x if x.sharding == sharding else jax.device_put(x, sharding)
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

        leaves = [np.ascontiguousarray(x) for x in jax.tree.leaves(tree) if local(x)]
        if leaves:
            from jax.experimental import multihost_utils
            barrier("place")   # the processes may arrive minutes apart (loading data)
            # one collective for the tree, not one per leaf
            digest = np.asarray([zlib.crc32(x.tobytes()) for x in leaves], np.uint32)
            multihost_utils.assert_equal(digest, "parameters or optimizer state differ "
                                                 "between the processes")
        return jax.tree.map(put, tree)

    def member_keys(self, rng):
        return rng if self.members is None else jax.random.split(rng, self.members)

    def _run(self, name: str, fn, *args):
        """fn(*args); with several processes, each first compiles, then all wait for the
        slowest: the collectives' first rendezvous allows the processes only seconds apart,
        and a process whose compilation cache is warm (on CPU, process 0's alone) is done
        minutes before the others."""
        if self.multiprocess:
            key = (name, tuple((np.shape(x), str(getattr(x, "dtype", type(x))))
                               for x in jax.tree.leaves(args)))
            if key not in self._compiled:
                fn.lower(*args).compile()
                barrier(f"compiled-{name}")
                self._compiled.add(key)
        return fn(*args)

    def train(self, params, opt_state, batch, rng, member_data=None):
        return self._run("train", self._train, params, opt_state, self.put_batch(batch),
                         self.member_keys(rng), member_data)

    def evaluate(self, params, batches: Iterable[dict], batch_size: int,
                 member_data=None) -> dict:
        """Mean loss and accuracy over `batches` (each padded to `batch_size`: the rows of
        this process, `local_rows`, with several); per member (arrays) in a sweep."""
        rows = self.local_rows(batch_size)
        tot = None
        for batch in batches:
            out = self._run("evaluate", self._eval, params,
                            self.put_batch(pad_batch(batch, rows.stop - rows.start)),
                            member_data)
            out = {k: np.asarray(v, np.float64) for k, v in to_host(out).items()}
            tot = out if tot is None else {k: tot[k] + out[k] for k in tot}
        if tot is None:
            raise ValueError("evaluation on an empty split")
        n = np.maximum(tot["count"], 1.0)
        out = {"loss": tot["loss"] / n, "accuracy": tot["correct"] / n}
        if self.members is None:
            out = {k: float(v) for k, v in out.items()}
        return {**out, "count": int(np.max(tot["count"]))}
