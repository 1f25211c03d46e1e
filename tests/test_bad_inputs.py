"""The table of bad inputs and the error a user sees for each.

Every row builds one bad input (in a temporary folder), hands it to the library function or
the command line that a user would, and checks the error: the expected type, one line
naming the input and what to do (the dataset-folder errors add the distributor's download
instructions on the lines after the first), raised by this library's own checks and never
from inside JAX, and never a silent fallback. Rows marked `gap` are known silent
acceptances: strict xfails that start failing once the check exists.

    python -m pytest tests/test_bad_inputs.py -q      # one test per row
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "experiments" / "train.py"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Path], object]      # builds the input under the folder and uses it
    error: type | tuple                # the exception type users get
    words: tuple[str, ...]             # the first line names the input and what to do
    multiline: bool = False            # dataset folders: download instructions follow
    gap: str = ""                      # known silent acceptance (strict xfail)


def _fmt(words, tmp: Path):
    return tuple(w.replace("{tmp}", str(tmp)) for w in words)


# ------------------------------------------------------------------------------ videos

def _cfg(**kw):
    from pixelrnn_jax import ModelConfig
    return ModelConfig(**{"frame_size": 16, "K": 4, "cnn_layers": 0, **kw})


def _variables():
    import jax

    import pixelrnn_jax as pr
    return pr.init(jax.random.key(0), _cfg(), 4)


def _encode(video, **kw):
    import pixelrnn_jax as pr
    return lambda tmp: pr.encode(_variables(), video, _cfg(**kw))


def _video(shape=(2, 4, 16, 16), dtype=np.float32, value=None):
    v = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    if value is not None:
        v.flat[5] = value
    return v


def _classify_nan(tmp):
    import pixelrnn_jax as pr
    return pr.classify(_variables(), _video(value=np.nan), _cfg())


VIDEO_CASES = [
    Case("video-rank-2", _encode(_video((16, 16))), ValueError,
         ("video must be (batch, frames, height, width)", "rank 2")),
    Case("video-rank-5", _encode(_video((1, 2, 4, 16, 16))), ValueError,
         ("video must be", "rank 5")),
    Case("video-wrong-size", _encode(_video((2, 4, 32, 32))), ValueError,
         ("frames must be 16x16", "got 32x32", "resize them or set frame_size")),
    Case("video-not-square", _encode(_video((2, 4, 16, 20))), ValueError,
         ("frames must be 16x16", "got 16x20")),
    Case("video-uint8", _encode(_video(dtype=np.uint8)), ValueError,
         ("dtype uint8", "normalize_frames")),
    Case("video-int32", _encode(_video(dtype=np.int32)), ValueError,
         ("float normalized intensities", "dtype int32")),
    Case("video-nan", _encode(_video(value=np.nan)), ValueError,
         ("video contains NaN or infinite values", "clean the input frames")),
    Case("video-inf", _encode(_video(value=np.inf)), ValueError,
         ("NaN or infinite",)),
    Case("video-nan-classify", _classify_nan, ValueError, ("NaN or infinite",)),
    Case("video-frames-not-multiple-of-K", _encode(_video((2, 6, 16, 16))), ValueError,
         ("6 frames", "K=4", "pass a multiple of K frames or change K")),
    Case("video-fewer-frames-than-K", _encode(_video((2, 2, 16, 16))), ValueError,
         ("2 frames", "K=4")),
    Case("video-not-an-array", _encode([[0.0] * 16] * 16), TypeError,
         ("video must be an array", "got list")),
]


# ---------------------------------------------------------------- training datasets

def _splits(frame_size=16, n_train=8):
    from pixelrnn_jax.data import DatasetSplits, Split

    rng = np.random.default_rng(0)

    def split(name, n):
        vids = [rng.integers(0, 256, (6, frame_size, frame_size), dtype=np.uint8)
                for _ in range(n)]
        return Split.from_videos(name, vids, np.arange(n) % 3, [f"{name}{i}" for i in range(n)],
                                 frame_size)

    return DatasetSplits("tiny", split("train", n_train), split("val", 3), split("test", 3), 3,
                         ("a", "b", "c"), {}, "tiny")


def _train(tmp, dataset, **kw):
    from pixelrnn_jax.training import TrainConfig, train_and_evaluate
    config = TrainConfig(model=_cfg(num_classes=3), num_frames=4, batch_size=4, num_epochs=1,
                         **kw)
    return train_and_evaluate(config, tmp / "work", dataset=dataset)


def _other_settings(tmp):
    """A workdir holding checkpoints of another run (learning rate 0.01), rerun at 0.02."""
    import jax.numpy as jnp

    from pixelrnn_jax.training import CheckpointStore, TrainConfig, rundir
    from pixelrnn_jax.training.run import RESUMABLE_CHANGES
    before = TrainConfig(model=_cfg(num_classes=3), num_frames=4, batch_size=4,
                         learning_rate=0.01)
    CheckpointStore(tmp / "work" / "checkpoints").save(
        1, {"x": jnp.zeros(2)},
        {"epoch": 1, "run": rundir.run_identity(before.to_dict(), RESUMABLE_CHANGES)})
    return _train(tmp, _splits(), learning_rate=0.02)


def _workdir_in_file(tmp):
    (tmp / "file").write_text("x")
    from pixelrnn_jax.training import TrainConfig, train_and_evaluate
    return train_and_evaluate(TrainConfig(model=_cfg(num_classes=3), num_frames=4),
                              tmp / "file" / "work", dataset=_splits())


def _workdir_read_only(tmp):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders (checked for the checkpoints folder "
                    "by test_reliability under setpriv)")
    (tmp / "ro").mkdir(mode=0o555)
    from pixelrnn_jax.training import TrainConfig, train_and_evaluate
    return train_and_evaluate(TrainConfig(model=_cfg(num_classes=3), num_frames=4),
                              tmp / "ro", dataset=_splits())


def _first_run(tmp, **model):
    from pixelrnn_jax.training import TrainConfig, train_and_evaluate
    first = TrainConfig(model=_cfg(num_classes=3, **model), num_frames=4, batch_size=4,
                        num_epochs=1)
    train_and_evaluate(first, tmp / "first", dataset=_splits())
    return first


def _init_from_other_model(tmp):
    from pixelrnn_jax.training import train_and_evaluate
    first = _first_run(tmp)
    config = first.replace(model=_cfg(num_classes=3, cnn_layers=1), init_from=str(tmp / "first"))
    return train_and_evaluate(config, tmp / "work", dataset=_splits())


def test_init_from_starts_from_the_finished_runs_parameters(tmp_path):
    import jax

    from pixelrnn_jax.training import load_trained, train_and_evaluate
    first = _first_run(tmp_path)
    # a noise-aware run of the same model, zero epochs: its best parameters are the start
    noisy = first.replace(model=first.model.replace(noise_gate=0.5), num_epochs=0,
                          init_from=str(tmp_path / "first"))
    train_and_evaluate(noisy, tmp_path / "noisy", dataset=_splits())
    (_, a), (cfg, b) = load_trained(tmp_path / "first"), load_trained(tmp_path / "noisy")
    assert cfg.model.noise_gate == 0.5 and cfg.init_from == str(tmp_path / "first")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _sweep_from_a_warm_start(tmp):
    from pixelrnn_jax.training import TrainConfig, train_sweep
    config = TrainConfig(model=_cfg(num_classes=3), num_frames=4, batch_size=4, num_epochs=1,
                         ideal_epochs=1)
    return train_sweep(config, [0, 1], [1e-2], tmp / "sweep", dataset=_splits())


def _training_error():
    from pixelrnn_jax.training import TrainingError
    return TrainingError


TRAIN_CASES = [
    Case("dataset-frame-size-differs-from-model", lambda t: _train(t, _splits(frame_size=32)),
         ValueError, ("32x32 frames", "frame_size=16", "--frame_size=32")),
    Case("training-split-smaller-than-a-batch", lambda t: _train(t, _splits(n_train=3)),
         ValueError, ("training split has 3 videos", "lower --batch_size")),
    Case("rerun-with-other-settings-in-same-workdir", _other_settings, ValueError,
         ("holds checkpoints of a run with other settings",
          "learning_rate=0.02 (checkpoints: 0.01)", "choose another --workdir")),
    Case("init-from-a-run-of-another-model", _init_from_other_model, ValueError,
         ("--init_from={tmp}/first trained a different model", "cnn_layers=0 there, 1 here",
          "only the noise sites, --m and the sensor may change")),
    Case("sweep-with-an-ideal-warm-up", _sweep_from_a_warm_start, ValueError,
         ("ideal_epochs=1: a sweep starts every member from its own initialization",
          "experiments/train.py")),
    Case("workdir-inside-a-file", _workdir_in_file, RuntimeError,
         ("workdir {tmp}/file/work is not writable", "choose another --workdir")),
    Case("workdir-read-only", _workdir_read_only, RuntimeError,
         ("workdir {tmp}/ro is not writable",)),
]


# -------------------------------------------------------------------- dataset folders

def _tulips(tmp, *, sizes=None, skip_digits=(), frames=3) -> Path:
    """A Tulips1-layout folder (<digit>/<Speaker><rep>/frameNN.jpg), tiny frames."""
    from PIL import Image

    root = tmp / "tulips"
    rng = np.random.default_rng(0)
    for d in "1234":
        if d in skip_digits:
            continue
        for spk in ("Anna", "Bob", "Cid"):
            for rep in "12":
                v = root / d / f"{spk}{rep}"
                v.mkdir(parents=True)
                for f in range(frames):
                    w, h = (sizes or {}).get((d, spk, rep, f), (40, 30))
                    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
                    Image.fromarray(img).save(v / f"frame{f:02d}.jpg")
    return root


def _load(name, root_fn):
    def run(tmp):
        from pixelrnn_jax.data import load_dataset
        root = root_fn(tmp)
        return load_dataset(name, root, cache_dir=tmp / "cache", frame_size=16)
    return run


def _damaged_frame(kind):
    def make(tmp):
        root = _tulips(tmp)
        bad = root / "3" / "Bob1" / "frame01.jpg"
        bad.write_bytes(bad.read_bytes()[:100] if kind == "truncated" else b"not an image")
        return root
    return make


def _mkdirs(*paths):
    def make(tmp):
        for p in paths:
            (tmp / "ds" / p).mkdir(parents=True)
        return tmp / "ds"
    return make


def _with_file(rel):
    def make(tmp):
        p = tmp / "ds" / rel
        p.parent.mkdir(parents=True)
        p.write_bytes(b"PK\x03\x04")
        return tmp / "ds"
    return make


def _cambridge_frames(*video_dirs):
    def make(tmp):
        from PIL import Image
        for v in video_dirs:
            (tmp / "ds" / v).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "ds" / v / "0001.jpg")
        return tmp / "ds"
    return make


DATASET_CASES = [
    Case("dataset-folder-missing", _load("tulips1", lambda t: t / "nowhere"),
         FileNotFoundError, ("tulips1: folder {tmp}/nowhere does not exist",), multiline=True),
    Case("dataset-folder-empty", _load("tulips1", _mkdirs(".")), FileNotFoundError,
         ("tulips1: folder {tmp}/ds is empty",), multiline=True),
    Case("dataset-folder-not-extracted", _load("tulips1", _with_file("tulips1.zip")),
         FileNotFoundError, ("holds only 'tulips1.zip'", "extract archives first"),
         multiline=True),
    Case("dataset-no-data-dir", _load("cambridge_hand_gesture", lambda t: None),
         FileNotFoundError, ("cambridge_hand_gesture: no data folder given",
                             "pass data_dir"), multiline=True),
    Case("dataset-wrong-layout", _load("tulips1", _mkdirs("videos/one")), ValueError,
         ("unexpected folder {tmp}/ds/videos", "expected digit folders 1..4"),
         multiline=True),
    Case("dataset-wrong-utterance-name", _load("tulips1", _mkdirs("2/clip7")), ValueError,
         ("unexpected folder {tmp}/ds/2/clip7", "<Speaker><1|2>"), multiline=True),
    Case("dataset-video-without-frames", _load("tulips1", _mkdirs("1/Anna1")), ValueError,
         ("video folder {tmp}/ds/1/Anna1 holds no image frames",)),
    Case("dataset-folder-inside-video", _load("tulips1", _mkdirs("1/Anna1/extra")),
         ValueError, ("unexpected folder {tmp}/ds/1/Anna1/extra inside the video folder",)),
    Case("cambridge-video-in-wrong-class-folder",
         _load("cambridge_hand_gesture", _cambridge_frames("3/Set1_4_0001")), ValueError,
         ("is in class folder 3 but its name says class 4", "move it to {tmp}/ds/4")),
    Case("cambridge-mixed-layouts", _load("cambridge_hand_gesture",
                                          _cambridge_frames("Set1/0000/0000", "2/Set1_2_0001")),
         ValueError, ("unexpected folder {tmp}/ds/Set1", "expected class folders 1..9"),
         multiline=True),
    Case("dataset-truncated-frame", _load("tulips1", _damaged_frame("truncated")), ValueError,
         ("cannot read frame {tmp}/tulips/3/Bob1/frame01.jpg", "replace or delete this file")),
    Case("dataset-unreadable-frame", _load("tulips1", _damaged_frame("garbage")), ValueError,
         ("cannot read frame {tmp}/tulips/3/Bob1/frame01.jpg", "replace or delete this file")),
    Case("dataset-mixed-resolution-in-a-video",
         _load("tulips1", lambda t: _tulips(t, sizes={("2", "Bob", "1", 1): (80, 60)})),
         ValueError, ("Bob1",)),
    Case("dataset-mixed-resolution-across-videos",
         _load("tulips1", lambda t: _tulips(t, sizes={("2", "Bob", "1", f): (80, 60)
                                                       for f in range(3)})),
         ValueError, ("resolution",)),
    Case("dataset-missing-a-class", _load("tulips1", lambda t: _tulips(t, skip_digits="4")),
         ValueError, ("four",), multiline=True),
    Case("dataset-unknown-name", _load("kinetics", lambda t: t), ValueError,
         ("unknown video dataset 'kinetics'", "choose one of")),
]


# ----------------------------------------------------------------------- weight files

def _weights():
    from pixelrnn_jax import authors_files
    rng = np.random.default_rng(0)
    pm = lambda *s: rng.choice([-1.0, 1.0], size=s)  # noqa: E731
    return authors_files.OfficialWeights(conv1=pm(16, 5, 5), thresh1=0.5, w_f=pm(5, 5),
                                    u_f=pm(5, 5), w_o=pm(5, 5), u_o=pm(5, 5),
                                    rnn_threshold=0.25)


def _weight_text(edit):
    def run(tmp):
        from pixelrnn_jax import authors_files
        authors_files.save_weights_text(_weights(), tmp / "ok.txt")
        (tmp / "w.txt").write_text(edit((tmp / "ok.txt").read_text()))
        return authors_files.load_weights_text(tmp / "w.txt")
    return run


def _drop_conv1_kernel(text):
    head, rest = text.split("cnn_model.conv1.weight:\n")
    first = rest.index("    { \n")
    second = rest.index("    { \n", first + 1)
    return head + "cnn_model.conv1.weight:\n" + rest[:first] + rest[second:]


def _drop_entry(name):
    def edit(text):
        lines = text.splitlines(keepends=True)
        i = lines.index(f"{name}:\n")
        j = next((k for k in range(i + 1, len(lines)) if lines[k].rstrip().endswith(":")
                  and not lines[k].startswith(" ")), len(lines))
        return "".join(lines[:i] + lines[j:])
    return edit


def _in_entry(name, old, new):
    def edit(text):
        head, rest = text.split(f"{name}:\n")
        return head + f"{name}:\n" + rest.replace(old, new, 1)
    return edit


def _first_value(name, new):
    """Replaces `{v,` (the first value of the entry's first kernel) by `new`."""
    def edit(text):
        head, rest = text.split(f"{name}:\n")
        return head + f"{name}:\n" + re.sub(r"\{-?1,", new, rest, count=1)
    return edit


def _header(edit):
    def run(tmp):
        from pixelrnn_jax import authors_files
        authors_files.save_header(_weights(), tmp / "ok.h")
        (tmp / "w.h").write_text(edit((tmp / "ok.h").read_text()))
        return authors_files.load_header(tmp / "w.h")
    return run


def _drop_hidden_slot(text):
    head, rest = text.split("HIDDEN_WEIGHTS_5x5[][1][25] = {\n")
    first = rest.index("    { \n")
    second = rest.index("    { \n", first + 1)
    return head + "HIDDEN_WEIGHTS_5x5[][1][25] = {\n" + rest[:first] + rest[second:]


def _to_variables(**cfg):
    def run(tmp):
        from pixelrnn_jax import ModelConfig, authors_model
        return authors_model.to_variables(_weights(), ModelConfig(**cfg))
    return run


WEIGHT_CASES = [
    Case("weights-file-missing", lambda t: __import__("pixelrnn_jax").authors_files
         .load_weights_text(t / "none.txt"), FileNotFoundError,
         ("weight file not found: {tmp}/none.txt",)),
    Case("weights-15-conv1-kernels", _weight_text(_drop_conv1_kernel), ValueError,
         ("{tmp}/w.txt", "'cnn_model.conv1.weight'", "15 kernels, expected 16")),
    Case("weights-kernel-with-24-values", _weight_text(_first_value(
        "rnn_model.convgates_h.weight", "{")), ValueError,
         ("'rnn_model.convgates_h.weight'", "24 values, expected 25")),
    Case("weights-non-binary-value", _weight_text(_first_value(
        "rnn_model.conv_out_i.weight", "{0.5,")), ValueError,
         ("'rnn_model.conv_out_i.weight'", "non-binary kernel values [0.5]",
          "only -1 and +1")),
    Case("weights-missing-entry", _weight_text(_drop_entry("rnn_model.convgates_i.weight")),
         ValueError, ("{tmp}/w.txt", "missing entry 'rnn_model.convgates_i.weight'")),
    Case("weights-missing-threshold", _weight_text(_drop_entry("cnn_model.thresh1")),
         ValueError, ("missing entry 'cnn_model.thresh1'",)),
    Case("weights-unknown-entry", _weight_text(lambda t: t + "rnn_model.extra:\n[1.0]\n"),
         ValueError, ("unknown entries ['rnn_model.extra']", "expected names among")),
    Case("weights-duplicate-entry",
         _weight_text(lambda t: t + "cnn_model.thresh1:\n[0.5]\n"), ValueError,
         ("entry 'cnn_model.thresh1' appears twice",)),
    Case("weights-unparsable-threshold",
         _weight_text(_in_entry("cnn_model.thresh1", "[0.5]", "[half]")), ValueError,
         ("'cnn_model.thresh1'", "unparsable value", "expected a Python-style list")),
    Case("weights-infinite-threshold",
         _weight_text(_in_entry("cnn_model.thresh1", "[0.5]", "[1e999]")), ValueError,
         ("'cnn_model.thresh1'", "non-finite")),
    Case("weights-line-outside-entry", _weight_text(lambda t: "stray\n" + t), ValueError,
         ("line 1 is not inside an entry", "expected a 'name:' line first")),
    Case("header-missing-hidden-array",
         _header(lambda t: t.replace("HIDDEN_WEIGHTS_5x5", "OTHER_WEIGHTS")), ValueError,
         ("{tmp}/w.h", "missing array 'HIDDEN_WEIGHTS_5x5'")),
    Case("header-15-hidden-slots", _header(_drop_hidden_slot), ValueError,
         ("'HIDDEN_WEIGHTS_5x5' has 15 slots, expected 16",)),
    Case("header-non-binary", _header(lambda t: t.replace("{1,", "{3,", 1)), ValueError,
         ("'CONV1_WEIGHTS_5x5'", "non-binary kernel values [3.0]")),
    Case("header-missing-threshold",
         _header(lambda t: "\n".join(ln for ln in t.splitlines()
                                     if "CONV1_THRESHOLD" not in ln)),
         ValueError, ("missing constant 'CONV1_THRESHOLD'",)),
    Case("weights-into-2-layer-config", _to_variables(cnn_layers=2), ValueError,
         ("1 CNN layer(s) but config.cnn_layers=2", "set cnn_layers=1")),
    Case("weights-into-32bit-config", _to_variables(precision="32bit"), ValueError,
         ("binary PixelRNN", "precision='1bit'")),
]


# ------------------------------------------------------------------------- recordings

def _archive(**overrides):
    def run(tmp):
        from pixelrnn_jax.sensor import recordings
        n = 6
        arrays = dict(outputs=np.full((n, 64, 64), 127, np.uint8),
                      labels=np.arange(n) % 2, names=np.array([f"v{i}" for i in range(n)]))
        arrays.update(overrides)
        np.savez(tmp / "rec.npz", **{k: v for k, v in arrays.items() if v is not None})
        return recordings.load_recordings(tmp / "rec.npz")
    return run


def _not_npz(tmp):
    from pixelrnn_jax.sensor import recordings
    (tmp / "rec.npz").write_bytes(b"this is not a zip archive")
    return recordings.load_recordings(tmp / "rec.npz")


def _frame_folder(kind):
    def run(tmp):
        from PIL import Image

        from pixelrnn_jax.sensor import recordings
        for c in ("0", "1"):
            for v in ("a", "b"):
                d = tmp / "rec" / c / v
                d.mkdir(parents=True)
                size = (128, 128) if kind == "size" and (c, v) == ("1", "b") else (256, 256)
                Image.fromarray(np.zeros(size, np.uint8)).save(d / "15_output.BMP")
        bad = tmp / "rec" / "1" / "b" / "15_output.BMP"
        if kind == "missing":
            bad.unlink()
        elif kind == "unreadable":
            bad.write_bytes(b"BM not really")
        return recordings.load_recordings(tmp / "rec")
    return run


RECORDING_CASES = [
    Case("recordings-missing-labels", _archive(labels=None), ValueError,
         ("{tmp}/rec.npz lacks array(s) ['labels']", "expected outputs (n, 64, 64) uint8")),
    Case("recordings-missing-outputs-and-names", _archive(outputs=None, names=None), ValueError,
         ("lacks array(s) ['outputs', 'names']",)),
    Case("recordings-wrong-readout-size", _archive(outputs=np.zeros((6, 32, 32), np.uint8)),
         ValueError, ("outputs has shape (6, 32, 32), expected (n, 64, 64)",)),
    Case("recordings-labels-do-not-match", _archive(labels=np.arange(5)), ValueError,
         ("labels (5,)", "must both be (6,)")),
    Case("recordings-negative-labels", _archive(labels=np.arange(6) - 1), ValueError,
         ("labels must be integers >= 0",)),
    Case("recordings-float-labels", _archive(labels=np.zeros(6)), ValueError,
         ("labels must be integers >= 0", "float64")),
    Case("recordings-split-all-train", _archive(official_train=np.ones(6, bool)), ValueError,
         ("official_train must mark some, not all, videos",)),
    Case("recordings-not-an-archive", _not_npz, ValueError,
         ("{tmp}/rec.npz is not a NumPy .npz archive",)),
    Case("recordings-not-found", lambda t: __import__("pixelrnn_jax").recordings
         .load_recordings(t / "none.npz"), FileNotFoundError,
         ("recordings not found: {tmp}/none.npz", "give an .npz archive or a folder")),
    Case("recordings-frame-missing", _frame_folder("missing"), ValueError,
         ("lack 15_output.BMP", "{tmp}/rec/1/b")),
    Case("recordings-frame-unreadable", _frame_folder("unreadable"), ValueError,
         ("{tmp}/rec/1/b/15_output.BMP: unreadable image",)),
    Case("recordings-frame-wrong-size", _frame_folder("size"), ValueError,
         ("15_output.BMP: readout image is 128x128, expected 256x256",)),
]


IN_PROCESS = VIDEO_CASES + TRAIN_CASES + DATASET_CASES + WEIGHT_CASES + RECORDING_CASES


def _check_message(exc: BaseException, case: Case, tmp: Path, own_frames: bool = True):
    msg = str(exc)
    first = msg.splitlines()[0] if msg else ""
    if not case.multiline:
        assert "\n" not in msg, f"not one line:\n{msg}"
    for word in _fmt(case.words, tmp):
        assert word in first, f"{word!r} not in {first!r}"
    if own_frames:
        # raised by this library's checks, not from inside JAX, flax or orbax
        frames = traceback.extract_tb(exc.__traceback__)
        last = frames[-1].filename
        assert f"{os.sep}pixelrnn_jax{os.sep}" in last, f"raised at {last}"


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(
        strict=True, raises=pytest.fail.Exception, reason=c.gap)] if c.gap else [])
    for c in IN_PROCESS])
