"""Refitting the chip's readout response to real readouts, per fold (video-level
cross-validation): the analysis beside the shipped calibration (`calibration`,
`recordings_fit`), which is fitted once and not on the scored videos.

Data: videos whose input frames and real SCAMP-5 readouts are both known. Scores: per video,
the Pearson correlation between simulated and real readout over crop pixels 1..62 in both
axes (`correlation`), averaged over videos.

Procedure (`calibrate`):

1. Temporal noise. For every factor of `CalibrationConfig.scales` (multiplying every
   temporal std of the error model) the expected input and hidden parts of E at the readout
   are computed by `draws` noisy runs of the fast chip program (`chip_program`), once for
   all videos; the chosen factors are then rerun with `final_draws` runs.
2. Readout response, closed form on a set of calibration videos: with per-pixel means over
   those videos removed, real - mean = a (in - mean) + b (hid - mean) by least squares
   (two gains); the fixed pattern is then the per-pixel mean of real - a in - b hid (the
   zero level folded in; `fixed_pattern=False` fits one zero level instead). Crop pixels
   1..62 only; the rest of the pattern is the mean zero level.
3. Video-level K-fold cross-validation (folds stratified by class): for each fold the factor
   is chosen by the in-sample correlation on the other folds' videos, the response fitted
   on them, and the fold's videos are scored: the held-out correlation reported.
4. The final response: the factor and response fitted on all videos.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from pixelrnn_jax.sensor.recordings import stratified_folds
from pixelrnn_jax.sensor.scamp5 import chip_program as chip
from pixelrnn_jax.sensor.scamp5.chip_facts import SIDE, ChipFacts
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel
from pixelrnn_jax.sensor.units import UNITS_PER_PRODUCT

__all__ = ["correlation", "sign_agreement", "Response", "fit_response", "CalibrationConfig",
           "grid_parts", "calibrate", "CROP"]

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
    pattern = np.zeros((SIDE, SIDE))
    pattern[CROP] = resid[:, 1:63, 1:63].mean(0) - offset
    return Response(float(gi), float(gh), offset, pattern.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
    """Grid and procedure of `calibrate`."""

    scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    draws: int = 16
    final_draws: int = 32
    folds: int = 5
    seed: int = 0
    fixed_pattern: bool = True

    def __post_init__(self):
        if not self.scales or min(self.scales) < 0:
            raise ValueError(f"calibration scales must be non-empty and >= 0, got "
                             f"{self.scales}")
        if self.draws < 1 or self.final_draws < 1 or self.folds < 2:
            raise ValueError(f"draws and final_draws must be >= 1 and folds >= 2, got "
                             f"{self.draws}, {self.final_draws}, {self.folds}")


def grid_parts(weights, video, noise: NoiseModel, scales, draws: int, rng,
               facts: ChipFacts = ChipFacts(), sums=None) -> dict:
    """Expected input / hidden parts (n 64 64, units) of E at the last readout, and one
    single run's sum, for every temporal-noise factor of `scales`."""
    sums = chip.cnn_sums(weights, video, noise, facts) if sums is None else sums
    out = {}
    for k, scale in enumerate(scales):
        model = noise.scaled(temporal=scale)
        var = sums[1] * scale ** 2
        r = chip.readout_draws(weights, None, model, jax.random.fold_in(rng, k), draws=draws,
                               facts=facts, sums=(sums[0], var))
        a_in, a_h = r["input_part"][:, :, -1], r["hidden_part"][:, :, -1]
        out[scale] = (a_in.mean(0), a_h.mean(0), a_in[0] + a_h[0])
    return out


def calibrate(weights, video, real, labels, noise: NoiseModel | None = None,
              config: CalibrationConfig = CalibrationConfig(), rng=None, *,
              facts: ChipFacts = ChipFacts(), sums=None) -> dict:
    """Refits the chip's readout response to real readouts with video-level cross-validation.

    video: the videos' frames (n t 64 64); real: their readouts (n 64 64) in model units;
    labels (n,) for stratified folds; noise: the error model whose temporal noise is scaled
    (default: the shipped calibration). Returns a dict: `heldout` (n 64 64, model units: each
    video predicted by the fold that did not see it), `in_sample` (n 64 64), `folds` (n,),
    `response` (fitted on all videos), `scale`, `readout_std`, the scores and the folds'
    settings.
    """
    rng = jax.random.key(config.seed) if rng is None else rng
    noise = NoiseModel() if noise is None else noise
    real = np.asarray(real, np.float32)
    units = real * UNITS_PER_PRODUCT
    n = len(real)
    if n < 2:
        raise ValueError(f"calibration needs >= 2 videos with readouts, got {n}")
    sums = chip.cnn_sums(weights, video, noise, facts) if sums is None else sums
    grid = grid_parts(weights, None, noise, config.scales, config.draws, rng, facts, sums)
    labels = np.asarray(labels)
    k = max(2, min(config.folds, n))
    folds = stratified_folds(labels, k, config.seed)

    def fit_best(mask):
        best = None
        for scale, (a_in, a_h, _) in grid.items():
            resp = fit_response(a_in[mask], a_h[mask], units[mask], config.fixed_pattern)
            score = correlation(resp.apply(a_in[mask], a_h[mask]), units[mask]).mean()
            if best is None or score > best[0]:
                best = (score, scale, resp)
        return best

    # the factor: chosen per fold on its calibration videos with `draws` runs; the
    # predictions then use `final_draws` runs at the chosen factors
    selected = {f: fit_best(folds != f)[1] for f in range(k) if (folds == f).any()}
    final = fit_best(np.ones(n, bool))[1]
    scales = sorted(set(selected.values()) | {final})
    parts = grid_parts(weights, None, noise, scales, config.final_draws,
                       jax.random.fold_in(rng, 1 << 20), facts, sums)
    heldout = np.zeros_like(units)
    chosen = []
    for f, scale in selected.items():
        test = folds == f
        a_in, a_h, _ = parts[scale]
        resp = fit_response(a_in[~test], a_h[~test], units[~test], config.fixed_pattern)
        heldout[test] = resp.apply(a_in[test], a_h[test])
        chosen.append({"fold": f, "videos": int(test.sum()), "scale": scale,
                       "input_gain": resp.input_gain, "hidden_gain": resp.hidden_gain,
                       "offset": resp.offset})
    a_in, a_h, single = parts[final]
    resp = fit_response(a_in, a_h, units, config.fixed_pattern)
    in_sample = resp.apply(a_in, a_h)
    crop = (slice(None),) + CROP
    mc_var = np.var((single - (a_in + a_h))[crop] * resp.input_gain)  # single runs' spread
    readout_std = float(np.sqrt(max(0.0, np.var((units - in_sample)[crop]) - mc_var)))
    to_model = 1.0 / UNITS_PER_PRODUCT
    return {"heldout": heldout * to_model, "in_sample": in_sample * to_model,
            "folds": folds, "fold_settings": chosen, "scale": final, "response": resp,
            "readout_std": readout_std,
            "heldout_correlation": float(correlation(heldout, units).mean()),
            "in_sample_correlation": float(correlation(in_sample, units).mean())}
