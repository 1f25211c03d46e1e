"""Calibrating the chip mode's non-idealities to real readouts, with video-level
cross-validation.

Data: videos whose input frames and real SCAMP-5 readouts are both known (45 Cambridge test
videos in the data folder). Scores: per video, the Pearson correlation between simulated and
real readout over crop pixels 1..62 in both axes (`correlation`), averaged over videos.

Procedure (`calibrate`):

1. Decision noise. For every point of a small grid of (gain, cnn_std, gate_std) the
   expected readout's input and hidden parts are computed by `draws` noisy runs of the chip
   program (`chip.readout_parts`), once for all videos (the runs use no real readout); the
   chosen points are then rerun with `final_draws` runs for the predictions.
2. Readout response, closed form on a set of calibration videos: with per-pixel means over
   those videos removed, real - mean = a (in - mean) + b (hid - mean) by least squares
   (two gains); the fixed pattern is then the per-pixel mean of real - a in - b hid (the
   zero level folded in; `fixed_pattern=False` fits one zero level instead). Crop pixels
   1..62 only; the rest of the pattern is the mean zero level.
3. Video-level K-fold cross-validation (folds stratified by class): for each fold the grid
   point is chosen by the in-sample correlation on the other folds' videos, the response
   fitted on them, and the fold's videos are scored: the held-out correlation reported.
4. The final calibration: the grid point and response fitted on all videos.
   `readout_std` is the readout noise beyond the decision noise: the residual variance
   around the expected readout minus the variance of single runs around it.

Fitted parameters: 3 discrete noise settings (grid), 2 gains, and the zero level (scalar) or
the fixed pattern (62 x 62 values). Both variants are reported.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import jax
import numpy as np

from pixelrnn_jax.sensor.recordings import stratified_folds
from pixelrnn_jax.sensor.scamp5 import chip_program as chip
from pixelrnn_jax.sensor.units import UNITS_PER_PRODUCT

__all__ = ["correlation", "sign_agreement", "Response", "fit_response", "to_noise",
           "CalibrationConfig", "grid_parts", "calibrate", "save_calibration",
           "load_calibration"]

CROP = (slice(1, 63), slice(1, 63))


def correlation(sim, real) -> np.ndarray:
    """Per-video Pearson correlation over crop pixels 1..62: (n 64 64) x 2 -> (n,)."""
    a = np.asarray(sim, np.float64)[:, 1:63, 1:63].reshape(len(sim), -1)
    b = np.asarray(real, np.float64)[:, 1:63, 1:63].reshape(len(real), -1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1.0), 0.0)


def sign_agreement(sim, real) -> np.ndarray:
    """Per-video fraction of crop pixels where sim and real have the same sign (x >= 0)."""
    a = np.asarray(sim)[:, 1:63, 1:63] >= 0
    b = np.asarray(real)[:, 1:63, 1:63] >= 0
    return (a == b).reshape(len(a), -1).mean(1)


@dataclasses.dataclass(frozen=True)
class Response:
    """The readout's affine response: units = offset + a * in + b * hid + pattern."""

    input_gain: float
    hidden_gain: float
    offset: float
    pattern: np.ndarray | None   # (64 64) units or None

    def apply(self, a_in, a_h) -> np.ndarray:
        u = self.offset + self.input_gain * np.asarray(a_in) + self.hidden_gain * np.asarray(a_h)
        if self.pattern is not None:
            u = u + self.pattern
        return u