def test_bad_input(case: Case, tmp_path):
    with pytest.raises(case.error) as info:
        case.run(tmp_path)
    _check_message(info.value, case, tmp_path)


# ----------------------------------------------------------------------- command line

def _fp32_only_cell() -> str:
    """A cell that exists only at 32 bit: a registered one, else a stand-in registered by the
    command-line driver below (the registry is the only thing consulted)."""
    from pixelrnn_jax import cells
    return next((n for n, s in cells.CELLS.items() if s.precisions == ("32bit",)),
                "fp32_only_stand_in")


# Runs experiments/train.py's absl main once per argument list, in one process (absl's
# app.run, flags reset between cases), and prints {case: [exit code, stderr]} as JSON.
FLAG_DRIVER = r"""
import contextlib, dataclasses, io, json, runpy, sys
from absl import flags
from pixelrnn_jax import cells
if "fp32_only_stand_in" not in cells.CELLS:
    cells.register(dataclasses.replace(cells.rnn.PIXELRNN, name="fp32_only_stand_in",
                                       precisions=("32bit",)))
train = runpy.run_path(sys.argv[1], run_name="train_cli")
out = {}
for name, argv in json.loads(sys.argv[2]).items():
    flags.FLAGS.unparse_flags()
    err, code = io.StringIO(), 0
    with contextlib.redirect_stderr(err):
        try:
            train["cli"].run(train["main"], argv=[sys.argv[1], *argv])
        except SystemExit as e:
            code = e.code
    out[name] = [code, err.getvalue()]
print("RESULT " + json.dumps(out))
"""

