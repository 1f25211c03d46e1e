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


@pytest.mark.slow   # minutes on a 2-core CPU: the default suite must stay inside CI's 20
def test_calibrated_noise_matches_the_chip_program_in_distribution(variables):
    video = _video(4, seed=5)
    ours = np.asarray(pr.encode(variables, video, CHIP, rng=jax.random.key(3)))
    theirs = chip_program.run(variables, video, noise=NoiseModel(), rng=jax.random.key(4))
    # measured: mean 0.99 / 0.93, std 3.27 / 3.23 (model units)
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


def _reference_pooled_cnn(frames, kw, const):
    """The CNN of the chip's 16 blocks written out plainly: each block's extended window
    (wrap, or -1 above the top row / right of the right column), 25 taps, grid lines at 0,
    4 x 4 max, relu; tiled (n 4 16 4 16)."""
    jnp = jax.numpy
    out = []
    for by in range(4):
        row = []
        for bx in range(4):
            ext = jnp.pad(frames, ((0, 0), (4, 0), (0, 4)), mode="wrap")
            if by == 0:
                ext = ext.at[:, :4].set(-1.0)
            if bx == 3:
                ext = ext.at[:, :, 64:].set(-1.0)
            c = sum(kw[by, bx, i, j] * ext[:, i:i + 64, j:j + 64] for i in range(5)
                    for j in range(5)) + const
            grid = np.zeros((64, 64), bool)
            grid[0, :] = True
            grid[:, 63] = True
            c = jnp.where(grid, 0.0, c)
            row.append(jnp.maximum(c.reshape(-1, 16, 4, 16, 4).max(axis=(2, 4)), 0.0))
        out.append(jnp.stack(row, 2))          # (n 16 4 16)
    return jnp.stack(out, 1)                   # (n 4 16 4 16)


@pytest.mark.slow   # minutes on a 2-core CPU: the default suite must stay inside CI's 20
def test_pooled_cnn_and_its_gradient_against_the_plain_form():
    from pixelrnn_jax.sensor.scamp5 import chip_forward
    rng = np.random.default_rng(11)
    frames = jax.numpy.asarray(np.sign(rng.normal(size=(6, 64, 64))), jax.numpy.float32)
    kw = jax.numpy.asarray(rng.normal(size=(4, 4, 5, 5)), jax.numpy.float32)
    g = jax.numpy.asarray(rng.normal(size=(6, 4, 16, 4, 16)), jax.numpy.float32)

    def ours(k):
        return chip_forward._pooled_cnn(frames, k, None, (0.5, 0.0, 0.0), None)

    np.testing.assert_allclose(ours(kw), _reference_pooled_cnn(frames, kw, 0.5), rtol=1e-5,
                               atol=1e-4)
    d_ours = jax.grad(lambda k: (ours(k) * g).sum())(kw)
    d_ref = jax.grad(lambda k: (_reference_pooled_cnn(frames, k, 0.5) * g).sum())(kw)
    np.testing.assert_allclose(d_ours, d_ref, rtol=1e-4, atol=1e-3)


