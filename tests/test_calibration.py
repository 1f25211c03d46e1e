"""The error model's calibration: the shipped file, bad files, the accumulation protocol
against the real SCAMP-5d measurement, the accumulation fit and the readout fit."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, shared_file

from pixelrnn_jax.sensor.scamp5 import (
    InstructionError,
    NoiseModel,
    accumulation,
    calibration,
    read_calibration,
    recordings_fit,
)
from pixelrnn_jax.sensor.scamp5.noise import DEFAULT_CALIBRATION, SCHEMA, VERSION


def test_shipped_calibration_is_the_default():
    d = read_calibration()
    assert d["schema"] == SCHEMA and d["version"] == VERSION
    assert set(d["chips"]) >= {"figure_s4", "noise_accumulation", "recordings"}
    noise = NoiseModel()
    assert noise == NoiseModel.from_calibration(DEFAULT_CALIBRATION)
    assert noise.chip == d["default_chip"] == "recordings"
    # every analog instruction carries an error; div2 the only constant offset
    assert all(e.std > 0 for _, e in noise.instructions)
    assert [k for k, e in noise.instructions if e.offset] == ["div2"]
    # per-instruction behaviour is shared but for what a chip's own measurement chose
    # (the recordings' neighbour-transfer loss, chosen by (c)), the chip's pattern is not
    acc = NoiseModel.from_calibration(chip="noise_accumulation")
    own = d["chips"]["recordings"]["instructions"]
    assert set(own) == {"transfer"}
    assert noise.instruction("transfer").loss == d["provenance"]["chosen"]["transfer_loss"]
    assert noise.instruction("transfer").loss != acc.instruction("transfer").loss
    assert [(k, e) for k, e in acc.instructions if k not in own] == [
        (k, e) for k, e in noise.instructions if k not in own]
    assert acc.pattern.seed != noise.pattern.seed
    # the recordings' unexplained residual is kept, not drawn: the readout noise drawn is the
    # one measured directly on chip (b)
    residual = d["chips"]["recordings"]["residual"]
    assert residual["std"] > 10 * noise.readout.std and not residual["drawn"]
    assert noise.readout.std == acc.readout.std
    assert (DEFAULT_CALIBRATION.parent / d["chips"]["recordings"]["readout"]["offset_map"]
            ).is_file()


def _edit(tmp_path, change):
    d = json.loads(DEFAULT_CALIBRATION.read_text())
    change(d)
    d["chips"]["recordings"]["readout"]["offset_map"] = str(
        DEFAULT_CALIBRATION.parent / d["chips"]["recordings"]["readout"]["offset_map"])
    path = tmp_path / "c.json"
    path.write_text(json.dumps(d))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(version=VERSION + 1), "version"),
    (lambda d: d.update(schema="other"), "not a sensor calibration"),
    (lambda d: d["instructions"]["add"].update(std=float("nan")), "std must be finite"),
    (lambda d: d["instructions"]["copy"].update(std=-0.5), "std must be >= 0"),
    (lambda d: d["instructions"].update(mul={}), "unknown analog instruction.*mul"),
    (lambda d: d["chips"]["recordings"]["instructions"].update(mul={}),
     "unknown analog instruction.*mul"),
    (lambda d: d["chips"]["recordings"]["instructions"]["transfer"].update(loss=1.5),
     "loss must be < 1"),
    (lambda d: d["chips"]["recordings"].update(instructions=[1]), "must map names"),
    (lambda d: d["chips"]["recordings"]["pattern"].update(offset_std=-1), "offset_std"),
    (lambda d: d["chips"]["recordings"]["readout"].update(colour=1), "readout field.*colour"),
    (lambda d: d.pop("instructions"), "lacks 'instructions'"),
])
def test_bad_calibration_files_give_one_line(tmp_path, change, message):
    path = _edit(tmp_path, change)
    with pytest.raises(ValueError, match=message) as err:
        NoiseModel.from_calibration(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no chip 'other'"):
        NoiseModel.from_calibration(chip="other")
    with pytest.raises(FileNotFoundError, match="calibrate_sensor"):
        NoiseModel.from_calibration(tmp_path / "missing.json")


def test_instruction_table_follows_the_bus_transfers():
    shared = calibration.SharedErrors(loss=0.01, loss_negative=0.02, div2_offset=1.5,
                                      bus_std=0.3)
    table = shared.table()
    assert table["div2"].loss == pytest.approx(1 - 0.99 ** 5)
    assert table["add"].negative_loss == pytest.approx(1 - 0.98 ** 2)
    assert table["copy"].std == pytest.approx(0.3 * np.sqrt(2))
    assert table["div2"].offset == 1.5 and table["add"].offset == 0.0


def test_accumulation_protocol_meets_the_measurement():
    """The shipped model of the SCAMP-5d (chip profile "noise_accumulation") on the real
    protocol, 20 repetitions: every measured value within the targets."""
    measured = accumulation.load_measurement(shared_file("scamp5_noise_accumulation.json"))
    noise = NoiseModel.from_calibration(chip="noise_accumulation")
    sim = accumulation.run(noise, [float(k) for k in measured], 32, 20)
    errors = accumulation.relative_errors(sim, measured)
    assert set(errors) == set(measured)
    assert accumulation.targets_met(errors), errors


def test_accumulation_runs_any_value_and_count():
    noise = NoiseModel.from_calibration(chip="noise_accumulation")
    sim = accumulation.run(noise, [-40, 5, 100], iterations=5, repetitions=3, chunk=2)
    assert list(sim) == ["-40", "5", "100"]
    assert all(len(v["bias"]) == 5 and len(v["std"]) == 6 for v in sim.values())
    # the value shrinks towards the kernel's fixed point far below zero: more for larger v
    assert sim["-40"]["bias"][-1] < sim["5"]["bias"][-1] < sim["100"]["bias"][-1]
    assert sim["100"]["bias"][-1] > 0
    with pytest.raises(ValueError, match="outside the register range"):
        accumulation.run(noise, [300.0], iterations=2, repetitions=2)
    ideal = accumulation.run(NoiseModel.ideal(), [60], iterations=3, repetitions=2)
    assert ideal["60"] == {"bias": [0.0] * 3, "std": [0.0] * 4}


@pytest.mark.slow
def test_accumulation_fit_recovers_a_known_model():
    truth = calibration.SharedErrors(0.004, 0.007, 1.2, 0.2)
    noise = NoiseModel(instructions=truth.table(), dac_gain=1.0,
                       pattern=NoiseModel.from_calibration(chip="noise_accumulation").pattern,
                       readout=NoiseModel.from_calibration(chip="noise_accumulation").readout)
    measured = accumulation.run(noise, [0, 120], 32, 8)
    fit = calibration.fit_accumulation(measured, bus_std=0.2)
    s = fit["shared"]
    assert s.loss == pytest.approx(0.004, rel=0.15)
    assert s.loss_negative == pytest.approx(0.007, rel=0.15)
    assert s.div2_offset == pytest.approx(1.2, rel=0.15)


def test_readout_fit_recovers_gain_and_map():
    rng = np.random.default_rng(0)
    e = rng.normal(0, 40, (30, 64, 64))
    pattern = rng.normal(0, 5, (64, 64))
    real = 13.0 + 0.6 * e + pattern + rng.normal(0, 2.0, e.shape)
    fit = recordings_fit.fit_readout(e, real, None, np.stack([e, e]))
    assert fit.gain == pytest.approx(0.6, rel=0.02)
    c = (slice(1, 63), slice(1, 63))
    np.testing.assert_allclose(fit.map[c] + fit.zero, 13.0 + pattern[c], atol=1.5)
    assert fit.std == pytest.approx(2.0, rel=0.1)
    cv = recordings_fit.cross_validate(e, real, np.arange(30) % 3)
    assert cv["correlation"].mean() > 0.95


@pytest.mark.slow
def test_noise_accumulation_command(tmp_path):
    args = [sys.executable, str(REPO / "experiments/noise_accumulation.py"),
            "--values=0,5,120", "--iterations=4", "--repetitions=3", f"--workdir={tmp_path}"]
    subprocess.run(args, check=True, cwd=REPO, capture_output=True)
    r = json.loads((tmp_path / "results.json").read_text())
    assert set(r) == {"values"} and set(r["values"]) == {"0", "5", "120"}
    assert len(r["values"]["5"]["bias"]) == 4 and len(r["values"]["5"]["std"]) == 5
    assert (tmp_path / "accumulation.png").stat().st_size > 0
    bad = subprocess.run(args[:2] + ["--values=0,x", f"--workdir={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--values must be numbers" in bad.stderr


def test_instruction_error_changes_are_hashable_models():
    a = NoiseModel().with_instructions(add=InstructionError(std=1.0))
    assert a != NoiseModel() and hash(a) != hash(NoiseModel())


@pytest.mark.slow
def test_calibrate_sensor_writes_the_chosen_model(tmp_path):
    """The joint calibration on one candidate per grid (2 min): the file it writes loads,
    gives the recordings' chip the transfer loss (c) chose, keeps the residual undrawn and
    draws chip (b)'s readout noise."""
    data = [f"--accumulation={shared_file('scamp5_noise_accumulation.json')}",
            f"--weights={shared_file('official_weights/cam_noise_iw10.txt')}",
            f"--frames={shared_file('cambridge_test_frames.npz')}",
            f"--recordings={shared_file('cambridge_scamp5_outputs.npz')}"]
    subprocess.run([sys.executable, str(REPO / "experiments/calibrate_sensor.py"), *data,
                    f"--workdir={tmp_path}", "--bus_stds=0.3", "--dac_gains=1.0",
                    "--transfer_factors=0.0", "--draws=2", "--final_draws=2", "--folds=2",
                    "--repetitions=10"], check=True, cwd=REPO, capture_output=True)
    path = tmp_path / "calibration.json"
    d = read_calibration(path)
    rec = NoiseModel.from_calibration(path)
    acc = NoiseModel.from_calibration(path, chip="noise_accumulation")
    assert rec.instruction("transfer").loss == d["provenance"]["chosen"]["transfer_loss"] == 0
    assert acc.instruction("transfer").loss > 0
    residual = d["chips"]["recordings"]["residual"]
    assert not residual["drawn"] and residual["std"] > 10 * rec.readout.std
    assert rec.readout.std == acc.readout.std and rec.readout.column_std == 0
