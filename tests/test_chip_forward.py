"""Training through the chip program (`ModelConfig(sensor="chip")`): its forward pass equals
the chip program's (bit for bit with the errors off, in distribution with the calibrated
noise), its exported weights run on the chip program unchanged, gradients reach every
kernel the chip uses, and models the chip cannot run are refused in one line."""
from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO, subprocess_env

import pixelrnn_jax as pr
from pixelrnn_jax.sensor.scamp5 import chip_program, export_weight_planes
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel

CHIP = pr.ModelConfig(sensor="chip")
CHIP_IDEAL = CHIP.replace(sensor_calibration="ideal")


@pytest.fixture(scope="module")
def variables():
    return pr.init(jax.random.key(1), CHIP)


def _video(n=2, seed=0):
    rng = np.random.default_rng(seed)
    # a gradient across the frame so that the CNN's sums reach every level
    return (rng.normal(size=(n, 16, 64, 64)) + np.linspace(-1.5, 1.5, 64)).astype(np.float32)


def test_forward_is_the_chip_program_with_the_errors_off(variables):
    video = _video()
    got = np.asarray(pr.encode(variables, video, CHIP_IDEAL))
    want = chip_program.run(variables, video, noise=NoiseModel.ideal())
    assert got.shape == want.shape == (2, 1, 64, 64)
    assert np.std(want) > 1.0   # the readout is not constant
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_exported_weights_run_on_the_chip_program_unchanged(variables, tmp_path):
    export_weight_planes(variables, tmp_path, CHIP)
    video = _video(1, seed=3)
    on_chip = chip_program.run(tmp_path / "weights.h", video, noise=NoiseModel.ideal())
    np.testing.assert_allclose(on_chip, np.asarray(pr.encode(variables, video, CHIP_IDEAL)),
                               atol=1e-4)


def test_calibrated_noise_matches_the_chip_program_in_distribution(variables):
    video = _video(4, seed=5)
    ours = np.asarray(pr.encode(variables, video, CHIP, rng=jax.random.key(3)))
    theirs = chip_program.run(variables, video, noise=NoiseModel(), rng=jax.random.key(4))
    # measured: mean 0.70 / 0.58, std 5.10 / 5.10 (model units)
    assert abs(ours.mean() - theirs.mean()) < 0.15 * theirs.std()
    assert abs(ours.std() / theirs.std() - 1) < 0.1
    # with no noise drawn, the readout is quantized as the chip's readout conversion is
    clean = np.asarray(pr.encode(variables, video, CHIP))
    assert np.allclose(clean * 10, np.round(clean * 10), atol=1e-3)


def test_gradients_reach_the_kernels_the_chip_uses(variables):
    video = jax.numpy.asarray(_video(2, seed=7))
    labels = jax.numpy.array([0, 1])

    def loss(p):
        logits = pr.PixelRNNModel(CHIP).apply({"params": p}, video, jax.random.key(0))
        return -jax.nn.log_softmax(logits)[jax.numpy.arange(2), labels].mean()

    g = jax.grad(loss)(variables["params"])["encoder"]
    for name in ("w_f", "u_f", "w_o", "u_o"):
        assert np.abs(np.asarray(g["cell"][name])).sum() > 0, name
    assert np.abs(np.asarray(g["cnn_0"]["kernel"])).sum(axis=(1, 2)).min() > 0
    assert np.isfinite(np.asarray(g["cnn_0"]["kernel"])).all()


@pytest.mark.parametrize("changes, match", [
    (dict(cnn_layers=2), "one CNN layer"),
    (dict(K=8), "16-frame cycles"),
    (dict(cell="lstm"), "binary PixelRNN"),
    (dict(noise_cnn=0.5), "draws its calibrated noise itself"),
    (dict(sensor="scamp7"), "sensor must be one of"),
])
def test_models_the_chip_cannot_run_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        CHIP.replace(**changes)


def test_packed_and_intermediates_are_refused(variables):
    with pytest.raises(ValueError, match="sensor='chip'"):
        pr.encode(variables, _video(1), CHIP, packed=True)
    with pytest.raises(ValueError, match="intermediates"):
        pr.encode(variables, _video(1), CHIP, intermediates=True)


def test_train_command_with_sensor_chip(tmp_path, request, tmp_path_factory):
    """`experiments/train.py --sensor=chip` trains through the chip program and says so."""
    out = subprocess.run([sys.executable, "experiments/train.py", "--flagfile=gesture.flags",
                          "--sensor=chip", "--num_epochs=1", "--max_videos=8",
                          "--batch_size=4", f"--data_dir={tmp_path}/tfds",
                          f"--workdir={tmp_path}/run"], cwd=REPO,
                         env=subprocess_env(request, tmp_path_factory),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["model"]["sensor"] == results["sensor"]["forward"] == "chip"
    assert 0.0 <= results["test_accuracy"] <= 1.0