def test_strip_taps_backward_is_the_vjp_of_its_linear_forward():
    from pixelrnn_jax.sensor.scamp5 import chip_forward
    rng = np.random.default_rng(12)
    padded = jax.numpy.asarray(rng.normal(size=(3, 68, 72)), jax.numpy.float32)
    kcols = jax.numpy.asarray(rng.normal(size=(25, 68)), jax.numpy.float32)
    g = jax.numpy.asarray(rng.normal(size=(3, 64, 68)), jax.numpy.float32)
    want = jax.vjp(chip_forward._strip_linear, padded, kcols)[1](g)
    got = chip_forward._strip_linear_vjp(padded, kcols, g)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_the_exact_taps_take_the_linear_models_gradient_where_unsaturated():
    from pixelrnn_jax.sensor.scamp5 import chip_forward
    noise = chip_forward.noise_model("default")
    gains, _ = chip_forward._tap_gains(noise)
    weight = gains.reshape(-1)[chip_forward._TAP_INDEX][:, None]
    rng = np.random.default_rng(13)
    padded = jax.numpy.asarray(np.sign(rng.normal(size=(2, 68, 68))), jax.numpy.float32)
    kcols = jax.numpy.asarray(10 * np.sign(rng.normal(size=(25, 64))), jax.numpy.float32)
    g = jax.numpy.asarray(rng.normal(size=(2, 64, 64)), jax.numpy.float32)
    exact, vjp = jax.vjp(lambda p, k: chip_forward._taps_in_order(p, k, noise, 0.0, gains),
                         padded, kcols)
    lo, hi = noise.saturation
    live = (np.asarray(exact) > lo) & (np.asarray(exact) < hi)
    assert 0.5 < live.mean() < 1.0                  # both cases occur
    want = jax.vjp(lambda p, k: chip_forward._strip_linear(p, k * weight), padded,
                   kcols)[1](jax.numpy.where(live, g, 0.0))
    for a, b in zip(vjp(g), want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_hashed_normals_are_standard_and_independent():
    from pixelrnn_jax.sensor.scamp5.noise import hashed_normals
    counter = jax.numpy.arange(200_000, dtype=jax.numpy.uint32)
    a = np.asarray(hashed_normals(jax.numpy.array([1, 2], jax.numpy.uint32), counter))
    b = np.asarray(hashed_normals(jax.numpy.array([1, 3], jax.numpy.uint32), counter))
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01            # another seed, another draw
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.01    # neighbours uncorrelated
    assert abs((a > 1).mean() - 0.1587) < 0.01             # the normal's tail above 1 std


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


@pytest.mark.slow   # minutes on a 2-core CPU: the default suite must stay inside CI's 20
def test_train_command_with_sensor_chip(tmp_path, request, tmp_path_factory):
    """`experiments/train.py --sensor=chip` trains through the chip program and says so,
    after its first --ideal_epochs through the ideal program (a run of its own)."""
    out = subprocess.run([sys.executable, "experiments/train.py", "--flagfile=gesture.flags",
                          "--sensor=chip", "--num_epochs=2", "--ideal_epochs=1",
                          "--sensor_lr_scale=0.25", "--max_videos=8",
                          "--batch_size=4", f"--data_dir={tmp_path}/tfds",
                          f"--workdir={tmp_path}/run"], cwd=REPO,
                         env=subprocess_env(request, tmp_path_factory),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["model"]["sensor"] == results["sensor"]["forward"] == "chip"
    assert 0.0 <= results["test_accuracy"] <= 1.0
    warm = json.loads((tmp_path / "run" / "ideal_warmup" / "results.json").read_text())
    assert warm["sensor"]["forward"] == "ideal" and warm["epochs"] == 1
    assert results["ideal_warmup"]["epochs"] == 1 and results["epochs"] == 1
    assert results["config"]["num_epochs"] == 2 and results["config"]["ideal_epochs"] == 1
    assert results["train_seconds_with_warmup"] > results["train_seconds"]
    # the chip epochs start at the rate the warm-up ended on times --sensor_lr_scale
    last = lambda p: json.loads(p.read_text().splitlines()[-1])  # noqa: E731
    warm_lr = last(tmp_path / "run" / "ideal_warmup" / "metrics.jsonl")["learning_rate"]
    chip_lr = last(tmp_path / "run" / "metrics.jsonl")["learning_rate"]
    assert chip_lr == pytest.approx(0.25 * warm_lr)


def test_decoder_refit_to_chip_readouts_keeps_the_encoder(variables):
    """The start of training through the chip after an ideal warm-up: the decoder layer is
    fitted to the chip's readouts (their noise drawn), the encoder is left as it was."""
    from pixelrnn_jax.training.run import decoder_fit_to_readouts
    cfg = CHIP.replace(num_classes=4)
    params = pr.init(jax.random.key(2), cfg)["params"]
    labels = np.arange(8, dtype=np.int32) % 4
    batches = [{"video": _video(4, seed=s), "label": labels[4 * s:4 * s + 4]} for s in (0, 1)]
    fitted = decoder_fit_to_readouts(params, cfg, batches, jax.random.key(3))
    for a, b in zip(jax.tree.leaves(params["encoder"]), jax.tree.leaves(fitted["encoder"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    readouts = np.concatenate([pr.encode(params, b["video"], cfg, rng=jax.random.fold_in(
        jax.random.key(3), i)) for i, b in enumerate(batches)])
    before = np.asarray(pr.decode(params, readouts, cfg)).argmax(-1)
    after = np.asarray(pr.decode(fitted, readouts, cfg)).argmax(-1)
    assert (after == labels).mean() == 1.0 > (before == labels).mean()
