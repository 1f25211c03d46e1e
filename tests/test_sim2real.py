"""The chip sensor mode, its calibration and the sim-to-real evaluation."""
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
from pixelrnn_jax.sensor.scamp5 import calibrate as cal
from pixelrnn_jax.sensor.scamp5 import chip_program as chip
from pixelrnn_jax.sensor.scamp5 import simulate

SIDE = chip.SIDE


def _weights(seed=0, conv=None, **cell) -> authors_files.OfficialWeights:
    rng = np.random.default_rng(seed)
    pm = lambda *s: np.where(rng.random(s) < 0.5, -1.0, 1.0)  # noqa: E731
    kernels = {k: cell.get(k, pm(5, 5)) for k in ("w_f", "u_f", "w_o", "u_o")}
    return authors_files.OfficialWeights(conv1=pm(16, 5, 5) if conv is None else conv, thresh1=1.0,
                                    **kernels)


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(1).integers(0, 256, (3, 16, SIDE, SIDE)).astype(np.uint8)


def test_shapes_batch_and_vmap_consistency(frames):
    w = chip.chip_weights(_weights())
    batch = simulate(w, frames, program="chip", noise=chip.ChipNoise())
    assert batch.shape == (3, 1, SIDE, SIDE) and batch.dtype == np.float32
    single = simulate(w, frames[1], program="chip", noise=chip.ChipNoise())
    np.testing.assert_array_equal(single, batch[1])
    # the per-frame CNN vmapped over videos and frames equals frame by frame
    pooled = chip.pooled_counts(w, frames)
    one = np.asarray(chip.cnn_pooled(w, jnp.asarray(frames[2, 5] >= 128)))
    np.testing.assert_array_equal(pooled[2, 5], one)
    # noisy draws are vmapped: draws x videos, and the mean of one draw is that draw
    noise = chip.ChipNoise(cnn_std=3.0, gate_std=4.0)
    a_in, a_h = chip.readout_parts(w, None, noise, jax.random.key(0), draws=3, pooled=pooled)
    assert a_in.shape == a_h.shape == (3, 3, 1, SIDE, SIDE)
    assert not np.array_equal(a_h[0], a_h[1])
    with pytest.raises(ValueError, match="rng"):
        simulate(w, frames, program="chip", noise=noise)
    with pytest.raises(ValueError, match="cycle"):
        simulate(w, frames[:, :8], program="chip", noise=chip.ChipNoise())


def _single_tap(dy, dx):
    k = -np.ones((5, 5))
    k[dy, dx] = 1.0
    return k


def test_cnn_is_displaced_two_down_two_left():
    """With a kernel of one +1 tap, C(Y, X) = 10 xcorr(Y - 2, X + 2): the image pixel at
    offset (dy - 2, dx - 2) of (Y - 2, X + 2) drives pixel (Y, X)."""
    w = chip.chip_weights(_weights(conv=np.stack([_single_tap(2, 2)] * 16)))
    img = jnp.tile(jnp.where(jnp.zeros((SIDE, SIDE), bool).at[20, 30].set(True), 1.0, -1.0),
                   (4, 4))
    c = np.asarray(chip._displaced_xcorr(w.cnn, img, -1.0))
    # the centre tap reads the image at (Y - 2, X + 2): the +1 pixel shows at (22, 28)
    peak = np.argwhere(c[:SIDE, :SIDE] == c[:SIDE, :SIDE].max())
    np.testing.assert_array_equal(peak, [[22, 28]])


