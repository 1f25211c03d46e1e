"""Typed training configuration, validated on construction.

Its fields and those of the `ModelConfig` it holds are the command-line flags of
experiments/train.py (`pixelrnn_jax.cli`), with the defaults and descriptions written here.
"""
from __future__ import annotations

import dataclasses
import math

from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.data import VIDEO_DATASETS

__all__ = ["TrainConfig"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
      model: The encoder and decoder (their fields are flags of their own).
      dataset: Dataset; synthetic_gesture is built in, the others read --data_dir.
      data_dir: Folder of the real dataset as distributed.
      batch_size: Global batch size (split over the devices).
      per_device_batch_size: If > 0, the batch per device (global batch = this x devices).
      num_epochs: Epochs; a rerun with more epochs continues the run.
      learning_rate: Initial Adam learning rate of the decoder.
      encoder_lr_scale: Encoder learning rate as a fraction of the decoder's.
      seed: Seed of initialization, data order and noise.
      num_frames: Frames per clip (a multiple of K).
      shift_fraction: Random spatial shift in training, a fraction of the frame side.
      eval_clip: The clip validation and test score: end (end-aligned, its last frame the
        video's last) or first (from the first frame, the paper's S2.1).
      plateau_patience: Epochs without validation-loss improvement before the rate decays.
      plateau_factor: Factor of each learning-rate decay.
      min_learning_rate: Floor of the decayed learning rate.
      checkpoint_keep: Checkpoints kept (one per epoch, the newest).
      export_weights: Write the binary weights the sensor loads (binary models).
      max_videos: If > 0, a class-balanced subset of about this many videos (smoke tests).
      init_from: Workdir of a finished run of the same model: start from its best parameters.
      ideal_epochs: The first this many of the num_epochs train through the paper's ideal
        program whatever --sensor (a run of its own in W/ideal_warmup); the rest train
        through --sensor from its best parameters, at the learning rate it ended on times
        sensor_lr_scale.
      sensor_lr_scale: The learning rate of the epochs after ideal_epochs, as a fraction of
        the rate the warm-up ended on (fine-tuning through the sensor's errors).
    """

    model: ModelConfig = ModelConfig()
    dataset: str = "synthetic_gesture"
    data_dir: str | None = None
    batch_size: int = 32
    per_device_batch_size: int = 0
    num_epochs: int = 30
    learning_rate: float = 1e-2
    encoder_lr_scale: float = 0.1
    seed: int = 0
    num_frames: int = 16
    shift_fraction: float = 0.1
    eval_clip: str = "end"
    plateau_patience: int = 4
    plateau_factor: float = 0.5
    min_learning_rate: float = 1e-5
    checkpoint_keep: int = 3
    export_weights: bool = True
    max_videos: int = 0
    init_from: str | None = None
    ideal_epochs: int = 0
    sensor_lr_scale: float = 1.0

    def __post_init__(self):
        checks = (("dataset", self.dataset in VIDEO_DATASETS, f"one of {VIDEO_DATASETS}"),
                  ("batch_size", self.batch_size >= 1, ">= 1"),
                  ("num_epochs", self.num_epochs >= 0, ">= 0"),
                  ("per_device_batch_size", self.per_device_batch_size >= 0, ">= 0"),
                  ("learning_rate", 0 < self.learning_rate < math.inf, "> 0 and finite"),
                  ("encoder_lr_scale", 0 <= self.encoder_lr_scale < math.inf,
                   ">= 0 and finite"),
                  ("num_frames", self.num_frames >= 1, ">= 1"),
                  ("shift_fraction", 0 <= self.shift_fraction < 0.5, "in [0, 0.5)"),
                  ("eval_clip", self.eval_clip in ("end", "first"), "end or first"),
                  ("plateau_patience", self.plateau_patience >= 0, ">= 0"),
                  ("plateau_factor", 0 < self.plateau_factor <= 1, "in (0, 1]"),
                  ("min_learning_rate", self.min_learning_rate >= 0, ">= 0"),
                  ("checkpoint_keep", self.checkpoint_keep >= 1, ">= 1"),
                  ("max_videos", self.max_videos >= 0, ">= 0 (0: all)"),
                  ("ideal_epochs", self.ideal_epochs >= 0, ">= 0"),
                  ("sensor_lr_scale", 0 < self.sensor_lr_scale < math.inf, "> 0 and finite"))
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: it must be "
                                 f"{valid}")
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

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The inverse of `to_dict` (a run's results.json)."""
        d = dict(d)
        return cls(model=ModelConfig(**d.pop("model")), **d)
