"""Paper Fig. 3: accuracy against readout bandwidth, controlled by max-pooling the intensity
frames before PixelRNN.

Windows: 1x1 .. 8x8, then multiples of 8 up to 64x64 (`WINDOWS`). The 64x64 frames are
max-pooled with non-overlapping windows, floor division (`ModelConfig.input_pool`: plane
side 64 // w, a window that does not divide 64 drops the last 64 % w rows and columns), so
the readout per 16 frames is (64 // w)^2: 4,096, 1,024, 441, 256, 144, 100, 81, 64, then
16, 4, 4, 1, 1, 1, 1 values.

Encoder: PixelRNN directly on the binarized pooled frames (cnn_layers=0) for every window,
so that every point of the curve is the same encoder and differs only in its input size.
The in-pixel CNN needs plane sides that are multiples of 4 (its 4x4 pooling and 4x4 tiling);
cnn_layers=1 or 2 puts it in front of PixelRNN where the pooled plane allows it (windows
1, 2, 4, 5, 8, 16: sides 64, 32, 16, 12, 8, 4) and falls back to cnn_layers=0 elsewhere;
each record says which it used.
"""
from __future__ import annotations

from pixelrnn_jax.core import ModelConfig, accounting

__all__ = ["WINDOWS", "window_config", "build_record", "markdown"]

WINDOWS = tuple(range(1, 9)) + tuple(range(16, 65, 8))
"""Max-pool windows of Fig. 3: 1..8, then 16, 24, ..., 64."""


def window_config(window: int, cnn_layers: int = 0, precision: str = "1bit",
                  frame_size: int = 64, m: float = 2.0) -> ModelConfig:
    """PixelRNN config of one window; the CNN only where the pooled side is a multiple of 4."""
    if not 1 <= window <= frame_size:
        raise ValueError(f"window {window} must be between 1 and the frame size {frame_size}")
    if cnn_layers not in (0, 1, 2):
        raise ValueError(f"--cnn_layers must be 0, 1 or 2, got {cnn_layers}")
    side = frame_size // window
    layers = cnn_layers if side % 4 == 0 else 0
    return ModelConfig(cell="pixelrnn", cnn_layers=layers, precision=precision,
                       frame_size=frame_size, input_pool=window, m=m)


def build_record(window, cfg, sweep=None) -> dict:
    return {"window": window, "plane_size": cfg.plane_size, "cnn_layers": cfg.cnn_layers,
            "precision": cfg.precision,
            "readout_values_per_16_frames": accounting.readout_values_per_16_frames(cfg),
            "test_accuracy_mean": None if sweep is None else sweep["test_accuracy_mean"],
            "test_accuracy_best": None if sweep is None else sweep["test_accuracy_best"],
            "members": None if sweep is None else sweep["members"]}


def markdown(records) -> str:
    lines = ["| window | plane | CNN layers | readout / 16 frames | acc. % mean | acc. % best |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        m, b = r["test_accuracy_mean"], r["test_accuracy_best"]
        lines.append(f"| {r['window']}x{r['window']} | {r['plane_size']} | {r['cnn_layers']} "
                     f"| {r['readout_values_per_16_frames']:,} "
                     f"| {'' if m is None else f'{100 * m:.1f}'} "
                     f"| {'' if b is None else f'{100 * b:.1f}'} |")
    return "\n".join(lines) + "\n"
