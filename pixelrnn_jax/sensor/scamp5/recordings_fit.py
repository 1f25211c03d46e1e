"""Source (c) of the calibration: the real PixelRNN readouts of the recordings' chip.

Data: the 810 real readouts (`recordings`) and the frames of the videos held (45 Cambridge
test videos), the authors' weights. The chip program's fast emulation (`chip_program`) gives,
for an error model, the expected E at the readout (units, before the readout conversion)
of every framed video over `draws` noisy runs. The readout conversion of the recordings'
chip is then closed form (`fit_readout`):

  real(p) = zero + gain * E(p) + map(p) + noise,

`gain` by least squares over the fitting videos' crop pixels with every pixel's mean over
those videos removed; the per-pixel offset `map` + `zero` = the mean real readout of the
reference videos (the official-train readouts, which no test video is among) minus `gain`
times the mean expected E of the fitting videos; `zero` is its mean over the crop. The
readout's temporal noise is what the residual leaves after the spread of single runs, its
column part the excess variance of the residual's column means.

`score_models` scores error models (structural choices and the temporal-noise scale) by
video-level cross-validation: per fold the conversion is fitted on the other folds' videos
and the fold's videos are predicted, as `agreement` scores a shipped calibration.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from pixelrnn_jax.sensor.recordings import stratified_folds
from pixelrnn_jax.sensor.scamp5 import chip_program
from pixelrnn_jax.sensor.scamp5.calibrate import CROP, correlation, sign_agreement
from pixelrnn_jax.sensor.scamp5.chip_facts import ARRAY, SIDE, ChipFacts
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, Readout
from pixelrnn_jax.sensor.units import UNITS_PER_PRODUCT

__all__ = ["ReadoutFit", "expected_e", "fit_readout", "cross_validate", "score_models",
           "crop_map_to_array", "CROP_ROWS"]

CROP_ROWS = slice(2 * SIDE, 3 * SIDE)   # the saved crop [128:192, 128:192] of the array


@dataclasses.dataclass(frozen=True)
class ReadoutFit:
    """A fitted readout conversion: units = zero + gain * E + map (64 64 crop)."""

    gain: float
    zero: float
    map: np.ndarray
    std: float = 0.0
    column_std: float = 0.0

    def predict(self, e) -> np.ndarray:
        return self.zero + self.gain * np.asarray(e) + self.map


def expected_e(weights, video, noise: NoiseModel, rng, draws: int,
               facts: ChipFacts = ChipFacts()) -> dict:
    """E at every video's last readout (units, readout conversion off): `mean` over draws
    and two single runs `runs` (2 n 64 64) for the spread of single runs."""
    model = noise.replace(readout=Readout())
    r = chip_program.readout_draws(weights, video, model, rng if model.random else None,
                                   draws=max(draws, 2) if model.random else 1, facts=facts)
    e = r["readout"][:, :, -1]
    runs = e[:2] if len(e) > 1 else np.stack([e[0], e[0]])
    return {"mean": e.mean(0), "runs": runs}


def fit_readout(e_mean, real_units, reference_mean=None, runs=None) -> ReadoutFit:
    """The readout conversion of the module docstring. e_mean, real_units (n 64 64);
    reference_mean (64 64, units): the mean real readout of the reference videos (None: the
    fitting videos' own mean); runs (2 n 64 64): two single runs for the noise terms."""
    c = (slice(None),) + CROP
    e = np.asarray(e_mean, np.float64)
    y = np.asarray(real_units, np.float64)
    de, dy = e - e.mean(0), y - y.mean(0)
    gain = float((de[c] * dy[c]).sum() / max((de[c] ** 2).sum(), 1e-12))
    ref = y.mean(0) if reference_mean is None else np.asarray(reference_mean, np.float64)
    full = np.zeros((SIDE, SIDE))
    full[CROP] = (ref - gain * e.mean(0))[CROP]
    zero = float(full[CROP].mean())
    pattern = full - zero
    pattern[~_crop_mask()] = 0.0
    fit = ReadoutFit(gain, zero, pattern.astype(np.float32))
    if runs is None:
        return fit
    resid = (y - fit.predict(e))[c]
    spread = gain ** 2 * 0.5 * np.var(np.asarray(runs[0]) - np.asarray(runs[1]))
    var = max(float(np.var(resid)) - spread, 0.0)
    col = resid.mean(1)                        # (n, 62) column means of the residual
    white = var / resid.shape[1]
    col_var = max(float(np.var(col - col.mean(0))) - white, 0.0)
    return dataclasses.replace(fit, std=float(np.sqrt(max(var - col_var, 0.0))),
                               column_std=float(np.sqrt(col_var)))


def _crop_mask() -> np.ndarray:
    m = np.zeros((SIDE, SIDE), bool)
    m[CROP] = True
    return m


def crop_map_to_array(pattern: np.ndarray) -> np.ndarray:
    """The crop's offset map (64 64) placed in the sensor image (256 256), 0 elsewhere."""
    out = np.zeros((ARRAY, ARRAY), np.float32)
    out[CROP_ROWS, CROP_ROWS] = pattern
    return out


def cross_validate(e_mean, real_units, labels, reference_mean=None, folds: int = 5,
                   seed: int = 0) -> dict:
    """Every video predicted by a readout conversion fitted on the other folds' videos:
    `heldout` (n 64 64 units), the per-video `correlation` and `sign_agreement` (model
    units' sign)."""
    labels = np.asarray(labels)
    k = max(2, min(folds, len(labels)))
    fold = stratified_folds(labels, k, seed)
    pred = np.zeros_like(np.asarray(real_units, np.float64))
    for f in range(k):
        test = fold == f
        if not test.any():
            continue
        fit = fit_readout(e_mean[~test], real_units[~test], reference_mean)
        pred[test] = fit.predict(e_mean[test])
    return {"heldout": pred, "folds": fold,
            "correlation": correlation(pred, real_units),
            "sign_agreement": sign_agreement(pred / UNITS_PER_PRODUCT,
                                             np.asarray(real_units) / UNITS_PER_PRODUCT)}


def score_models(weights, video, real_units, labels, models: dict, *, draws: int,
                 seed: int = 0, reference_mean=None, folds: int = 5,
                 facts: ChipFacts = ChipFacts(), log=print) -> dict:
    """Cross-validated scores of every named error model: {name: {"correlation",
    "sign_agreement", "e": expected_e}}."""
    out = {}
    for i, (name, model) in enumerate(models.items()):
        e = expected_e(weights, video, model, jax.random.key(seed + 1000 * i), draws, facts)
        cv = cross_validate(e["mean"], real_units, labels, reference_mean, folds, seed)
        out[name] = {"correlation": float(cv["correlation"].mean()),
                     "sign_agreement": float(cv["sign_agreement"].mean()), "e": e}
        log(f"  {name}: held-out correlation {out[name]['correlation']:.3f}, sign agreement "
            f"{out[name]['sign_agreement']:.3f}")
    return out
