"""The real datasets' folder layouts, read through the tfds builders: counts, labels, names,
frame order, shapes, split sizes, a JPEG round trip, and errors on bad input.

Frames come from ../shared/data/*_test_frames.npz where present (real Cambridge and Tulips1
frames) and are generated otherwise, so these tests run on a fresh clone too.
"""
from __future__ import annotations

import gzip
import pickle
import sys

import numpy as np
import pytest
from conftest import DATA
from PIL import Image

from pixelrnn_jax import data
from pixelrnn_jax.data import builders, preprocess, synthetic

QUALITY = 95


def _reference(kind: str):
    """(stored gray frames (n, 16, 64, 64) uint8, labels, names, binarized or None)."""
    path = DATA / f"{kind}_test_frames.npz"
    if path.exists():
        d = np.load(path)
        frames, bits = d["frames"].astype(np.float64), d["binarized"]
        # The archive holds the normalised frames rescaled to 0..255. Map them back to
        # gray levels so that the sign boundary of the archive (the first level whose
        # pixels are mostly +1) falls between stored gray 117 and 118.
        levels = np.arange(256)
        plus = np.array([bits[frames == v].mean() if (frames == v).any() else np.nan
                         for v in levels])
        z = int(levels[np.nan_to_num(plus) > 0.5][0])
        gray = np.clip(np.rint(117.5 + (frames - z + 0.5) * 0.9), 0, 255).astype(np.uint8)
        return gray, d["labels"].astype(int), [str(n) for n in d["names"]], bits
    scenes = synthetic.sample_scenes(1, 9 if kind == "cambridge" else 8)
    frames = synthetic.render(scenes, 64, num_frames=16)
    if kind == "cambridge":
        labels = scenes.label
        names = [f"Set{1 + i % 5}_{c + 1}_{i:04d}" for i, c in enumerate(labels)]
    else:
        labels = np.arange(8) % 4
        names = [f"Speaker{'AB'[i // 4]}{1 + i % 2}" for i in range(8)]
    return frames, labels, names, None


@pytest.fixture(scope="module")
def cambridge():
    return _reference("cambridge")


@pytest.fixture(scope="module")
def tulips():
    return _reference("tulips")


