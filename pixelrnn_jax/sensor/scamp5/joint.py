"""The joint calibration of the SCAMP-5 error model: (a) Fig. S4, (b) the error accumulation
of a SCAMP-5d, (c) the recordings' real readouts, in one run (`calibrate_sensor`).

1. (b) For every temporal noise per bus transfer of `JointConfig.bus_stds` the accumulation
   fit (`calibration.fit_accumulation`) gives the shared losses, div2's offset and chip
   (b)'s pattern and readout; the machine then runs the protocol (`accumulation.run`) and
   only candidates within the protocol's targets on every measured value go on.
2. (a) Chip (a)'s DAC gain and readout spread from Fig. S4 (`calibration.figure_s4`).
3. (c) On the framed videos, scored by video-level cross-validation of the readout
   conversion (`recordings_fit`): first the structure the other sources cannot see (the
   recordings' chip's DAC gain, the loss of a neighbour transfer as a fraction of its
   bus-tied value) at the middle admitted temporal noise, then the temporal noise among
   the admitted candidates; the best held-out correlation wins each step.
4. The recordings' readout conversion fitted on all framed videos, its offset map anchored
   to the mean of the official-train readouts; the file written (`calibration_file`), the
   recordings' chip with the transfer loss (c) chose as its own instruction field.

The readout's temporal noise of the recordings' chip: the recordings hold one run per video,
so what the fitted conversion leaves unexplained (`recordings_fit`'s residual, about 40
units against a signal of about +-60) cannot be told apart from a misfit of the model that
repeats at every run. It is kept in the file as the chip's `residual` and, by default, not
drawn: the readout noise drawn is chip (b)'s, measured directly (the spread of its input
readouts, about 1 unit), and the real readouts carry class information at the noise-free
emulation's level, which a fresh 40-unit noise at every readout would erase (README).
`JointConfig(residual_as_noise=True)` draws the residual instead.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from pixelrnn_jax.sensor import recordings as recordings_lib
from pixelrnn_jax.sensor.scamp5 import accumulation, agreement, calibration, recordings_fit
from pixelrnn_jax.sensor.scamp5.chip_facts import check_video
from pixelrnn_jax.sensor.scamp5.noise import (
                                              DEFAULT_CALIBRATION,
                                              ChipPattern,
                                              NoiseModel,
                                              Readout,
)
from pixelrnn_jax.sensor.units import UNITS_PER_PRODUCT

__all__ = ["JointConfig", "calibrate_sensor", "recordings_model", "MAP_NAME"]

MAP_NAME = "recordings_readout_offset.npy"


@dataclasses.dataclass(frozen=True)
class JointConfig:
    """The grids and procedure of `calibrate_sensor`."""

    bus_stds: tuple[float, ...] = (0.15, 0.3, 0.45)
    dac_gains: tuple[float, ...] = (0.9, 1.0)
    transfer_factors: tuple[float, ...] = (0.0, 0.25)
    draws: int = 8
    final_draws: int = 16
    folds: int = 5
    repetitions: int = 25
    seed: int = 0
    residual_as_noise: bool = False

    def __post_init__(self):
        for name in ("bus_stds", "dac_gains", "transfer_factors"):
            v = getattr(self, name)
            if not v or min(v) < 0 or not all(np.isfinite(v)):
                raise ValueError(f"JointConfig.{name} must be non-empty, finite and >= 0, "
                                 f"got {v}")
        if min(self.dac_gains) <= 0:
            raise ValueError(f"JointConfig.dac_gains must be > 0, got {self.dac_gains}")
        if min(self.draws, self.final_draws, self.repetitions) < 2 or self.folds < 2:
            raise ValueError("draws, final_draws and repetitions must be >= 2, folds >= 2")


def recordings_model(shared: calibration.SharedErrors, pattern: dict, dac_gain: float,
                     transfer_factor: float, readout: Readout = Readout()) -> NoiseModel:
    """The recordings' chip: the shared table with the transfer's loss scaled, a typical
    chip's pattern (chip (b)'s magnitudes, its own seed), its DAC gain and readout."""
    table = shared.table()
    t = table["transfer"]
    table["transfer"] = dataclasses.replace(
        t, loss=t.loss * transfer_factor, loss_negative=t.negative_loss * transfer_factor)
    return NoiseModel(instructions=table, dac_gain=dac_gain, dac_offset=0.0,
                      pattern=ChipPattern(seed=2, **pattern), readout=readout,
                      chip="recordings", saturation=(-128.0, 127.0))



def calibrate_sensor(workdir, *, accumulation_path, weights, frames_path, recordings_path,
                     config: JointConfig = JointConfig(), install: bool = False,
                     log=print) -> dict:
    """Runs the joint calibration; writes W/calibration.json, W/<MAP_NAME> and W/report.json
    (and, with `install`, copies both files over the shipped default). Returns the report."""
    t0 = time.time()
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    measured = accumulation.load_measurement(accumulation_path)
    # 1. (b)
    fits, admitted = {}, []
    for bs in config.bus_stds:
        fit = calibration.fit_accumulation(measured, bus_std=bs, seed=config.seed)
        model = calibration.accumulation_model(fit)
        curves = accumulation.run(model, [float(k) for k in measured], 32,
                                  config.repetitions, seed=config.seed)
        errors = accumulation.relative_errors(curves, measured)
        fits[bs] = {"fit": fit, "errors": errors}
        ok = accumulation.targets_met(errors)
        log(f"(b) bus std {bs}: worst bias {max(e['bias'] for e in errors.values()):.3f}, "
            f"worst std {max(e['std'] for e in errors.values()):.3f}"
            f"{'' if ok else ' (outside the targets)'}")
        if ok:
            admitted.append(bs)
    if not admitted:
        raise ValueError(f"no temporal noise of {config.bus_stds} meets the accumulation "
                         f"targets: widen JointConfig.bus_stds")
    # 2. (c) data
    fr = agreement.load_frames(frames_path)
    rec = recordings_lib.load_recordings(recordings_path)
    idx = agreement.match(fr, rec)
    check_video(fr["frames"])
    real = rec.readouts[idx] * UNITS_PER_PRODUCT
    labels = rec.labels[idx]
    ref_rows = (rec.official_train.copy() if rec.official_train is not None
                else np.ones(len(rec), bool))
    ref_rows[idx] = False
    reference = rec.readouts[ref_rows].mean(0) * UNITS_PER_PRODUCT
    middle = admitted[len(admitted) // 2]

    def model(bs, gain, factor):
        f = fits[bs]["fit"]
        return recordings_model(f["shared"], f["pattern"], gain, factor)

    def score(models):
        return recordings_fit.score_models(weights, fr["frames"], real, labels, models,
                                           draws=config.draws, seed=config.seed,
                                           reference_mean=reference, folds=config.folds,
                                           log=log)

    log(f"(c) structure at bus std {middle}:")
    structure = score({(g, t): model(middle, g, t) for g in config.dac_gains
                       for t in config.transfer_factors})
    gain, factor = max(structure, key=lambda k: structure[k]["correlation"])
    log(f"(c) temporal noise at DAC gain {gain}, transfer loss factor {factor}:")
    noise_scores = score({bs: model(bs, gain, factor) for bs in admitted if bs != middle})
    noise_scores[middle] = structure[(gain, factor)]
    bus_std = max(noise_scores, key=lambda k: noise_scores[k]["correlation"])
    # 3. the final readout conversion on all framed videos
    chosen = model(bus_std, gain, factor)
    e = recordings_fit.expected_e(weights, fr["frames"], chosen,
                                  jax.random.key(config.seed + 7), config.final_draws)
    cv = recordings_fit.cross_validate(e["mean"], real, labels, reference, config.folds,
                                       config.seed)
    rfit = recordings_fit.fit_readout(e["mean"], real, reference, e["runs"])
    np.save(wd / MAP_NAME, recordings_fit.crop_map_to_array(rfit.map))
    fit_b = fits[bus_std]["fit"]
    shared = fit_b["shared"]
    s4 = calibration.figure_s4(shared, fit_b["readout_std"])
    t = chosen.instruction("transfer")
    chips = {
        "figure_s4": {"measurement": "supplement Fig. S4: write 10, read back 10.73 +- 2.90",
                      "dac": s4["dac"], "pattern": {"seed": 3}, "readout": s4["readout"]},
        "noise_accumulation": {
            "measurement": "scamp5_noise_accumulation.json (SCAMP-5d, bias and std after "
                           "n = 1..32 {div2, copy, add})",
            "dac": {"gain": fit_b["dac_gain"]}, "pattern": {"seed": 1, **fit_b["pattern"]},
            "readout": {"std": fit_b["readout_std"], "quantize": True}},
        "recordings": {
            "measurement": "810 real PixelRNN readouts, 45 framed videos",
            "dac": {"gain": gain}, "pattern": {"seed": 2, **fit_b["pattern"]},
            "instructions": {"transfer": {"loss": t.loss, "loss_negative": t.negative_loss}},
            "readout": {"gain": rfit.gain, "zero": rfit.zero,
                        "std": rfit.std if config.residual_as_noise else fit_b["readout_std"],
                        "column_std": rfit.column_std if config.residual_as_noise else 0.0,
                        "offset_map": MAP_NAME, "quantize": True},
            "residual": {"std": rfit.std, "column_std": rfit.column_std,
                         "drawn": config.residual_as_noise,
                         "what": "real readout minus the fitted conversion of the expected "
                                 "E, beyond the spread of single simulated runs (units); "
                                 "one run per video cannot tell temporal noise from misfit"}},
    }
    provenance = {
        "command": "experiments/calibrate_sensor.py", "config": dataclasses.asdict(config),
        "b_fits": {str(k): {"theta": v["fit"]["theta"], "relative_mae": v["errors"]}
                   for k, v in fits.items()},
        "b_admitted_bus_stds": admitted,
        "c_structure": {f"dac_gain={g},transfer_factor={t_}": {
            k: v[k] for k in ("correlation", "sign_agreement")}
            for (g, t_), v in structure.items()},
        "c_temporal": {str(k): {kk: v[kk] for kk in ("correlation", "sign_agreement")}
                       for k, v in noise_scores.items()},
        "chosen": {"bus_std": bus_std, "recordings_dac_gain": gain,
                   "transfer_loss_factor": factor, "transfer_loss": t.loss},
        "c_heldout": {"correlation": float(cv["correlation"].mean()),
                      "sign_agreement": float(cv["sign_agreement"].mean()),
                      "videos": int(len(real)), "folds": config.folds,
                      "draws": config.final_draws},
        "c_reference": f"mean of {int(ref_rows.sum())} official-train real readouts",
        "figure_s4_model": {"mean": s4["mean"], "std": s4["std"]},
        "seconds": round(time.time() - t0, 1),
    }
    d = calibration.calibration_file(shared, s4["dac"]["gain"], chips, "recordings",
                                     provenance)
    (wd / "calibration.json").write_text(json.dumps(d, indent=1))
    (wd / "report.json").write_text(json.dumps(provenance, indent=1))
    if install:
        shutil.copy(wd / "calibration.json", DEFAULT_CALIBRATION)
        shutil.copy(wd / MAP_NAME, DEFAULT_CALIBRATION.parent / MAP_NAME)
    return provenance
