"""Orbax checkpoints of a training run: one per epoch, the newest few kept.

Each checkpoint holds the parameters, the optimizer state, the best parameters so far and a
JSON record of the loop's host state (epoch, plateau counters, best validation accuracy).
Orbax writes a step into a temporary folder and renames it when complete, so a run killed
while saving leaves no half-written step behind; a step that cannot be read back (truncated,
corrupted) is reported and the previous one is used.
"""
from __future__ import annotations

import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

log = logging.getLogger("pixelrnn_jax")


class CheckpointStore:
    def __init__(self, directory, keep: int = 3):
        self.directory = Path(directory).absolute()
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 enable_async_checkpointing=False))

    def steps(self) -> list[int]:
        return sorted(self._mngr.all_steps())

    def save(self, step: int, tree, meta: dict) -> None:
        try:
            self._mngr.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)), force=True)
            self._mngr.wait_until_finished()
        except OSError as e:
            from pixelrnn_jax.train import TrainingError
            raise TrainingError(f"could not write checkpoint {step} to {self.directory} "
                                f"({e.strerror or e}); free disk space or choose another "
                                f"--workdir; earlier checkpoints are intact") from None

    def restore_latest(self, template):
        """(tree, meta) of the newest readable step, or None when there is none."""
        self._mngr.reload()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        for step in reversed(self.steps()):
            try:
                r = self._mngr.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                return r.state, dict(r.meta)
            except Exception as e:  # noqa: BLE001 - any unreadable step falls back
                log.warning("checkpoint %d in %s is unreadable (%s: %s); using the previous "
                            "one", step, self.directory, type(e).__name__,
                            str(e).splitlines()[0][:200] if str(e) else "")
        return None
