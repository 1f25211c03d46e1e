"""Orbax checkpoints of a training run: one per epoch, the newest few kept.

Each checkpoint holds the parameters, the optimizer state, the best parameters so far and a
JSON record of the loop's host state (epoch, plateau counters, best validation accuracy).
Orbax writes a step into a temporary folder and renames it when complete, so a run killed
while saving leaves no half-written step behind (the temporary folder is removed when the
store is next opened, or at once when a save fails). A step that cannot be read back
(truncated, corrupted) is reported, moved out of the way to `<directory>.unreadable/` so the
run can write that step again, and the previous one is used.

With several processes (`training.distributed`) every process calls `save` and
`restore_latest` alike: orbax writes each array once, from the processes that hold its
pieces, and reads it back into whatever sharding the template asks for, so a checkpoint
written by one process count resumes under another. The folder must be one that every
process sees (a shared file system or a bucket).
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import Callable

import jax
import orbax.checkpoint as ocp

from pixelrnn_jax.training.distributed import barrier, is_primary
from pixelrnn_jax.training.errors import TrainingError

__all__ = ["CheckpointStore"]

log = logging.getLogger("pixelrnn_jax")

_TMP_SUFFIX = ".orbax-checkpoint-tmp"


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax logs a failed write with a traceback from its writer thread; the store reports
    the failure itself, in one line."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class CheckpointStore:
    def __init__(self, directory, keep: int = 3):
        self.directory = Path(directory).absolute()
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 cleanup_tmp_directories=True,
                                                 enable_async_checkpointing=False))

    def steps(self) -> list[int]:
        return sorted(self._mngr.all_steps())

    def save(self, step: int, tree, meta: dict) -> None:
        try:
            with _quiet_orbax():
                self._mngr.save(step, args=ocp.args.Composite(
                    state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)),
                    force=True)
                self._mngr.wait_until_finished()
        except OSError as e:
            for tmp in self.directory.glob(f"{step}{_TMP_SUFFIX}*"):
                shutil.rmtree(tmp, ignore_errors=True)
            raise TrainingError(f"could not write checkpoint {step} to {self.directory} "
                                f"({e.strerror or e}); free disk space or choose another "
                                f"--workdir; earlier checkpoints are intact") from None

    def restore_latest(self, template, check: Callable[[dict], None] | None = None):
        """(tree, meta) of the newest readable step, or None when there is none.

        `check(meta)` is called with the newest step's meta before its arrays are read; it
        raises (e.g. ValueError) when the checkpoints belong to a different run. The arrays
        come back with the shardings of `template`'s arrays (on its mesh).
        """
        self._mngr.reload()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        for step in reversed(self.steps()):
            try:
                meta = dict(self._mngr.restore(step, args=ocp.args.Composite(
                    meta=ocp.args.JsonRestore())).meta)
            except Exception as e:  # noqa: BLE001 - any unreadable step falls back
                self._set_aside(step, e)
                continue
            if check is not None:
                check(meta)
            try:
                r = self._mngr.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                return r.state, dict(r.meta)
            except Exception as e:  # noqa: BLE001
                self._set_aside(step, e)
        return None

    def _set_aside(self, step: int, error: Exception) -> None:
        aside = self.directory.with_name(self.directory.name + ".unreadable")
        target = aside / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
        where = f"set aside by process 0 in {aside}"
        if is_primary():
            try:
                aside.mkdir(exist_ok=True)
                shutil.move(str(self.directory / str(step)), str(target))
                where = f"moved to {target}"
            except OSError as e:
                where = f"could not be moved aside ({e.strerror})"
        barrier(f"checkpoint-{step}-set-aside")
        first = str(error).splitlines()[0][:200] if str(error) else ""
        log.warning("checkpoint %d in %s is unreadable (%s: %s); %s; using the previous one",
                    step, self.directory, type(error).__name__, first, where)
        self._mngr.reload()
