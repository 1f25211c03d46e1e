"""Sim-to-real: the sensor modes scored against real SCAMP-5 readouts, and the chip mode's
non-idealities calibrated with video-level cross-validation.

    python experiments/sim2real.py \
        --weights=../shared/data/official_weights/cam_noise_iw10.txt \
        --frames=../shared/data/cambridge_test_frames.npz \
        --recordings=../shared/data/cambridge_scamp5_outputs.npz --workdir=runs/sim2real

--weights: the authors' text format (.txt) or the sensor header (.h). --frames: the layout of
cambridge_test_frames.npz; --recordings: that of cambridge_scamp5_outputs.npz (or a folder of
saved readout frames); videos are matched by name. Writes W/results.json (top level: the
calibrated chip mode on videos it was not calibrated on; `modes` every mode, `ideal` the
ideal mode), W/sim2real.png and W/chip_calibration.json (+ .npy), the calibration that
`experiments/scamp5_eval.py --sensor_mode=chip --chip_calibration=...` reads.
Measured on the 45 Cambridge videos (5-fold held out): chip calibrated correlation 0.634,
sign agreement 0.741, transfer accuracy 0.622; ideal mode 0.069 / 0.565 / 0.178; about
2.5 minutes on 2 CPU cores.
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
flags.DEFINE_list("gains", [str(v) for v in _D.gains], "Calibration grid: per-step gains.")
flags.DEFINE_list("cnn_stds", [str(v) for v in _D.cnn_stds], "Grid: CNN threshold noise (units).")
flags.DEFINE_list("gate_stds", [str(v) for v in _D.gate_stds], "Grid: forget-gate noise (units).")
flags.DEFINE_integer("draws", _D.draws, "Noisy runs per grid point when choosing the noise.")
flags.DEFINE_integer("final_draws", _D.final_draws, "Noisy runs of the expected readout.")
flags.DEFINE_integer("folds", _D.folds, "Video-level cross-validation folds.")
flags.DEFINE_bool("fixed_pattern", _D.fixed_pattern, "Fit a per-pixel readout offset.")
flags.DEFINE_float("decoder_weight_decay", 1e-2, "Weight decay of the transfer decoder.")
flags.DEFINE_integer("limit", None, "Use only the first N framed videos (quick checks).")
flags.DEFINE_integer("seed", 0, "Seed of the folds and the noise draws.")


def main(argv):
    for name in ("weights", "frames", "recordings"):
        if not getattr(F, name):
            cli.fail(f"--{name} is required (see --helpfull)")
    config = calibrate.CalibrationConfig(
        gains=tuple(float(v) for v in F.gains), cnn_stds=tuple(float(v) for v in F.cnn_stds),
        gate_stds=tuple(float(v) for v in F.gate_stds), draws=F.draws,
        final_draws=F.final_draws, folds=F.folds,
        seed=F.seed, fixed_pattern=F.fixed_pattern)
    results = agreement.evaluate(F.weights, F.frames, F.recordings, F.workdir, config,
                                 decoder_weight_decay=F.decoder_weight_decay, limit=F.limit)
    results["command"] = " ".join(sys.argv)
    path = Path(F.workdir) / "results.json"
    path.write_text(json.dumps(results, indent=2))
    rows = [(k, v) for k, v in results["modes"].items() if k != "real"]
    for k, v in rows:
        t = v["transfer_accuracy"]
        print(f"{k:28s} correlation {v['correlation']:.3f}  sign {v['sign_agreement']:.3f}  "
              f"transfer {'-' if t is None else f'{t:.3f}'}")
    real = results["modes"]["real"]["transfer_accuracy"]
    print(f"real readouts through the same decoder: {real}")
    print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
