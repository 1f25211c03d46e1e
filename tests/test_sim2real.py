"""The chip program's facts (on its fast emulation), the per-fold refit and the sim-to-real
evaluation with the shipped calibration."""
from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, shared_file

from pixelrnn_jax import authors_files, authors_model
from pixelrnn_jax.sensor.scamp5 import NoiseModel, chip_facts, simulate
from pixelrnn_jax.sensor.scamp5 import calibrate as cal
from pixelrnn_jax.sensor.scamp5 import chip_program as chip

SIDE = chip.SIDE
UNCLIPPED = NoiseModel.ideal(saturation=None)


def _weights(seed=0, conv=None, **cell) -> authors_files.OfficialWeights:
    rng = np.random.default_rng(seed)
    pm = lambda *s: np.where(rng.random(s) < 0.5, -1.0, 1.0)  # noqa: E731
    kernels = {k: cell.get(k, pm(5, 5)) for k in ("w_f", "u_f", "w_o", "u_o")}
    return authors_files.OfficialWeights(conv1=pm(16, 5, 5) if conv is None else conv,
                                         thresh1=1.0, **kernels)


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(1).integers(0, 256, (3, 16, SIDE, SIDE)).astype(np.uint8)


@pytest.mark.slow   # 40 s; the chip programs' tests run chip_fast by default
def test_shapes_batch_and_draws(frames):
    w = chip_facts.chip_weights(_weights())
    ideal = NoiseModel.ideal()
    batch = simulate(w, frames, program="chip_fast", noise=ideal)
    assert batch.shape == (3, 1, SIDE, SIDE) and batch.dtype == np.float32
    np.testing.assert_array_equal(simulate(w, frames[1], program="chip_fast", noise=ideal),
                                  batch[1])
    r = chip.readout_draws(w, frames[:2], NoiseModel(), jax.random.key(0), draws=3)
    assert r["readout"].shape == r["input_part"].shape == (3, 2, 1, SIDE, SIDE)
    assert not np.array_equal(r["readout"][0], r["readout"][1])
    assert np.all(r["readout"] == np.round(r["readout"]))          # 8-bit codes
    with pytest.raises(ValueError, match="rng"):
        simulate(w, frames, program="chip_fast")


def _single_tap(dy, dx):
    k = -np.ones((5, 5))
    k[dy, dx] = 1.0
    return k


def test_cnn_is_displaced_two_down_two_left():
    """With a kernel of one +1 tap, C(Y, X) = 10 xcorr(Y - 2, X + 2): the image pixel at
    offset (dy - 2, dx - 2) of (Y - 2, X + 2) drives pixel (Y, X)."""
    w = chip_facts.chip_weights(_weights(conv=np.stack([_single_tap(2, 2)] * 16)))
    img = np.zeros((1, 16, SIDE, SIDE), bool)
    img[:, :, 20, 30] = True
    c, _ = chip.cnn_sums(w, img, UNCLIPPED)
    c = c[0, 0, :SIDE, :SIDE]
    np.testing.assert_array_equal(np.argwhere(c == c.max()), [[22, 28]])


def test_grid_lines_never_accumulated_and_ties_fail():
    ones = authors_files.OfficialWeights(conv1=np.ones((16, 5, 5)), thresh1=1.0,
                                         **{k: np.ones((5, 5)) for k in ("w_f", "u_f", "w_o",
                                                                         "u_o")})
    c, _ = chip.cnn_sums(ones, np.ones((1, 16, SIDE, SIDE), bool), UNCLIPPED)
    c = c[0, 0]
    assert (c[::SIDE, :] == 0).all() and (c[:, SIDE - 1::SIDE] == 0).all()
    # inside the array every tap reads +1 (padding is the neighbouring block's pixels) ...
    assert (c[SIDE + 1:2 * SIDE, SIDE:2 * SIDE - 1] == 250).all()
    # ... and -1 beyond its edge: row 1 of the top blocks reads 3 kernel rows above it
    np.testing.assert_array_equal(c[1:4, SIDE:2 * SIDE - 1],
                                  np.repeat([[-50.0], [50.0], [150.0]], SIDE - 1, axis=1))
    # a pooled value of exactly one product (10 units) fails the > 10 threshold, 3 pass
    facts = chip_facts.ChipFacts()
    for value, passes in ((10.0, False), (30.0, True)):
        x = chip.rnn_inputs(jnp.full((4 * SIDE, 4 * SIDE), value), 0.0, None, UNCLIPPED, facts)
        assert bool(x[1:-1, 1:-2].all()) is passes


def test_readout_geometry():
    """Crop row 0 and column 63 are grid lines (0), row 63 lies outside the output (-80 in
    both parts), column 0 carries -80 in the input part."""
    frames = np.random.default_rng(2).random((1, 16, SIDE, SIDE)) > 0.5
    r = chip.readout_draws(_weights(3), frames, UNCLIPPED)
    a_in, a_h = r["input_part"][0, 0, 0], r["hidden_part"][0, 0, 0]
    e = r["readout"][0, 0, 0]
    assert (e[0, 1:] == 0).all() and (e[:63, 63] == 0).all()
    assert (e[63] == -160).all()
    np.testing.assert_array_equal(a_in[1:63, 0], -80.0)
    inner = a_h[1:63, :63]
    assert set(np.unique(np.abs(inner) % 20)) <= {10.0} and np.abs(inner).max() <= 250


