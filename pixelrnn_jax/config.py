"""Typed model configuration, validated on construction."""
from __future__ import annotations

import dataclasses

PRECISIONS = ("1bit", "32bit")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the on-sensor encoder and the off-sensor decoder look like.

    Attributes:
      cnn_layers: in-pixel CNN layers before the recurrent cell (0, 1 or 2).
      cell: recurrent cell or camera baseline, a name registered in `pixelrnn_jax.cells`.
      precision: "1bit" (binary weights and features) or "32bit" (full precision).
      m: steepness of the surrogate gradients (tanh(m x) / sigmoid(m x)).
      K: frames between readouts; the hidden state is reset to all ones every K frames.
      num_classes: outputs of the off-sensor decoder.
      frame_size: side of the square frames the in-pixel encoder sees (64 on SCAMP-5).
      input_pool: max-pool window applied to the intensity frames first (Fig. 3 bandwidth).
      noise_input, noise_cnn, noise_gate, noise_out: std of Gaussian noise added before the
        input binarization, the CNN threshold, the recurrent gates and the readout o_t
        (noise-aware training, paper Sec. 5.2; the authors used 0.6, 0.6, 0.6 and 1.0).
      delta: threshold of the difference and event camera baselines.
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

    def __post_init__(self):
        from pixelrnn_jax import cells  # registry lives with the cells

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        spec = cells.get_cell_spec(self.cell)
        if self.precision not in spec.precisions:
            raise ValueError(
                f"cell {self.cell!r} exists only at precision {spec.precisions}; "
                f"got precision={self.precision!r}")
        if self.cnn_layers not in (0, 1, 2):
            raise ValueError(f"cnn_layers must be 0, 1 or 2, got {self.cnn_layers}")
        if not spec.uses_cnn and self.cnn_layers:
            raise ValueError(f"cell {self.cell!r} is a camera baseline without a CNN: "
                             f"set cnn_layers=0 (got {self.cnn_layers})")
        if self.K < 1:
            raise ValueError(f"K must be >= 1, got {self.K}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.m <= 0:
            raise ValueError(f"surrogate steepness m must be > 0, got {self.m}")
        if self.input_pool < 1:
            raise ValueError(f"input_pool must be >= 1, got {self.input_pool}")
        for name in ("noise_input", "noise_cnn", "noise_gate", "noise_out"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        side = self.plane_size
        if self.cnn_layers and side % 4:
            raise ValueError(
                f"the in-pixel CNN needs planes whose side is a multiple of 4; frame_size "
                f"{self.frame_size} pooled by {self.input_pool} gives {side}")
        if side < 1:
            raise ValueError(f"input_pool {self.input_pool} is larger than frame_size "
                             f"{self.frame_size}")

    @property
    def binary(self) -> bool:
        return self.precision == "1bit"

    @property
    def plane_size(self) -> int:
        """Side of the planes the encoder works on after `input_pool`."""
        return self.frame_size // self.input_pool

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