def test_grid_lines_never_accumulated_and_ties_fail():
    """All-+1 frames with all-+1 kernels: every product is +1 (25 per pixel) except at the grid
    lines, which stay 0; a pooled value of exactly one product (10 units) fails."""
    ones = authors_files.OfficialWeights(conv1=np.ones((16, 5, 5)), thresh1=1.0,
                                    **{k: np.ones((5, 5)) for k in ("w_f", "u_f", "w_o", "u_o")})
    w = chip.chip_weights(ones)
    img = jnp.ones((4 * SIDE, 4 * SIDE))
    c = np.asarray(chip._displaced_xcorr(w.cnn, img, 1.0))
    c = np.where(chip._grid_lines(4 * SIDE), 0.0, c)
    assert (c[::SIDE, :] == 0).all() and (c[:, SIDE - 1::SIDE] == 0).all()
    assert (c[1:SIDE, :SIDE - 1] == 25).all()
    noise = chip.ChipNoise()
    tie = chip._decide(jnp.asarray(10.0 * noise.gain), 10.0, 0.0, None)
    three = chip._decide(jnp.asarray(30.0), 10.0, 0.0, None)
    assert not bool(tie) and bool(three)
    # at gain 0.6 the chip's pooled value of 3 products still passes, 1 still fails
    assert bool(chip._decide(jnp.asarray(3 * 10.0 * 0.6), 10.0, 0.0, None))


def test_hidden_state_stays_binary_and_readout_geometry():
    """h is stored as +-80 and snapped: the hidden part is a sum of 25 +-10 products (or a
    grid-line 0, or -80 outside); crop row 0 and column 63 read 0 (grid lines), row 63 lies
    outside the output (-160 at gain 1), column 0 carries -80 plus the hidden term."""
    w = chip.chip_weights(_weights(3))
    rng = np.random.default_rng(2)
    x = jnp.asarray(np.where(rng.random((16, SIDE, SIDE)) < 0.5, -1.0, 1.0))
    a_in, a_h = chip.rnn_cycle(w, x, chip.ChipNoise(), chip.ChipFacts(), None)
    a_in, a_h = np.asarray(a_in), np.asarray(a_h)
    inner = a_h[1:63, :63]
    assert set(np.unique(np.abs(inner) % 20)) <= {10.0} and np.abs(inner).max() <= 250
    e = a_in + a_h
    assert (e[0, 1:] == 0).all() and (e[:63, 63] == 0).all()
    assert (e[63] == -160).all()
    np.testing.assert_array_equal(a_in[1:63, 0], -80.0)


def test_ideal_mode_unchanged(frames):
    """The ideal program still equals encode (the chip mode is a separate module)."""
    from pixelrnn_jax import ModelConfig, encode, scamp5
    cfg = ModelConfig(num_classes=9, K=16)
    v = authors_model.to_variables(_weights(4), cfg)
    video = jnp.where(jnp.asarray(frames[:1] >= 128), 1.0, -1.0)
    ideal = scamp5.simulate(v, video, cfg, noise=scamp5.NoiseModel.ideal(saturation=None))
    np.testing.assert_array_equal(np.asarray(ideal), np.asarray(encode(v, video, cfg)))


def test_weights_from_header_text_and_variables(tmp_path):
    w = _weights(5)
    authors_files.save_weights_text(w, tmp_path / "w.txt")
    authors_files.save_header(w, tmp_path / "w.h")
    from pixelrnn_jax import ModelConfig
    planes = [chip.chip_weights(src) for src in
              (w, tmp_path / "w.txt", tmp_path / "w.h",
               authors_model.to_variables(w, ModelConfig(num_classes=9)))]
    for p in planes[1:]:
        np.testing.assert_array_equal(np.asarray(p.cnn), np.asarray(planes[0].cnn))
        np.testing.assert_array_equal(np.asarray(p.cell), np.asarray(planes[0].cell))
    with pytest.raises(TypeError, match="weights"):
        chip.chip_weights(3)


