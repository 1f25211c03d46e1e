"""Sim-to-real: the sensor modes scored against real SCAMP-5 readouts with the shipped
calibration (no refit on the scored videos), or the per-fold refit of the readout response.

    python experiments/sim2real.py \
        --weights=../shared/data/official_weights/cam_noise_iw10.txt \
        --frames=../shared/data/cambridge_test_frames.npz \
        --recordings=../shared/data/cambridge_scamp5_outputs.npz --workdir=runs/sim2real \
        --calibration=default

--weights: the authors' text format (.txt) or the sensor header (.h). --frames: the layout of
cambridge_test_frames.npz; --recordings: that of cambridge_scamp5_outputs.npz (or a folder of
saved readout frames); videos are matched by name. --calibration: "default" (the shipped
calibration), a calibration.json of experiments/calibrate_sensor.py, or "refit" (the readout
response refitted per fold on the framed videos). Writes W/results.json (top level: the chip
program's `correlation`, `sign_agreement`, `transfer_accuracy`, `sim_trained_real_accuracy`,
`real_trained_real_accuracy`, `run_to_run_correlation`; `modes` every mode) and
W/sim2real.png (`pixelrnn_jax.sensor.scamp5.agreement`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.sensor.scamp5 import agreement, calibrate

F = flags.FLAGS
_D = calibrate.CalibrationConfig()
flags.DEFINE_string("weights", None, "The authors' weights (.txt text format or .h header).")
flags.DEFINE_string("frames", None, "Input frames archive (layout of cambridge_test_frames.npz).")
flags.DEFINE_string("recordings", None, "Real readouts (layout of cambridge_scamp5_outputs.npz).")
flags.DEFINE_string("workdir", "runs/sim2real", "Where results go.")
flags.DEFINE_string("calibration", "default",
                    "'default', a calibration.json, or 'refit' (per-fold readout refit).")
flags.DEFINE_integer("draws", 32, "Noisy runs averaged into the expected readout.")
flags.DEFINE_integer("augment", 8, "Noisy runs per video the sim-trained decoder learns from.")
flags.DEFINE_list("scales", [str(v) for v in _D.scales],
                  "--calibration=refit: temporal-noise factors tried per fold.")
flags.DEFINE_integer("folds", _D.folds, "--calibration=refit: video-level folds.")
flags.DEFINE_bool("fixed_pattern", _D.fixed_pattern,
                  "--calibration=refit: fit a per-pixel readout offset.")
flags.DEFINE_integer("limit", None, "Use only the first N framed videos (quick checks).")
flags.DEFINE_integer("seed", 0, "Seed of the noise draws and folds.")


def main(argv):
    for name in ("weights", "frames", "recordings"):
        if not getattr(F, name):
            cli.fail(f"--{name} is required (see --helpfull)")
    refit = calibrate.CalibrationConfig(
        scales=tuple(float(v) for v in F.scales), draws=max(2, F.draws // 2),
        final_draws=F.draws, folds=F.folds, seed=F.seed, fixed_pattern=F.fixed_pattern)
    results = agreement.evaluate(F.weights, F.frames, F.recordings, F.workdir,
                                 calibration=F.calibration, draws=F.draws, augment=F.augment,
                                 refit=refit, seed=F.seed, limit=F.limit)
    results["command"] = " ".join(sys.argv)
    path = Path(F.workdir) / "results.json"
    path.write_text(json.dumps(results, indent=2))
    for k, v in results["modes"].items():
        t = v.get("transfer_accuracy")
        print(f"{k:24s} correlation {v['correlation']:.3f}  sign {v['sign_agreement']:.3f}"
              + ("" if t is None else f"  transfer {t:.3f}"))
    print(f"sim-trained decoder on {results['decoders']['sim_trained_decoder']['n_test_real']} "
          f"real readouts {results['sim_trained_real_accuracy']:.3f}, real-trained "
          f"{results['real_trained_real_accuracy']:.3f}; run-to-run correlation "
          f"{results['run_to_run_correlation']:.3f} (ceiling {results['correlation_ceiling']:.3f})")
    info = results["class_information"]
    print("class information (cross-validated over the framed videos): "
          + ", ".join(f"{k} {v:.3f}" for k, v in info.items()))
    print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