def _write_video(folder, frames, size=None, pattern="frame-{}.jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(frames):
        im = Image.fromarray(f)
        if size is not None:
            im = im.resize(size, Image.BILINEAR)
        im.save(folder / pattern.format(k), quality=QUALITY)


def _cambridge_tree(root, frames, labels, names, layout, count=9):
    picked = []
    for i in range(min(count, len(names))):
        s, c, n = names[i].split("_")
        assert int(c) == labels[i] + 1
        if layout == "original":
            folder = root / s / f"{labels[i]:04d}" / n
        else:
            folder = root / c / names[i]
        # frame-0 .. frame-15, not zero padded: checks the natural frame order
        _write_video(folder, frames[i])
        picked.append(i)
    return picked


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds_cache")


@pytest.mark.parametrize("layout", ["original", "repackaged"])
def test_cambridge_layouts(tmp_path, cache, cambridge, layout):
    frames, labels, names, _ = cambridge
    idx = _cambridge_tree(tmp_path / "cam", frames, labels, names, layout, count=len(names))
    splits = data.load_dataset("cambridge_hand_gesture", tmp_path / "cam", seed=0,
                               cache_dir=cache)
    n = len(idx)
    assert splits.num_classes == 9 and len(splits.class_names) == 9
    sizes = splits.split_info["sizes"]
    assert sum(sizes.values()) == n
    assert sizes["test"] == round(0.1 * n) and sizes["val"] == round(0.1 * n)
    assert splits.split_info["stratified"] and splits.split_info["seed"] == 0
    got = {}
    for split in (splits.train, splits.val, splits.test):
        assert split.frames.shape[1:] == (64, 64) and split.frames.dtype == np.uint8
        for i, name in enumerate(split.names):
            got[name] = (int(split.labels[i]), split.video(i))
    assert sorted(got) == sorted(names[i] for i in idx)
    for i in idx:
        label, video = got[names[i]]
        assert label == labels[i]
        assert video.shape == (16, 64, 64)
        # frame order: each stored frame is closest to the frame written at its position
        err = np.abs(video.astype(int)[:, None] - frames[i].astype(int)[None]).mean(axis=(2, 3))
        np.testing.assert_array_equal(err.argmin(axis=1), np.arange(16))


def test_round_trip_reproduces_64x64_frames(tmp_path, cache, cambridge):
    """Written as JPEG, read by the builder and the evaluation preprocessing, each frame
    comes back within JPEG error; with the real archive, the binarisation agrees too."""
    frames, labels, names, bits = cambridge
    _cambridge_tree(tmp_path / "cam", frames, labels, names, "repackaged", count=len(names))
    splits = data.load_dataset("cambridge_hand_gesture", tmp_path / "cam", cache_dir=cache)
    errors, agree, agree_clear = [], [], []
    for split in (splits.train, splits.val, splits.test):
        batch = next(data.batches(split, split.num_videos, train=False))
        for j, name in enumerate(split.names):
            i = names.index(name)
            want = data.normalize_frames(frames[i])
            errors.append(np.abs(batch["video"][j] - want) / preprocess.NORM_SCALE)
            if bits is not None:
                same = (batch["video"][j] >= 0) == bits[i]
                agree.append(same.mean())
                # pixels whose archived value is not on the sign boundary level
                clear = np.abs(frames[i].astype(int) - 117.5) > 2
                agree_clear.append(same[clear].mean())
    errors = np.concatenate([e.ravel() for e in errors])
    assert errors.mean() < 1.5 and np.percentile(errors, 99) < 8, (errors.mean(),
                                                                  np.percentile(errors, 99))
    if bits is not None:
        print(f"binarisation agreement with the archive: {np.mean(agree):.4f} of pixels, "
              f"{np.mean(agree_clear):.4f} away from the boundary level")
        assert np.mean(agree) > 0.97 and np.mean(agree_clear) > 0.99


def test_tulips_layout_keeps_speakers(tmp_path, cache, tulips):
    frames, labels, names, _ = tulips
    root = tmp_path / "tul"
    written = []
    for i, name in enumerate(names):
        # Tulips1 frames are smaller than 64x64 and not square: resized on the way in
        _write_video(root / str(labels[i] + 1) / name, frames[i][:12], size=(100, 75),
                     pattern="{:03d}.jpg")
        written.append(f"{labels[i] + 1}/{name}")
    splits = data.load_dataset("tulips1", root, cache_dir=cache)
    assert splits.num_classes == 4 and splits.class_names == ("one", "two", "three", "four")
    all_names = splits.train.names + splits.val.names + splits.test.names
    assert sorted(all_names) == sorted(written)
    for split in (splits.train, splits.val, splits.test):
        for name, speaker, label, n in zip(split.names, split.speakers, split.labels,
                                           split.lengths):
            digit, utt = name.split("/")
            assert int(digit) == label + 1 and utt.startswith(speaker) and n == 12
    b = next(data.batches(splits.train, 2, train=True, seed=0, epoch=0))
    assert b["video"].shape == (2, 16, 64, 64)  # 12 frames padded to 16
    speakers = {s for s in splits.test.speakers}
    if len({s for s in splits.train.speakers + splits.val.speakers + list(speakers)}) >= 3:
        by_speaker = data.load_dataset("tulips1", root, cache_dir=cache, split_by="speaker")
        assert not set(by_speaker.train.speakers) & set(by_speaker.test.speakers)
        assert by_speaker.split_info["method"] == "speaker"


# --------------------------------------------------------------------- bad input

def test_missing_and_empty_folders_explain_where_to_get_data(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        data.load_dataset("cambridge_hand_gesture", tmp_path / "nope", cache_dir=cache)
    assert "Set1..Set5/0000..0008" in str(err.value) and "labicvl" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is empty") as err:
        data.load_dataset("tulips1", tmp_path / "empty", cache_dir=cache)
    assert "<digit 1..4>/<Speaker>" in str(err.value)
    with pytest.raises(FileNotFoundError, match="no data folder"):
        data.load_dataset("cambridge_hand_gesture", None, cache_dir=cache)
    with pytest.raises(ValueError, match="unknown video dataset"):
        data.load_dataset("ucf101")


def test_wrong_layout_names_first_offending_path(tmp_path, cache):
    frame = np.zeros((1, 8, 8), np.uint8)
    root = tmp_path / "cam"
    _write_video(root / "Set1" / "0003" / "0000", frame)
    _write_video(root / "Set1" / "0009" / "0000", frame)  # no class 0009
    with pytest.raises(data.LayoutError, match=r"Set1/0009"):
        data.load_dataset("cambridge_hand_gesture", root, cache_dir=cache)
    root = tmp_path / "rep"
    _write_video(root / "4" / "Set2_5_0001", frame)  # class folder 4, name says 5
    with pytest.raises(data.LayoutError, match=r"4/Set2_5_0001.*class 5"):
        data.load_dataset("cambridge_hand_gesture", root, cache_dir=cache)
    root = tmp_path / "mixed"
    _write_video(root / "Set1" / "0000" / "0000", frame)
    _write_video(root / "videos" / "x", frame)
    with pytest.raises(data.LayoutError, match=r"mixed/videos"):
        data.load_dataset("cambridge_hand_gesture", root, cache_dir=cache)
    root = tmp_path / "tul"
    _write_video(root / "2" / "regina_1", frame)
    with pytest.raises(data.LayoutError, match=r"2/regina_1"):
        data.load_dataset("tulips1", root, cache_dir=cache)
    root = tmp_path / "noframes"
    (root / "1" / "Set1_1_0000").mkdir(parents=True)
    (root / "1" / "Set1_1_0000" / "notes.txt").write_text("x")
    with pytest.raises(data.LayoutError, match=r"Set1_1_0000 holds no image frames"):
        data.load_dataset("cambridge_hand_gesture", root, cache_dir=cache)


def test_unreadable_frame_reported_with_its_path(tmp_path, cache):
    root = tmp_path / "cam"
    for c in range(1, 10):  # every class present: an incomplete copy is reported first
        _write_video(root / str(c) / f"Set1_{c}_0000", np.zeros((3, 16, 16), np.uint8))
    bad = root / "1" / "Set1_1_0000" / "frame-1.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=f"cannot read frame {bad}"):
        data.load_dataset("cambridge_hand_gesture", root, cache_dir=cache)


# ----------------------------------------------------------------- image datasets

def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_files(tmp_path, cache):
    rng = np.random.default_rng(0)
    want = {}
    for split, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
        want["train" if split == "train" else "test"] = (images, labels)
    out = data.load_images("mnist", tmp_path, cache_dir=cache)
    for split in ("train", "test"):
        images, labels = getattr(out, split)
        np.testing.assert_array_equal(images, want[split][0])
        np.testing.assert_array_equal(labels, want[split][1])
        assert labels.dtype == np.int32
    assert out.num_classes == 10
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.load_images("mnist", tmp_path, cache_dir=tmp_path / "other_cache")


def test_cifar10_pickle_batches(tmp_path, cache):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    want = {"train": [], "test": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
        labels = list(rng.integers(0, 10, 3))
        batch = {b"data": images.transpose(0, 3, 1, 2).reshape(3, -1), b"labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch))
        want["test" if name == "test_batch" else "train"].append((images, labels))
    out = data.load_images("cifar10", tmp_path, cache_dir=cache)  # parent folder works too
    for split in ("train", "test"):
        images, labels = getattr(out, split)
        np.testing.assert_array_equal(images, np.concatenate([w[0] for w in want[split]]))
        np.testing.assert_array_equal(labels, np.concatenate([w[1] for w in want[split]]))
    assert out.class_names[0] == "airplane"
    with pytest.raises(FileNotFoundError, match="cifar-10-python"):
        data.load_images("cifar10", tmp_path / "missing")


def test_tensorflow_is_not_used(tmp_path, cache):
    assert "tensorflow" not in sys.modules or not hasattr(sys.modules["tensorflow"], "Tensor")


def test_raw_frames_are_read_lazily(tmp_path, cache, cambridge):
    frames, labels, names, _ = cambridge
    one = np.array([np.flatnonzero(np.asarray(labels) == c)[0] for c in range(9)])  # per class
    _cambridge_tree(tmp_path / "cam", np.asarray(frames)[one], np.asarray(labels)[one],
                    np.asarray(names)[one], "original", count=9)
    splits = data.load_dataset("cambridge_hand_gesture", tmp_path / "cam", raw=True,
                               cache_dir=cache)
    assert splits.frame_size == 256 and splits.train.frames is None
    assert splits.train.video(0).shape == (16, 256, 256)
    batch = next(data.batches(splits.train, 2, train=True, seed=0, epoch=0))
    assert batch["video"].shape == (2, 16, 256, 256) and batch["video"].dtype == np.float32


class _TinySynthetic(builders.SyntheticGesture, skip_registration=True):
    name = "synthetic_gesture_tiny"
    NUM_VIDEOS = 18


def test_synthetic_builder_writes_array_record(tmp_path):
    builder = _TinySynthetic(config="gray64", data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare()
    assert list(tmp_path.rglob("*.array_record*"))
    source = builder.as_data_source()["train"]
    assert len(source) == 18
    ex = source[0]
    assert ex["video"].dtype == np.uint8 and ex["video"].shape == (synthetic.NUM_FRAMES, 64, 64)
    name = ex["name"].decode()
    index = int(name.rsplit("_", 1)[1])
    np.testing.assert_array_equal(
        ex["video"], synthetic.render(synthetic.sample_scenes(0, 18).take(np.array([index])),
                                      64)[0])
    assert builder.info.features["label"].names[int(ex["label"])].replace("/", "_") in name