def fit_response(a_in, a_h, real_units, fixed_pattern: bool = True) -> Response:
    """Least-squares response of parts (n 64 64) to real readouts (n 64 64, units)."""
    i = np.asarray(a_in, np.float64)[:, 1:63, 1:63]
    h = np.asarray(a_h, np.float64)[:, 1:63, 1:63]
    y = np.asarray(real_units, np.float64)[:, 1:63, 1:63]
    if fixed_pattern:
        i, h, y0 = i - i.mean(0), h - h.mean(0), y - y.mean(0)
    else:
        i, h, y0 = i - i.mean(), h - h.mean(), y - y.mean()
    a = np.stack([i.ravel(), h.ravel()], 1)
    (gi, gh), *_ = np.linalg.lstsq(a, y0.ravel(), rcond=None)
    resid = (np.asarray(real_units, np.float64) - gi * np.asarray(a_in)
             - gh * np.asarray(a_h))
    if not fixed_pattern:
        return Response(float(gi), float(gh), float(resid[:, 1:63, 1:63].mean()), None)
    offset = float(resid[:, 1:63, 1:63].mean())
    pattern = np.zeros((chip.SIDE, chip.SIDE))
    pattern[CROP] = resid[:, 1:63, 1:63].mean(0) - offset
    return Response(float(gi), float(gh), offset, pattern.astype(np.float32))


def to_noise(point: tuple[float, float, float], response: Response,
             readout_std: float = 0.0) -> chip.ChipNoise:
    """A grid point (gain, cnn_std, gate_std) and a response as a `chip.ChipNoise`."""
    gain, cnn_std, gate_std = point
    return chip.ChipNoise(gain=gain, cnn_std=cnn_std, gate_std=gate_std,
                          readout_input_gain=response.input_gain / gain,
                          readout_hidden_gain=response.hidden_gain / gain,
                          readout_offset=response.offset, fixed_pattern=response.pattern,
                          readout_std=readout_std)


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
    """Grid and procedure of `calibrate`."""

    gains: tuple[float, ...] = (0.7, 1.0)
    cnn_stds: tuple[float, ...] = (3.0, 6.0)
    gate_stds: tuple[float, ...] = (4.0, 8.0)
    draws: int = 16
    final_draws: int = 64
    folds: int = 5
    seed: int = 0
    fixed_pattern: bool = True

    def __post_init__(self):
        if not (self.gains and self.cnn_stds and self.gate_stds):
            raise ValueError("the calibration grid needs at least one gain, cnn_std, gate_std")
        if min(self.gains) <= 0 or min(self.cnn_stds) < 0 or min(self.gate_stds) < 0:
            raise ValueError("calibration gains must be > 0 and stds >= 0")
        if self.draws < 1 or self.final_draws < 1 or self.folds < 2:
            raise ValueError(f"draws and final_draws must be >= 1 and folds >= 2, got "
                             f"{self.draws}, {self.final_draws}, {self.folds}")

    @property
    def grid(self) -> list[tuple[float, float, float]]:
        return list(itertools.product(self.gains, self.cnn_stds, self.gate_stds))


def grid_parts(weights, pooled, points, draws: int, rng) -> dict:
    """Expected input / hidden parts (n 64 64) at the last readout, and one single run's
    sum, for every point (gain, cnn_std, gate_std): parts scaled by the gain (units)."""
    out = {}
    for k, (gain, cs, gs) in enumerate(points):
        noise = chip.ChipNoise(gain=gain, cnn_std=cs, gate_std=gs)
        a_in, a_h = chip.readout_parts(weights, None, noise, jax.random.fold_in(rng, k),
                                       draws=draws, pooled=pooled)
        out[(gain, cs, gs)] = (gain * a_in.mean(0)[:, -1], gain * a_h.mean(0)[:, -1],
                               gain * (a_in[0] + a_h[0])[:, -1])
    return out


