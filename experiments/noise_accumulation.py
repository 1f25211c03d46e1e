"""A real SCAMP-5's error-accumulation protocol on the simulated 256 x 256 chip.

    python experiments/noise_accumulation.py --values=0,5,10,60,100,120 --iterations=32 \
        --repetitions=100 --workdir=runs/noise_accumulation

The DAC writes each value into A, A is read out, the kernel {div2, copy, add} is applied n
times and A is read out again (`pixelrnn_jax.sensor.scamp5.accumulation`); fresh temporal
noise per repetition, the chip's fixed pattern throughout; the curves come from running the
error model (--calibration: a calibration.json, default the shipped one; --chip: its chip
profile, default the chip the measurement was taken on). Writes W/results.json
({"values": {"<v>": {"bias": [n floats], "std": [n + 1 floats]}}}), W/comparison.json (the
relative mean absolute errors against --measured where it holds the value) and
W/accumulation.png (simulated against measured curves).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli, plots
from pixelrnn_jax.sensor.scamp5 import NoiseModel, accumulation

F = flags.FLAGS
flags.DEFINE_list("values", ["0", "10", "60", "120"], "Input values (register units).")
flags.DEFINE_integer("iterations", 32, "Kernel applications n = 1..iterations.")
flags.DEFINE_integer("repetitions", 100, "Repetitions per value.")
flags.DEFINE_string("workdir", "runs/noise_accumulation", "Where results go.")
flags.DEFINE_string("calibration", "default", "calibration.json of experiments/"
                    "calibrate_sensor.py, or 'default' (the shipped one).")
flags.DEFINE_string("chip", "noise_accumulation", "The calibration's chip profile to run.")
flags.DEFINE_string("measured", str(Path(__file__).resolve().parents[1].parent / "shared" /
                                    "data" / "scamp5_noise_accumulation.json"),
                    "Measured curves to compare with (skipped when the file is absent).")
flags.DEFINE_bool("independent", False, "Restart from the write for every n (slow).")
flags.DEFINE_integer("seed", 0, "Seed of the temporal noise.")


def main(argv):
    try:
        values = [float(v) for v in F.values]
    except ValueError:
        cli.fail(f"--values must be numbers, got {F.values}")
    noise = NoiseModel.from_calibration(F.calibration, chip=F.chip)
    curves = accumulation.run(noise, values, F.iterations, F.repetitions, seed=F.seed,
                              independent=F.independent)
    wd = Path(F.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "results.json").write_text(json.dumps({"values": curves}, indent=1))
    measured = (accumulation.load_measurement(F.measured) if F.measured
                and Path(F.measured).is_file() else None)
    plots.save(plots.accumulation_curves(curves, measured), wd / "accumulation.png", dpi=100)
    print(f"wrote {wd / 'results.json'} and {wd / 'accumulation.png'}")
    if measured is None:
        print("no measurement to compare with (--measured)")
        return
    errors = accumulation.relative_errors(curves, measured)
    (wd / "comparison.json").write_text(json.dumps({
        "relative_mae": errors, "targets": {"bias": accumulation.BIAS_TARGET,
                                            "std": accumulation.STD_TARGET},
        "targets_met": accumulation.targets_met(errors), "measured": F.measured,
        "chip": noise.chip, "command": " ".join(sys.argv)}, indent=1))
    for k, e in errors.items():
        print(f"value {k:>5}: bias relative MAE {e['bias']:.3f}, std relative MAE "
              f"{e['std']:.3f} (input readouts' std {e['std0_sim']:.2f} simulated, "
              f"{e['std0_real']:.2f} measured)")


if __name__ == "__main__":
    cli.run(main)
