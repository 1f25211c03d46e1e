"""Typed model configuration, validated on construction.

Every field is also a command-line flag of the experiment scripts (`pixelrnn_jax.cli`
generates them from the fields, their defaults and the descriptions below), so a default is
written once, here.
"""
from __future__ import annotations

import dataclasses

from pixelrnn_jax.core.cells import CellContext, CellSpec, get_cell_spec
from pixelrnn_jax.core.sensors import check_sensor

__all__ = ["ModelConfig", "PRECISIONS", "NOISE_SITES", "CAMERA_REFERENCES"]

PRECISIONS = ("1bit", "32bit")

# Where noise-aware training adds Gaussian noise: the std fields of ModelConfig.
NOISE_SITES = ("noise_input", "noise_cnn", "noise_gate", "noise_out")
CAMERA_REFERENCES = ("first_frame", "zero")
DECODERS = ("standardized", "plain")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the on-sensor encoder and the off-sensor decoder look like.

    Attributes:
      cnn_layers: In-pixel CNN layers before the recurrent cell (0, 1 or 2).
      cell: Recurrent cell or camera baseline, a name registered in pixelrnn_jax.core.cells.
      precision: 1bit (binary weights and features) or 32bit (full precision).
      m: Steepness of the surrogate gradients (tanh(m x) / sigmoid(m x)).
      K: Frames between readouts; the hidden state is reset to all ones every K frames.
      num_classes: Outputs of the off-sensor decoder (set from the dataset when training).
      frame_size: Side of the square frames the in-pixel encoder sees (64 on SCAMP-5).
      input_pool: Max-pool window applied to the intensity frames first (Fig. 3 bandwidth).
      noise_input: Std of Gaussian noise before the input binarization (noise-aware training).
      noise_cnn: Std of Gaussian noise before the CNN threshold.
      noise_gate: Std of Gaussian noise before the recurrent gate quantizers.
      noise_out: Std of Gaussian noise on the readout o_t.
      delta: Threshold of the difference and event camera baselines.
      camera_reference: What the difference and event cameras compare a window's first frame
        with: first_frame (the paper's cameras: the first frame itself, so it emits nothing)
        or zero (the mean of normalized intensities, so it reports each pixel's polarity).
      decoder: The off-sensor fully connected layer's input: standardized (each video's
        readout at zero mean and unit variance, scaled by 1/sqrt(D): indifferent to the
        sensor's gain and offset) or plain (the paper's layer on the raw readout).
      sensor: The program the encoder's forward pass follows: ideal (the paper's equations)
        or chip (the authors' program as it runs on SCAMP-5, its calibrated noise drawn at
        every training step; the binary 1-CNN PixelRNN on 64x64 frames, K=16).
      sensor_calibration: The error model of sensor=chip: default (the shipped
        calibration), ideal (no errors) or the path of a calibrate_sensor.py calibration.json.
    """

    cnn_layers: int = 1
    cell: str = "pixelrnn"
    precision: str = "1bit"
    m: float = 2.0
    K: int = 16
    num_classes: int = 9
    frame_size: int = 64
    input_pool: int = 1
    noise_input: float = 0.0
    noise_cnn: float = 0.0
    noise_gate: float = 0.0
    noise_out: float = 0.0
    delta: float = 0.1
    camera_reference: str = "first_frame"
    decoder: str = "standardized"
    sensor: str = "ideal"
    sensor_calibration: str = "default"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        spec = self.spec
        if self.precision not in spec.precisions:
            raise ValueError(
                f"cell {self.cell!r} exists only at precision {spec.precisions}; "
                f"got precision={self.precision!r}")
        if self.cnn_layers not in (0, 1, 2):
            raise ValueError(f"cnn_layers must be 0, 1 or 2, got {self.cnn_layers}")
        if not spec.uses_cnn and self.cnn_layers:
            raise ValueError(f"cell {self.cell!r} is a camera baseline without a CNN: "
                             f"set cnn_layers=0 (got {self.cnn_layers})")
        if self.camera_reference not in CAMERA_REFERENCES:
            raise ValueError(f"camera_reference must be one of {CAMERA_REFERENCES}, got "
                             f"{self.camera_reference!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.K < 1:
            raise ValueError(f"K must be >= 1, got {self.K}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not self.m > 0:
            raise ValueError(f"surrogate steepness m must be > 0, got {self.m}")
        if self.input_pool < 1:
            raise ValueError(f"input_pool must be >= 1, got {self.input_pool}")
        for name in NOISE_SITES:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        check_sensor(self)
        side = self.plane_size
        if side < 1:
            raise ValueError(f"input_pool {self.input_pool} is larger than frame_size "
                             f"{self.frame_size}")
        if self.cnn_layers and side % 4:
            raise ValueError(
                f"the in-pixel CNN needs planes whose side is a multiple of 4; frame_size "
                f"{self.frame_size} pooled by {self.input_pool} gives {side}")

    @property
    def spec(self) -> CellSpec:
        """The registered cell (`cell` resolved)."""
        return get_cell_spec(self.cell)

    @property
    def binary(self) -> bool:
        return self.precision == "1bit"

    @property
    def context(self) -> CellContext:
        """What a cell's equations read of the config."""
        return CellContext(m=self.m, binary=self.binary, delta=self.delta,
                           camera_reference=self.camera_reference)

    @property
    def plane_size(self) -> int:
        """Side of the planes the encoder works on after `input_pool`."""
        return self.frame_size // self.input_pool

    @property
    def noise(self) -> dict:
        """The noise sites of noise-aware training, {field: std}."""
        return {name: getattr(self, name) for name in NOISE_SITES}

    @property
    def noisy(self) -> bool:
        """Whether a training step draws noise (and needs a PRNG key)."""
        return self.sensor != "ideal" or any(v > 0 for v in self.noise.values())

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
