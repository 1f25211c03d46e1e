"""The error a training run raises when it cannot continue."""
from __future__ import annotations

__all__ = ["TrainingError"]


class TrainingError(RuntimeError):
    """A run that cannot continue (non-finite loss, unwritable workdir, full disk, ...); its
    message is one line that says what happened and what to do."""
