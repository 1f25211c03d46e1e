"""The authors' weight formats, the mapping to model variables, and their reference activations."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import REPO, shared_file

import pixelrnn_jax
from pixelrnn_jax import ModelConfig, authors_files, authors_model

SMALL = ModelConfig(num_classes=4)  # the sensor's shape: compiled once for all tests


def random_weights(seed=0, conv2=False, decoder=True) -> authors_files.OfficialWeights:
    rng = np.random.default_rng(seed)
    pm = lambda *s: rng.choice([-1.0, 1.0], size=s)  # noqa: E731
    extra = {}
    if decoder:
        extra = dict(thresh3=float(rng.normal()), fin_conv_weight=np.array([[[[-1.0]]]]),
                     fin_convpost_weight=rng.normal(size=1), fin_convpost_bias=rng.normal(size=1),
                     fc_weight=rng.normal(size=(4, 64 * 64)), fc_bias=rng.normal(size=4))
    return authors_files.OfficialWeights(
        conv1=pm(16, 5, 5), thresh1=float(0.5 + abs(rng.normal())), w_f=pm(5, 5), u_f=pm(5, 5),
        w_o=pm(5, 5), u_o=pm(5, 5), rnn_threshold=float(rng.normal()),
        conv2=pm(16, 5, 5) if conv2 else None, thresh2=float(rng.normal()) if conv2 else None,
        **extra)


def test_kernel_value_order_is_bottom_row_first():
    k = authors_files.kernel_from_values(range(25))
    assert list(k[4]) == [0, 1, 2, 3, 4] and list(k[0]) == [20, 21, 22, 23, 24]
    assert authors_files.kernel_to_values(k) == list(range(25))


def test_conv1_groups_are_in_sensor_quadrant_order():
    groups = [[k] * 25 for k in range(16)]
    conv = authors_files.conv_from_groups(groups)
    order = [1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 4, 8, 12, 16]
    for k in range(16):
        assert (conv[order[k] - 1] == k).all()
        assert order[k] - 1 == 4 * (k % 4) + k // 4  # header filter n -> channel
    assert authors_files.conv_to_groups(conv) == groups


@pytest.mark.parametrize("conv2", [False, True])
def test_text_round_trip_exact(tmp_path, conv2):
    w = random_weights(1, conv2=conv2)
    authors_files.save_weights_text(w, tmp_path / "a.txt")
    back = authors_files.load_weights_text(tmp_path / "a.txt")
    assert back.equals(w)
    authors_files.save_weights_text(back, tmp_path / "b.txt")
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()


def test_zero_rnn_threshold_is_omitted_and_reads_as_zero(tmp_path):
    w = dataclasses.replace(random_weights(2), rnn_threshold=0.0)
    authors_files.save_weights_text(w, tmp_path / "w.txt")
    assert "rnn_threshold" not in (tmp_path / "w.txt").read_text()
    assert authors_files.load_weights_text(tmp_path / "w.txt").rnn_threshold == 0.0


@pytest.mark.parametrize("name", ["lip_iw10.txt", "cam_noise_iw10.txt"])
def test_authors_files_round_trip_byte_for_byte(tmp_path, name):
    path = shared_file(f"official_weights/{name}")
    w = authors_files.load_weights_text(path)
    assert w.conv1.shape == (16, 5, 5) and set(np.unique(w.conv1)) == {-1.0, 1.0}
    assert w.fc_weight.shape[1] == 4096 and w.fc_bias.shape == w.fc_weight.shape[:1]
    authors_files.save_weights_text(w, tmp_path / name)
    assert (tmp_path / name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("conv2", [False, True])
def test_header_round_trip_and_slots(tmp_path, conv2):
    w = random_weights(3, conv2=conv2, decoder=False)
    authors_files.save_header(w, tmp_path / "w.h")
    text = (tmp_path / "w.h").read_text()
    assert "const int8_t CONV1_WEIGHTS_5x5[][1][25]" in text
    assert "const int8_t HIDDEN_WEIGHTS_5x5[][1][25]" in text
    assert f"CONV1_THRESHOLD = INPUT_WHITE * {w.thresh1!r}" in text
    back = authors_files.load_header(tmp_path / "w.h")
    assert back.equals(w)
    hidden = text.split("HIDDEN_WEIGHTS_5x5")[1].split("};")[0]
    slots = authors_files._parse_kernel_groups(hidden.split("=", 1)[1].strip()[1:], "hidden")
    for name, slot in {"w_f": 5, "u_f": 6, "w_o": 9, "u_o": 10}.items():
        assert slots[slot] == authors_files.kernel_to_values(getattr(w, name))
    assert all(not any(slots[s]) for s in range(16) if s not in (5, 6, 9, 10))


def test_header_threshold_in_sensor_units(tmp_path):
    w = random_weights(4, decoder=False)
    authors_files.save_header(w, tmp_path / "w.h")
    body = (tmp_path / "w.h").read_text()
    body = body.replace(f"INPUT_WHITE * {w.thresh1!r}", "10")
    body = body.replace("INPUT_WHITE = 10", "INPUT_WHITE = 20")
    (tmp_path / "plain.h").write_text(body)
    # 10 units / 20 per product
    assert authors_files.load_header(tmp_path / "plain.h").thresh1 == 0.5


def _write_variant(tmp_path, edit) -> Path:
    w = random_weights(5)
    authors_files.save_weights_text(w, tmp_path / "ok.txt")
    path = tmp_path / "bad.txt"
    path.write_text(edit((tmp_path / "ok.txt").read_text()))
    return path


def _drop_kernel(text):
    head, rest = text.split("cnn_model.conv1.weight:\n")
    first = rest.index("    { \n")
    second = rest.index("    { \n", first + 1)
    return head + "cnn_model.conv1.weight:\n" + rest[:first] + rest[second:]


def _drop_entry(text):
    lines = text.splitlines(keepends=True)
    i = lines.index("rnn_model.conv_out_h.weight:\n")
    return "".join(lines[:i] + lines[i + 4:])


def _non_binary(text):
    head, rest = text.split("rnn_model.convgates_i.weight:\n")
    return head + "rnn_model.convgates_i.weight:\n" + rest.replace("{1,", "{2,", 1).replace(
        "{-1,", "{2,", 1)


@pytest.mark.parametrize("edit, words", [
    (_drop_entry, ["missing entry", "rnn_model.conv_out_h.weight"]),
    (_drop_kernel, ["cnn_model.conv1.weight", "15 kernels, expected 16"]),
    (_non_binary, ["rnn_model.convgates_i.weight", "non-binary"]),
    (lambda t: t.replace("cnn_model.thresh1:\n[", "cnn_model.thresh1:\n[oops, "),
     ["cnn_model.thresh1", "unparsable"]),
    (lambda t: "garbage line\n" + t, ["line 1", "garbage line"]),
    (lambda t: t.replace("},\n    }, \n", ",1},\n    }, \n", 1),
     ["cnn_model.conv1.weight", "26 values"]),
])
def test_malformed_files_name_file_entry_and_problem(tmp_path, edit, words):
    path = _write_variant(tmp_path, edit)
    with pytest.raises(ValueError) as e:
        authors_files.load_weights_text(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    for word in words:
        assert word in msg


def test_missing_file_and_header_array(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        authors_files.load_weights_text(tmp_path / "nope.txt")
    (tmp_path / "h.h").write_text("const int INPUT_WHITE = 10;\n")
    with pytest.raises(ValueError, match="CONV1_WEIGHTS_5x5"):
        authors_files.load_header(tmp_path / "h.h")


@lru_cache(maxsize=None)
def _small_model(seed=0):
    w = random_weights(seed, decoder=False)
    return w, authors_model.to_variables(w, SMALL)


def test_variables_round_trip_and_sign_of_zero():
    w, variables = _small_model()
    back = authors_model.from_variables(variables)
    f32 = lambda v: float(np.float32(v))  # noqa: E731  variables hold float32
    assert back.equals(dataclasses.replace(w, thresh1=f32(w.thresh1),
                                           rnn_threshold=f32(w.rnn_threshold)))
    latent = jax.tree.map(np.array, variables)
    latent["params"]["encoder"]["cell"]["w_f"][0, 0] = 0.0
    latent["params"]["encoder"]["cell"]["w_f"][0, 1] = -1e-3
    b = authors_model.from_variables(latent)
    assert b.w_f[0, 0] == 1.0 and b.w_f[0, 1] == -1.0


def test_to_variables_checks_config():
    w, _ = _small_model()
    with pytest.raises(ValueError, match="cnn_layers"):
        authors_model.to_variables(w, SMALL.replace(cnn_layers=2))
    with pytest.raises(ValueError, match="binary PixelRNN"):
        authors_model.to_variables(w, SMALL.replace(precision="32bit"))


def test_intermediates_agree_with_encode():
    """The readout of `encode` is o at the last frame of every K-frame window."""
    _, variables = _small_model()
    rng = np.random.default_rng(0)
    binarized = rng.random((1, 32, 64, 64)) < 0.5
    steps = authors_model.intermediates(variables, binarized, SMALL)
    video = np.where(binarized, 1.0, -1.0).astype(np.float32)
    o = np.asarray(pixelrnn_jax.encode(variables, video, SMALL))
    np.testing.assert_array_equal(o, steps["o"][:, SMALL.K - 1::SMALL.K])
    assert steps["hidden"][:, ::SMALL.K].all()  # reset to all +1 every K frames
    h = np.where(steps["hidden"], 1, -1)
    f = np.where(steps["forget"], 1, -1)
    np.testing.assert_array_equal(h[:, 1:16], (h * f)[:, 0:15])
    assert steps["forget"].dtype == bool and steps["o"].dtype == np.float32


def test_intermediates_rejects_bad_input():
    _, variables = _small_model()
    with pytest.raises(ValueError, match="bool"):
        authors_model.intermediates(variables, np.zeros((1, 16, 64, 64)), SMALL)
    with pytest.raises(ValueError, match="64x64"):
        authors_model.intermediates(variables, np.zeros((1, 16, 8, 8), bool), SMALL)
    with pytest.raises(ValueError, match="multiple of K"):
        authors_model.intermediates(variables, np.zeros((1, 8, 64, 64), bool), SMALL)


@lru_cache(maxsize=None)
def _reference(sample, weights, classes):
    ref = dict(np.load(shared_file(sample)))
    w = authors_files.load_weights_text(shared_file(f"official_weights/{weights}"))
    cfg = ModelConfig(num_classes=classes)
    variables = authors_model.to_variables(w, cfg)
    return ref, authors_model.intermediates(variables, ref["binarized"], cfg)


def test_tulips_reference_bit_exact():
    ref, out = _reference("tulips_reference_sample.npz", "lip_iw10.txt", 4)
    for key in ("cnn_out", "hidden", "forget"):
        np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
    o = np.floor(np.clip(out["o"] * 10 + 127, 0, 255))
    np.testing.assert_array_equal(o, ref["ft_ot"][:, :, 64:128])


def test_cambridge_reference_far_from_threshold():
    ref, out = _reference("cambridge_reference_sample.npz", "cam_noise_iw10.txt", 9)
    far = np.abs(out["cnn_pre"]) > 1.5
    agree = (out["cnn_out"] == ref["cnn_out"])[far].mean()
    assert far.mean() > 0.3 and agree >= 0.999, (far.mean(), agree)


def test_intermediates_script(tmp_path):
    w = random_weights(6, decoder=False)
    authors_files.save_weights_text(w, tmp_path / "w.txt")
    binarized = np.random.default_rng(1).random((1, 16, 64, 64)) < 0.5
    np.savez(tmp_path / "x.npz", binarized=binarized)
    script = [sys.executable, str(REPO / "experiments" / "official_intermediates.py"),
              f"--weights={tmp_path / 'w.txt'}", f"--out={tmp_path / 'y.npz'}"]
    res = subprocess.run(script + [f"--inputs={tmp_path / 'x.npz'}"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    with np.load(tmp_path / "y.npz") as y:
        assert {"cnn_out", "hidden", "forget", "o"} <= set(y.files)
        assert y["cnn_out"].shape == (1, 16, 64, 64) and y["o"].dtype == np.float32
    np.savez(tmp_path / "bad.npz", frames=binarized)
    with pytest.raises(ValueError, match="binarized"):
        authors_model.write_intermediates(tmp_path / "w.txt", tmp_path / "bad.npz",
                                          tmp_path / "y.npz")
    res = subprocess.run(script + [f"--inputs={tmp_path / 'bad.npz'}"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "binarized" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_binary_cnn_threshold_is_floored_where_it_is_applied_and_exported():
    """A binary CNN threshold <= 0 would pass every cell (constant output): the layer, the
    exported weight file and the sensor planes all apply max(threshold, 0.5)."""
    _, variables = _small_model()
    low = jax.tree.map(np.array, variables)
    low["params"]["encoder"]["cnn_0"]["threshold"] = np.float32(-0.7)
    floor = jax.tree.map(np.array, variables)
    floor["params"]["encoder"]["cnn_0"]["threshold"] = np.float32(0.5)
    video = np.random.default_rng(1).standard_normal((1, 16, 64, 64)).astype(np.float32)
    a = np.asarray(pixelrnn_jax.encode(low, video, SMALL))
    b = np.asarray(pixelrnn_jax.encode(floor, video, SMALL))
    np.testing.assert_array_equal(a, b)
    assert authors_model.from_variables(low).thresh1 == 0.5
    # the floor is straight-through: the learned value still gets a gradient
    g = jax.grad(lambda t: pixelrnn_jax.encode(
        {"params": {**low["params"], "encoder": {**low["params"]["encoder"], "cnn_0": {
            **low["params"]["encoder"]["cnn_0"], "threshold": t}}}},
        video, SMALL).sum())(np.float32(-0.7))
    assert np.isfinite(g) and g != 0