def test_ideal_mode_unchanged(frames):
    """The ideal program still equals encode."""
    from pixelrnn_jax import ModelConfig, encode, scamp5
    cfg = ModelConfig(num_classes=9, K=16)
    v = authors_model.to_variables(_weights(4), cfg)
    video = jnp.where(jnp.asarray(frames[:1] >= 128), 1.0, -1.0)
    ideal = scamp5.simulate(v, video, cfg, noise=UNCLIPPED)
    np.testing.assert_array_equal(np.asarray(ideal), np.asarray(encode(v, video, cfg)))


def test_weights_from_header_text_and_variables(tmp_path):
    w = _weights(5)
    authors_files.save_weights_text(w, tmp_path / "w.txt")
    authors_files.save_header(w, tmp_path / "w.h")
    from pixelrnn_jax import ModelConfig
    planes = [chip_facts.chip_weights(src) for src in
              (w, tmp_path / "w.txt", tmp_path / "w.h",
               authors_model.to_variables(w, ModelConfig(num_classes=9)))]
    for p in planes[1:]:
        np.testing.assert_array_equal(np.asarray(p.cnn), np.asarray(planes[0].cnn))
        np.testing.assert_array_equal(np.asarray(p.cell), np.asarray(planes[0].cell))
    with pytest.raises(TypeError, match="weights"):
        chip_facts.chip_weights(3)


def test_refit_recovers_known_response(frames):
    """Readouts made by a known response (two gains, zero level, fixed pattern) of the
    noise-free program are fitted back per fold."""
    w = chip_facts.chip_weights(_weights(6))
    video = np.concatenate([frames, frames[:, ::-1], frames[..., ::-1]])   # 9 videos
    parts = chip.readout_draws(w, video, UNCLIPPED)
    a_in, a_h = parts["input_part"][0, :, -1], parts["hidden_part"][0, :, -1]
    pattern = np.random.default_rng(3).normal(0, 5, (SIDE, SIDE)).astype(np.float32)
    units = 3.0 + 0.5 * a_in + 0.25 * a_h + pattern
    config = cal.CalibrationConfig(scales=(1.0,), draws=2, final_draws=2, folds=3)
    res = cal.calibrate(w, video, units / 10, np.arange(9) % 3, UNCLIPPED, config)
    assert res["response"].input_gain == pytest.approx(0.5, abs=1e-3)
    assert res["response"].hidden_gain == pytest.approx(0.25, abs=1e-3)
    got = res["response"].pattern[1:63, 1:63] + res["response"].offset
    np.testing.assert_allclose(got, 3.0 + pattern[1:63, 1:63], atol=1e-2)
    assert res["in_sample_correlation"] > 0.999 and res["heldout_correlation"] > 0.999


def test_class_information_tells_signal_from_fresh_noise():
    from pixelrnn_jax.sensor.scamp5.agreement import class_information
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 6)
    signal = rng.normal(size=(3, SIDE, SIDE))[labels] * 2.0
    run_a = signal + rng.normal(size=signal.shape) * 8.0
    run_b = signal + rng.normal(size=signal.shape) * 8.0
    # a class pattern under per-run noise survives; the same pattern drowned at every run
    # in noise 30x larger leaves chance (1/3) or less
    assert class_information(run_a, run_b, labels) > 0.9
    drowned = [signal + rng.normal(size=signal.shape) * 240.0 for _ in range(2)]
    assert class_information(*drowned, labels) < 0.6
    assert class_information(signal, signal, labels) == 1.0


@pytest.mark.slow
def test_sim2real_end_to_end_on_six_videos(tmp_path):
    args = [f"--weights={shared_file('official_weights/cam_noise_iw10.txt')}",
            f"--frames={shared_file('cambridge_test_frames.npz')}",
            f"--recordings={shared_file('cambridge_scamp5_outputs.npz')}",
            f"--workdir={tmp_path}", "--limit=6", "--draws=2", "--augment=2"]
    subprocess.run([sys.executable, str(REPO / "experiments/sim2real.py"), *args], check=True,
                   cwd=REPO, capture_output=True)
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["n_videos"] == 6 and r["calibration"] == "default"
    for key in ("correlation", "sign_agreement", "transfer_accuracy",
                "sim_trained_real_accuracy", "real_trained_real_accuracy",
                "run_to_run_correlation"):
        assert -1 <= r[key] <= 1, key
    assert r["decoders"]["sim_trained_decoder"]["n_test_real"] == 810 - 6
    assert set(r["class_information"]) == {"real", "chip_noise_free", "chip_single_runs"}
    assert all(0 <= v <= 1 for v in r["class_information"].values())
    assert (tmp_path / "sim2real.png").stat().st_size > 0


@pytest.mark.slow
def test_default_calibration_predicts_real_readouts():
    from pixelrnn_jax.sensor import recordings
    from pixelrnn_jax.sensor.scamp5 import agreement
    fr = agreement.load_frames(shared_file("cambridge_test_frames.npz"))
    rec = recordings.load_recordings(shared_file("cambridge_scamp5_outputs.npz"))
    idx = agreement.match(fr, rec)
    w = chip_facts.chip_weights(shared_file("official_weights/cam_noise_iw10.txt"))
    clean = simulate(w, fr["frames"], program="chip_fast", noise=NoiseModel.ideal())[:, -1]
    assert cal.correlation(clean, rec.readouts[idx]).mean() > 0.38
    sim = chip.expected_readout(w, fr["frames"], NoiseModel(), jax.random.key(0), draws=8)
    assert cal.correlation(sim[:, -1], rec.readouts[idx]).mean() >= 0.55