FLAG_CASES = {
    # id: (arguments, words of the error line); {tmp} is the case folder
    "flagfile-unknown-flag": (["--flagfile={tmp}/typo.flags"],
                              ("Unknown command line flag 'cnn_layer'", "see --helpfull")),
    "unknown-flag": (["--no_such_flag=1"], ("Unknown command line flag 'no_such_flag'",)),
    "flagfile-missing": (["--flagfile={tmp}/missing.flags"],
                         ("flagfile '{tmp}/missing.flags' not found", "gesture.flags")),
    "flagfile-missing-beside-the-script": (["--flagfile=gestures.flags"],
                                           ("flagfile 'gestures.flags' not found",
                                            "the flagfiles in", "gesture.flags")),
    "bad-enum-value": (["--precision=2bit"],
                       ("precision must be one of ('1bit', '32bit')", "got '2bit'")),
    "unknown-dataset": (["--dataset=mnist"], ("dataset='mnist' is invalid",
                                              "one of ('synthetic_gesture',")),
    "bad-integer": (["--K=abc"], ("flag --K=abc", "invalid literal for int()")),
    "positional-argument": (["extra"], ("unexpected arguments ['extra']",
                                        "all options are --flags")),
    "1bit-with-32bit-only-cell": (["--precision=1bit", "--cell={fp32}"],
                                  ("cell '{fp32}' exists only at precision ('32bit',)",
                                   "got precision='1bit'")),
    "camera-baseline-with-cnn": (["--cell=difference", "--cnn_layers=1"],
                                 ("cell 'difference' is a camera baseline without a CNN",
                                  "set cnn_layers=0")),
    "unknown-cell": (["--cell=lstmx"], ("unknown cell 'lstmx': choose one of",)),
    "K-does-not-divide-frames": (["--K=5", "--num_frames=16"],
                                 ("num_frames=16 is not a multiple of K=5",
                                  "choose K dividing the clip length")),
    "frame-size-not-multiple-of-4": (["--frame_size=30", "--cnn_layers=1"],
                                     ("frame_size 30", "multiple of 4")),
    "cnn-layers-3": (["--cnn_layers=3"], ("cnn_layers must be 0, 1 or 2, got 3",)),
    "negative-learning-rate": (["--learning_rate=-0.1"],
                               ("learning_rate=-0.1 is invalid", "must be > 0 and finite")),
    "nan-learning-rate": (["--learning_rate=nan"], ("learning_rate=nan is invalid",)),
    "zero-batch-size": (["--batch_size=0"], ("batch_size=0 is invalid", "must be >= 1")),
    "negative-epochs": (["--num_epochs=-1"], ("num_epochs=-1 is invalid",)),
    "zero-surrogate-steepness": (["--m=0"], ("surrogate steepness m must be > 0, got 0",)),
    "negative-noise": (["--noise_gate=-0.5"], ("noise_gate must be >= 0, got -0.5",)),
    "shift-fraction-too-large": (["--shift_fraction=0.7"], ("shift_fraction=0.7 is invalid",
                                                            "in [0, 0.5)")),
    "real-dataset-without-data-dir": (["--dataset=cambridge_hand_gesture"],
                                      ("cambridge_hand_gesture: no data folder given",)),
    "real-dataset-empty-folder": (["--dataset=tulips1", "--data_dir={tmp}/empty"],
                                  ("tulips1: folder {tmp}/empty is empty",)),
    "workdir-inside-a-file": (["--workdir={tmp}/typo.flags/run"],
                              ("workdir {tmp}/typo.flags/run is not writable",
                               "choose another --workdir")),
}
# after the case's own flags: settings that make a wrongly accepted case finish quickly
QUICK = ["--frame_size=16", "--cnn_layers=0", "--K=4", "--num_frames=16", "--num_epochs=0",
         "--max_videos=24", "--batch_size=4"]
