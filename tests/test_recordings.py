"""Real sensor readouts: loaders, splits and the cross-validated linear decoder."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, shared_file
from PIL import Image

from pixelrnn_jax.sensor import readout_decoder, recordings, units

FAST = readout_decoder.DecoderConfig(weight_decays=(1e-3, 1e-1), margins=(0, 1), folds=3, steps=60,
                                learning_rate=0.05)


def synthetic_outputs(n_per_class=8, classes=3, seed=0):
    """uint8 readouts whose class shows as a bright square at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class).astype(np.int32)
    out = rng.normal(127, 30, size=(len(labels), 64, 64))
    for i, c in enumerate(labels):
        out[i, 8 + 16 * c:20 + 16 * c, 10:40] += 60
    return np.clip(out, 0, 255).astype(np.uint8), labels


def write_archive(path, **overrides):
    outputs, labels = synthetic_outputs()
    arrays = dict(outputs=outputs, labels=labels,
                  names=np.array([f"v{i:03d}" for i in range(len(labels))]),
                  official_train=np.arange(len(labels)) % 4 != 0)
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def test_archive_loads_in_model_units(tmp_path):
    arrays = write_archive(tmp_path / "a.npz")
    rec = recordings.load_recordings(tmp_path / "a.npz")
    np.testing.assert_allclose(rec.readouts, (arrays["outputs"].astype(np.float32) - 127) / 10)
    assert rec.readouts.dtype == np.float32 and rec.num_classes == 3
    train, split = recordings.train_test_split(rec, 0.25, 0)
    assert split == "official" and (train == arrays["official_train"]).all()


@pytest.mark.parametrize("overrides, words", [
    ({"labels": None}, ["lacks", "labels"]),
    ({"outputs": np.zeros((24, 32, 32), np.uint8)}, ["outputs", "(n, 64, 64)"]),
    ({"names": np.array(["a"])}, ["names", "(24,)"]),
    ({"official_train": np.ones(24, bool)}, ["official_train", "not all"]),
])
def test_bad_archives_give_one_line_errors(tmp_path, overrides, words):
    write_archive(tmp_path / "a.npz", **overrides)
    with pytest.raises(ValueError) as e:
        recordings.load_recordings(tmp_path / "a.npz")
    assert "\n" not in str(e.value) and "a.npz" in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        recordings.load_recordings(tmp_path / "nothing")


def write_folder(root, outputs, labels):
    for i, (o, c) in enumerate(zip(outputs, labels)):
        img = np.full((256, 256), 30, np.uint8)
        img[128:192, 128:192] = o
        d = root / str(c + 1) / f"video{i:03d}"
        d.mkdir(parents=True)
        Image.fromarray(img, mode="L").save(d / "15_output.BMP")


def test_frame_folder_reads_the_output_block(tmp_path):
    outputs, labels = synthetic_outputs(n_per_class=4)
    write_folder(tmp_path, outputs, labels)
    rec = recordings.load_recordings(tmp_path)
    np.testing.assert_allclose(rec.readouts, (outputs.astype(np.float32) - 127) / 10)
    assert list(rec.labels) == list(labels) and rec.class_names == ("1", "2", "3")
    assert rec.official_train is None
    train, split = recordings.train_test_split(rec, 0.25, 0)
    assert split.startswith("stratified")
    assert [int((~train & (labels == c)).sum()) for c in range(3)] == [1, 1, 1]
    again, _ = recordings.train_test_split(rec, 0.25, 0)
    assert (again == train).all()


def test_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readouts"):
        recordings.load_recordings(tmp_path / "empty")
    (tmp_path / "gap" / "1" / "v0").mkdir(parents=True)
    with pytest.raises(ValueError, match="lack 15_output.BMP"):
        recordings.load_recordings(tmp_path / "gap")
    d = tmp_path / "small" / "1" / "v0"
    d.mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(d / "15_output.BMP")
    with pytest.raises(ValueError, match="expected 256x256"):
        recordings.load_recordings(tmp_path / "small")


def test_stratified_folds_balance_classes():
    labels = np.repeat(np.arange(3), 10)
    folds = recordings.stratified_folds(labels, 5, 0)
    for c in range(3):
        assert np.bincount(folds[labels == c], minlength=5).tolist() == [2] * 5


def test_finetune_learns_and_selects_on_train_only(tmp_path):
    outputs, labels = synthetic_outputs(n_per_class=12)
    rec = recordings.Recordings(units.readout_to_model_units(outputs), labels,
                                np.arange(len(labels)).astype(str))
    results, decoder = readout_decoder.finetune_decoder(rec, FAST)
    assert results["test_accuracy"] == 1.0 and results["val_accuracy"] > 0.9
    assert results["n_train"] + results["n_test"] == len(labels)
    assert len(results["cv_table"]) == 4
    assert decoder.logits(rec.readouts[:2]).shape == (2, 3)
    # test videos play no part in choosing: changing them leaves the choice and CV unchanged
    train, _ = recordings.train_test_split(rec, FAST.test_fraction, FAST.seed)
    noisy = recordings.Recordings(np.where(train[:, None, None], rec.readouts, 0.0), labels,
                                  rec.names)
    again, _ = readout_decoder.finetune_decoder(noisy, FAST)
    assert again["cv_table"] == results["cv_table"]
    json.dumps(results)


def test_script_writes_results(tmp_path):
    # a subprocess: the experiment scripts define absl flags of the same names
    write_archive(tmp_path / "a.npz")
    argv = [sys.executable, str(REPO / "experiments" / "finetune_decoder.py"),
            f"--recordings={tmp_path / 'a.npz'}", f"--workdir={tmp_path / 'w'}",
            "--weight_decays=1e-3,1e-1", "--margins=0,1", "--folds=3", "--steps=60",
            "--learning_rate=0.05"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    for key in ("test_accuracy", "train_accuracy", "val_accuracy", "n_train", "n_test", "config"):
        assert key in results
    assert results["n_test"] == 6 and results["split"] == "official"
    assert (tmp_path / "w" / "decoder.npz").exists()


def test_cambridge_archive_shape():
    rec = recordings.load_recordings(shared_file("cambridge_scamp5_outputs.npz"))
    assert rec.readouts.shape == (810, 64, 64) and rec.num_classes == 9
    assert int(rec.official_train.sum()) == 720
    assert np.abs(rec.readouts).max() <= 12.8


@pytest.mark.slow
def test_cambridge_decoder_reaches_ninety_percent():
    rec = recordings.load_recordings(shared_file("cambridge_scamp5_outputs.npz"))
    results, _ = readout_decoder.finetune_decoder(rec, readout_decoder.DecoderConfig())
    assert results["test_accuracy"] >= 0.9, results["test_accuracy"]