def test_calibration_recovers_known_parameters(frames):
    """Readouts made by a known chip (gains, zero level, fixed pattern; noise-free decisions,
    so that its expected readout is exact) are fitted back: the grid point, both gains and
    the pattern; the noisy grid point scores lower."""
    w = chip.chip_weights(_weights(6))
    frames = np.concatenate([frames, frames[:, ::-1], frames[..., ::-1]])   # 9 videos
    pooled = chip.pooled_counts(w, frames)
    truth = (1.0, 0.0, 0.0)
    config = cal.CalibrationConfig(gains=(1.0,), cnn_stds=(0.0,), gate_stds=(0.0, 8.0),
                                   draws=8, final_draws=8, folds=3)
    parts = cal.grid_parts(w, pooled, [truth], 8, jax.random.key(7))[truth]
    pattern = np.random.default_rng(3).normal(0, 5, (SIDE, SIDE)).astype(np.float32)
    units = 3.0 + 0.5 * parts[0] + 0.25 * parts[1] + pattern
    res = cal.calibrate(w, pooled, units / 10, np.arange(9) % 3, config, jax.random.key(8))
    assert res["point"] == truth
    n = res["noise"]
    assert n.readout_input_gain == pytest.approx(0.5, abs=1e-3)
    assert n.readout_hidden_gain == pytest.approx(0.25, abs=1e-3)
    got = n.fixed_pattern[1:63, 1:63] + n.readout_offset
    np.testing.assert_allclose(got, 3.0 + pattern[1:63, 1:63], atol=1e-2)
    assert res["in_sample_correlation"] > 0.999 and res["heldout_correlation"] > 0.999
    assert n.readout_std < 1e-2


def test_calibration_file_round_trip(tmp_path):
    noise = chip.ChipNoise.calibrated().replace(fixed_pattern=np.ones((SIDE, SIDE), np.float32))
    cal.save_calibration(noise, tmp_path / "c.json")
    back = cal.load_calibration(tmp_path / "c.json")
    assert back == noise and np.array_equal(back.fixed_pattern, noise.fixed_pattern)
    with pytest.raises(FileNotFoundError):
        cal.load_calibration(tmp_path / "missing.json")
    assert noise.model_noise()["noise_cnn"] == pytest.approx(0.3)


@pytest.mark.slow
def test_sim2real_end_to_end_on_six_videos(tmp_path):
    args = [f"--weights={shared_file('official_weights/cam_noise_iw10.txt')}",
            f"--frames={shared_file('cambridge_test_frames.npz')}",
            f"--recordings={shared_file('cambridge_scamp5_outputs.npz')}",
            f"--workdir={tmp_path}", "--limit=6", "--gains=1.0", "--cnn_stds=3",
            "--gate_stds=4", "--draws=2", "--final_draws=2", "--folds=2"]
    subprocess.run([sys.executable, str(REPO / "experiments/sim2real.py"), *args], check=True,
                   cwd=REPO, capture_output=True)
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["n_videos"] == 6
    for key in ("correlation", "sign_agreement", "transfer_accuracy"):
        assert -1 <= r[key] <= 1 and -1 <= r["ideal"][key] <= 1
    assert (tmp_path / "sim2real.png").stat().st_size > 0
    assert (tmp_path / "chip_calibration.json").is_file()


@pytest.mark.slow
def test_chip_mode_predicts_held_out_real_readouts():
    from pixelrnn_jax.sensor import recordings
    from pixelrnn_jax.sensor.scamp5 import agreement as sim2real
    fr = sim2real.load_frames(shared_file("cambridge_test_frames.npz"))
    rec = recordings.load_recordings(shared_file("cambridge_scamp5_outputs.npz"))
    idx = sim2real.match(fr, rec)
    w = chip.chip_weights(shared_file("official_weights/cam_noise_iw10.txt"))
    noise_free = simulate(w, fr["frames"], program="chip", noise=chip.ChipNoise())[:, -1]
    assert cal.correlation(noise_free, rec.readouts[idx]).mean() > 0.38
    config = cal.CalibrationConfig(gains=(1.0,), cnn_stds=(3.0,), gate_stds=(4.0,), draws=16,
                                   final_draws=32)
    res = cal.calibrate(w, chip.pooled_counts(w, fr["frames"]), rec.readouts[idx],
                        rec.labels[idx], config)
    assert res["heldout_correlation"] >= 0.5