def calibrate(weights, pooled, real, labels, config: CalibrationConfig = CalibrationConfig(),
              rng=None) -> dict:
    """Fits the chip's non-idealities to real readouts with video-level cross-validation.

    pooled: `chip.pooled_counts` of the videos (n t 64 64); real: their readouts (n 64 64) in
    model units; labels (n,) for stratified folds. Returns a dict: `noise` (the final
    `ChipNoise`, fitted on all videos), `heldout` (n 64 64, model units: each video predicted
    by the fold that did not see it), `in_sample` (n 64 64), `folds` (n,), the scores and
    the chosen settings.
    """
    rng = jax.random.key(config.seed) if rng is None else rng
    real = np.asarray(real, np.float32)
    units = real * UNITS_PER_PRODUCT
    n = len(real)
    if n < 2:
        raise ValueError(f"calibration needs >= 2 videos with readouts, got {n}")
    grid = grid_parts(weights, pooled, config.grid, config.draws, rng)
    labels = np.asarray(labels)
    k = max(2, min(config.folds, n))
    folds = stratified_folds(labels, k, config.seed)

    def fit_best(mask):
        best = None
        for point, (a_in, a_h, _) in grid.items():
            resp = fit_response(a_in[mask], a_h[mask], units[mask], config.fixed_pattern)
            score = correlation(resp.apply(a_in[mask], a_h[mask]), units[mask]).mean()
            if best is None or score > best[0]:
                best = (score, point, resp)
        return best

    # the grid point: chosen per fold on its calibration videos with `draws` runs; the
    # predictions then use `final_draws` runs at the chosen points
    everything = np.ones(n, bool)
    selected = {f: fit_best(folds != f)[1] for f in range(k) if (folds == f).any()}
    final_point = fit_best(everything)[1]
    points = sorted(set(selected.values()) | {final_point})
    parts = grid_parts(weights, pooled, points, config.final_draws,
                       jax.random.fold_in(rng, 1 << 20))
    heldout = np.zeros_like(units)
    chosen = []
    for f, point in selected.items():
        test = folds == f
        a_in, a_h, _ = parts[point]
        resp = fit_response(a_in[~test], a_h[~test], units[~test], config.fixed_pattern)
        heldout[test] = resp.apply(a_in[test], a_h[test])
        chosen.append({"fold": f, "videos": int(test.sum()), "gain": point[0],
                       "cnn_std": point[1], "gate_std": point[2],
                       "input_gain": resp.input_gain, "hidden_gain": resp.hidden_gain,
                       "offset": resp.offset})
    point = final_point
    a_in, a_h, single = parts[point]
    resp = fit_response(a_in, a_h, units, config.fixed_pattern)
    in_sample = resp.apply(a_in, a_h)
    score = correlation(in_sample, units).mean()
    crop = (slice(None),) + CROP
    mc_var = np.var((single - (a_in + a_h))[crop] * resp.input_gain)  # single runs' spread
    readout_std = float(np.sqrt(max(0.0, np.var((units - in_sample)[crop]) - mc_var)))
    noise = to_noise(point, resp, readout_std)
    to_model = 1.0 / UNITS_PER_PRODUCT
    return {"noise": noise, "heldout": heldout * to_model, "in_sample": in_sample * to_model,
            "folds": folds, "fold_settings": chosen, "point": point,
            "heldout_correlation": float(correlation(heldout, units).mean()),
            "in_sample_correlation": float(score)}


# ----------------------------------------------------------------------------- files


def save_calibration(noise: chip.ChipNoise, path) -> Path:
    """Writes `noise` as JSON (path) and its fixed pattern beside it (path.npy)."""
    path = Path(path)
    d = noise.to_dict()
    if noise.fixed_pattern is not None:
        pattern = path.with_suffix(".npy")
        np.save(pattern, np.asarray(noise.fixed_pattern, np.float32))
        d["fixed_pattern"] = pattern.name
    path.write_text(json.dumps(d, indent=2))
    return path


def load_calibration(path) -> chip.ChipNoise:
    """Reads a `save_calibration` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"chip calibration not found: {path} (write one with "
                                f"experiments/sim2real.py)")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a chip calibration JSON file ({e})") from None
    fields = {f.name for f in dataclasses.fields(chip.ChipNoise)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ValueError(f"{path}: unknown calibration fields {unknown}; expected {sorted(fields)}")
    pattern = d.pop("fixed_pattern", None)
    if pattern is not None:
        file = path.parent / pattern
        if not file.is_file():
            raise FileNotFoundError(f"{path} names fixed pattern {file}, which is missing")
        d["fixed_pattern"] = np.load(file)
    return chip.ChipNoise(**d)