MULTILINE_FLAG_CASES = {"real-dataset-without-data-dir", "real-dataset-empty-folder"}


@pytest.fixture(scope="module")
def flag_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flags")
    (tmp / "typo.flags").write_text("# a typo: cnn_layers\n--cnn_layer=1\n")
    (tmp / "empty").mkdir()
    fp32 = _fp32_only_cell()
    cases = {}
    for name, (argv, _) in FLAG_CASES.items():
        args = [a.replace("{tmp}", str(tmp)).replace("{fp32}", fp32) for a in argv]
        quick = [q for q in QUICK if q.split("=")[0] not in {a.split("=")[0] for a in args}]
        if not any(a.startswith("--workdir") for a in args):
            args = [f"--workdir={tmp}/run"] + args
        if not any(a.startswith("--dataset") for a in args):  # the built-in one: a tmp copy
            args = [f"--data_dir={tmp}/tfds"] + args
        cases[name] = quick + args
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]]
                                                         if env.get("PYTHONPATH") else [])),
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", FLAG_DRIVER, str(TRAIN), json.dumps(cases)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), tmp, fp32


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_bad_flags(name, flag_results):
    results, tmp, fp32 = flag_results
    code, stderr = results[name]
    assert code == 2, f"exit code {code}, stderr:\n{stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    if name not in MULTILINE_FLAG_CASES:
        assert errors[0] == len(lines) - 1, f"not the last line:\n{stderr[-2000:]}"
    first = lines[errors[0]]
    for word in FLAG_CASES[name][1]:
        word = word.replace("{tmp}", str(tmp)).replace("{fp32}", fp32)
        assert word in first, f"{word!r} not in {first!r}"


def test_the_real_command_line_reports_a_bad_flagfile(tmp_path):
    """The same path as the table above, through `python experiments/train.py`."""
    (tmp_path / "bad.flags").write_text("--precision=1bit\n--K=5\n")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(TRAIN), f"--flagfile={tmp_path}/bad.flags",
                           f"--workdir={tmp_path}/run"], env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: num_frames=16 is not a multiple of K=5; choose K dividing the clip length")
    assert "Traceback" not in proc.stderr


def count() -> dict:
    """Rows of the table: in-process (and known gaps) and command-line."""
    gaps = sum(bool(c.gap) for c in IN_PROCESS)
    return {"rows": len(IN_PROCESS) + len(FLAG_CASES), "in_process": len(IN_PROCESS),
            "command_line": len(FLAG_CASES), "gaps": gaps}


if __name__ == "__main__":
    print(json.dumps(count()))
