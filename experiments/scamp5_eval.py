"""Table 3's protocol on the simulated SCAMP-5: how much accuracy a model keeps on the sensor.

    python experiments/train.py --flagfile=gesture.flags
    python experiments/train.py --flagfile=gesture_sensornoise.flags
    python experiments/scamp5_eval.py --runs=runs/gesture,runs/gesture_sensornoise \\
        --names=noise-free,noise-trained --workdir=runs/scamp5_eval

For each run the training set goes through the simulated sensor twice, the linear decoder is
fine-tuned on the first pass, and the table gives train accuracy on both passes and test
accuracy (`pixelrnn_jax.paper.table3`). --sensor_mode=chip runs the authors' program as it
really runs on the SCAMP-5 (on the register-level machine; chip_fast: its fast emulation).
Every program runs on one error model: --calibration, a calibration.json of
experiments/calibrate_sensor.py, default the shipped one. Writes results.json and table.md.
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.paper import table3
from pixelrnn_jax.sensor import scamp5

F = flags.FLAGS
flags.DEFINE_list("runs", None, "Workdirs of finished experiments/train.py runs.")
flags.DEFINE_list("names", None, "A name per run (default: the folder names).")
flags.DEFINE_string("workdir", "runs/scamp5_eval", "Where results go.")
flags.DEFINE_integer("batch_size", 32, "Videos per simulated batch.")
flags.DEFINE_float("weight_decay", 1e-3, "Weight decay of the fine-tuned decoder.")
flags.DEFINE_integer("seed", 0, "Seed of the sensor noise draws.")
flags.DEFINE_enum("sensor_mode", "ideal", list(scamp5.PROGRAMS),
                  "ideal: the paper's program; chip: the program as it runs on the real chip "
                  "(machine); chip_fast: its fast emulation.")
flags.DEFINE_string("calibration", "default", "calibration.json of experiments/"
                    "calibrate_sensor.py, 'default' (the shipped one) or 'ideal' (no errors).")


def main(argv):
    if not F.runs:
        cli.fail("--runs is required: the workdirs of trained models (see --helpfull)")
    names = F.names or [Path(r).name for r in F.runs]
    if len(names) != len(F.runs):
        cli.fail(f"--names has {len(names)} entries for {len(F.runs)} runs")
    noise = scamp5.NoiseModel.named(F.calibration)
    rows = [{"model": name, **table3.evaluate_run(run, F.batch_size, F.weight_decay, F.seed,
                                                   F.sensor_mode, noise)}
            for name, run in zip(names, F.runs)]
    wd = Path(F.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "results.json").write_text(json.dumps({"rows": rows}, indent=2))
    (wd / "table.md").write_text(table3.markdown(rows))
    print(table3.markdown(rows))


if __name__ == "__main__":
    cli.run(main)
