"""The joint calibration of the SCAMP-5 error model against three real measurements.

    python experiments/calibrate_sensor.py --workdir=runs/calibration [--install]

(a) supplement Fig. S4 (writing 10 reads back 10.73 +- 2.90), (b) --accumulation: the error
accumulation of a real SCAMP-5d (bias and std after n applications of {div2, copy, add}),
(c) --recordings: the real PixelRNN readouts of the videos in --frames, run with --weights
(`pixelrnn_jax.sensor.scamp5.joint`). Writes W/calibration.json (versioned; what
`NoiseModel.from_calibration` loads), W/recordings_readout_offset.npy (the recordings' chip's
readout offset map) and W/report.json (every fit and score); --install copies both files
over the library's default (pixelrnn_jax/sensor/scamp5/calibration.json).
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.sensor.scamp5 import joint

F = flags.FLAGS
_D = joint.JointConfig()
_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
flags.DEFINE_string("workdir", "runs/calibration", "Where results go.")
flags.DEFINE_string("accumulation", str(_DATA / "scamp5_noise_accumulation.json"),
                    "Measured error accumulation (b).")
flags.DEFINE_string("weights", str(_DATA / "official_weights" / "cam_noise_iw10.txt"),
                    "The recordings' weights (c).")
flags.DEFINE_string("frames", str(_DATA / "cambridge_test_frames.npz"), "Framed videos (c).")
flags.DEFINE_string("recordings", str(_DATA / "cambridge_scamp5_outputs.npz"),
                    "Real readouts (c).")
flags.DEFINE_list("bus_stds", [str(v) for v in _D.bus_stds],
                  "Temporal noise per bus transfer (units) tried: (b) and (c).")
flags.DEFINE_list("dac_gains", [str(v) for v in _D.dac_gains],
                  "DAC gains of the recordings' chip tried (c).")
flags.DEFINE_list("transfer_factors", [str(v) for v in _D.transfer_factors],
                  "Neighbour-transfer loss as a fraction of its bus-tied value, tried (c).")
flags.DEFINE_integer("draws", _D.draws, "Noisy runs per candidate (c).")
flags.DEFINE_integer("final_draws", _D.final_draws, "Noisy runs of the final fit (c).")
flags.DEFINE_integer("folds", _D.folds, "Video-level cross-validation folds (c).")
flags.DEFINE_integer("repetitions", _D.repetitions, "Repetitions of the protocol check (b).")
flags.DEFINE_integer("seed", _D.seed, "Seed of every draw and fold.")
flags.DEFINE_bool("residual_as_noise", _D.residual_as_noise,
                  "Draw the recordings' unexplained residual as temporal readout noise "
                  "(default: chip (b)'s measured readout noise; the residual is kept).")
flags.DEFINE_bool("install", False, "Copy the result over the library's default.")


def main(argv):
    floats = lambda xs: tuple(float(v) for v in xs)  # noqa: E731
    config = joint.JointConfig(
        bus_stds=floats(F.bus_stds), dac_gains=floats(F.dac_gains),
        transfer_factors=floats(F.transfer_factors), draws=F.draws,
        final_draws=F.final_draws, folds=F.folds, repetitions=F.repetitions, seed=F.seed,
        residual_as_noise=F.residual_as_noise)
    report = joint.calibrate_sensor(
        F.workdir, accumulation_path=F.accumulation, weights=F.weights,
        frames_path=F.frames, recordings_path=F.recordings, config=config,
        install=F.install)
    print(json.dumps({"chosen": report["chosen"], "c_heldout": report["c_heldout"],
                      "seconds": report["seconds"]}, indent=1))
    print(f"wrote {Path(F.workdir) / 'calibration.json'}"
          + (" and installed it as the default" if F.install else ""))


if __name__ == "__main__":
    cli.run(main)
