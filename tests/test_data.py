"""Preprocessing, splits, batching, prefetching and the synthetic gesture dataset."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from pixelrnn_jax import data
from pixelrnn_jax.data import preprocess, synthetic
from pixelrnn_jax.data.pipeline import Split

# ------------------------------------------------------------------ preprocessing

def test_normalize_frames_matches_imagenet_gray():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.float64)
    mean, std = np.array(preprocess.IMAGENET_MEAN), np.array(preprocess.IMAGENET_STD)
    want = ((rgb / 255 - mean) / std) @ np.array(preprocess.GRAY_WEIGHTS)
    q = preprocess.rgb_to_stored(rgb.astype(np.uint8))
    got = q * preprocess.NORM_SCALE - preprocess.NORM_OFFSET
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.isclose(sum(preprocess.STORE_WEIGHTS), 1.0)


def test_normalize_frames_sign_threshold_and_dtype():
    x = data.normalize_frames(np.arange(256, dtype=np.uint8))
    assert x.dtype == np.float32
    assert x[117] < 0 <= x[118]  # stored 118 and up is a +1 input pixel
    assert abs(preprocess.ZERO_LEVEL - 117.0009) < 1e-4  # q = 117 is just below 0
    with pytest.raises(ValueError, match="uint8"):
        data.normalize_frames(np.zeros(3, np.float32))


def test_clip_indices_even_spacing_and_end_alignment():
    np.testing.assert_array_equal(data.clip_indices(16), np.arange(16))
    idx = data.clip_indices(40, offset=0)
    np.testing.assert_array_equal(idx, np.floor(np.linspace(0, 40, 16, endpoint=False)))
    end = data.clip_indices(40)  # evaluation: end-aligned
    assert end[-1] == 39 and np.all(np.diff(end) > 0)
    np.testing.assert_array_equal(end - idx, np.full(16, end[0]))
    short = data.clip_indices(10)  # shorter than 16: frames repeated evenly, in order
    assert len(short) == 16 and set(short) == set(range(10)) and np.all(np.diff(short) >= 0)
    with pytest.raises(ValueError, match="offset"):
        data.clip_indices(20, offset=5)


def test_random_clip_indices():
    rng = np.random.default_rng(0)
    offsets = {int(data.random_clip_indices(40, 16, rng)[0]) for _ in range(50)}
    assert offsets == set(range(preprocess.max_offset(40) + 1))
    for n in (1, 5, 12):
        idx = data.random_clip_indices(n, 16, rng)
        assert len(idx) == 16 and set(idx) == set(range(n)) and np.all(np.diff(idx) >= 0)


def test_shift_frames_repeats_edges():
    clips = np.random.default_rng(1).integers(0, 256, (3, 2, 9, 8)).astype(np.uint8)
    dy, dx = np.array([2, -3, 0]), np.array([-1, 4, 0])
    out = data.shift_frames(clips, dy, dx)
    for i in range(3):
        rows = np.clip(np.arange(9) - dy[i], 0, 8)
        cols = np.clip(np.arange(8) - dx[i], 0, 7)
        np.testing.assert_array_equal(out[i], clips[i][:, rows][:, :, cols])


# ------------------------------------------------------------------------ splits

def test_stratified_split_900_and_96():
    labels = np.repeat(np.arange(9), 100)
    idx = data.stratified_split(labels, seed=0)
    assert {k: len(v) for k, v in idx.items()} == {"train": 720, "val": 90, "test": 90}
    for k, frac in (("train", 80), ("val", 10), ("test", 10)):
        assert np.all(np.bincount(labels[idx[k]], minlength=9) == frac)
    assert len(np.unique(np.concatenate(list(idx.values())))) == 900
    again = data.stratified_split(labels, seed=0)
    other = data.stratified_split(labels, seed=1)
    assert all(np.array_equal(idx[k], again[k]) for k in idx)
    assert not np.array_equal(idx["test"], other["test"])
    tulips = np.repeat(np.arange(4), 24)
    t = data.stratified_split(tulips, seed=0)
    assert {k: len(v) for k, v in t.items()} == {"train": 76, "val": 10, "test": 10}
    assert set(np.bincount(tulips[t["test"]], minlength=4)) <= {2, 3}


def test_speaker_split_is_disjoint():
    speakers = np.repeat([f"s{i}" for i in range(12)], 8)
    idx, groups = data.speaker_split(speakers, seed=0)
    assert [len(groups[k]) for k in ("train", "val", "test")] == [10, 1, 1]
    sets = {k: set(speakers[v]) for k, v in idx.items()}
    assert not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert sum(len(v) for v in idx.values()) == 96


# ---------------------------------------------------------------------- batching

@pytest.fixture(scope="module")
def small_split():
    rng = np.random.default_rng(0)
    lengths = [20, 16, 9, 33, 24, 18, 40]
    videos = [rng.integers(0, 256, (n, 16, 16)).astype(np.uint8) for n in lengths]
    for v in videos:  # frame k carries its index in pixel (0, 0) for order checks
        v[:, 0, 0] = np.arange(len(v))
    return Split.from_videos("train", videos, np.arange(7) % 3, [f"v{i}" for i in range(7)], 16)


def test_eval_batches_in_order_end_aligned(small_split):
    out = list(data.batches(small_split, 3, train=False))
    assert [len(b["label"]) for b in out] == [3, 3, 1]
    video = np.concatenate([b["video"] for b in out])
    assert video.shape == (7, 16, 16, 16) and video.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in out]), np.arange(7) % 3)
    for i in range(7):
        want = small_split.video(i)[data.clip_indices(int(small_split.lengths[i]))]
        np.testing.assert_array_equal(video[i], data.normalize_frames(want))
    assert len(list(data.batches(small_split, 3, train=False, drop_remainder=True))) == 2
    assert data.num_batches(small_split, 3, train=False) == 3


def test_eval_clip_from_the_first_frame(small_split):
    """--eval_clip=first (the paper's S2.1) starts every clip at frame 0, end at the last."""
    first = np.concatenate([b["video"] for b in data.batches(small_split, 7, train=False,
                                                               eval_clip="first")])
    end = np.concatenate([b["video"] for b in data.batches(small_split, 7, train=False)])
    for i, n in enumerate(small_split.lengths):
        want = small_split.video(i)[data.clip_indices(int(n), 16, 0)]
        np.testing.assert_array_equal(first[i], data.normalize_frames(want))
        assert data.clip_indices(int(n), 16, 0)[0] == 0
        if n > 16:
            assert not np.array_equal(first[i], end[i])
    with pytest.raises(ValueError, match="eval_clip must be one of"):
        next(data.batches(small_split, 3, train=False, eval_clip="middle"))


def test_train_batches_deterministic_and_resumable(small_split):
    def run(epoch, start=0):
        return list(data.batches(small_split, 2, train=True, seed=3, epoch=epoch,
                                 start_batch=start))
    a, b, c = run(0), run(0), run(1)
    assert len(a) == 3  # 7 // 2, remainder dropped in training
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["video"], y["video"])
        np.testing.assert_array_equal(x["label"], y["label"])
    assert any(not np.array_equal(x["video"], y["video"]) for x, y in zip(a, c))
    resumed = run(0, start=1)
    np.testing.assert_array_equal(resumed[0]["video"], a[1]["video"])
    assert a[0]["label"].dtype == np.int32


def test_train_batches_shift_and_offset(small_split):
    # With no shift, each training clip is a set of evenly spaced frames of one video.
    seen = set()
    for epoch in range(4):
        for b in data.batches(small_split, 7, train=True, seed=0, epoch=epoch,
                              shift_fraction=0.0):
            for v in b["video"]:
                stored = np.rint((v[:, 0, 0] + preprocess.NORM_OFFSET)
                                 / preprocess.NORM_SCALE).astype(int)
                seen.add(tuple(stored))
                assert np.all(np.diff(stored) >= 0)
    assert len(seen) > 7  # random temporal offsets vary the clips
    shifted = next(data.batches(small_split, 7, train=True, seed=0, epoch=0))
    plain = next(data.batches(small_split, 7, train=True, seed=0, epoch=0, shift_fraction=0))
    assert not np.array_equal(shifted["video"], plain["video"])


def test_prefetch_same_items_errors_and_close(small_split):
    direct = list(data.batches(small_split, 2, train=True, seed=0, epoch=0))
    fetched = list(data.prefetch(data.batches(small_split, 2, train=True, seed=0, epoch=0)))
    assert all(np.array_equal(x["video"], y["video"]) for x, y in zip(direct, fetched))

    def broken():
        yield 1
        raise RuntimeError("bad batch")

    it = data.prefetch(broken())
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="bad batch"):
        next(it)
    with data.prefetch(iter(range(100)), buffer_size=1) as p:
        assert next(p) == 0
    assert not p._thread.is_alive()


def test_measure_throughput(small_split):
    stats = data.measure_throughput(small_split, 4, num_batches_=5)
    assert stats["videos_per_s"] > 0 and stats["batches"] == 5


# --------------------------------------------------------------------- synthetic

@pytest.fixture(scope="module")
def scenes():
    return synthetic.sample_scenes(0, 90)


@pytest.fixture(scope="module")
def rendered(scenes):
    return synthetic.render(scenes, 64)


def test_synthetic_render_deterministic(scenes, rendered):
    assert rendered.shape == (90, synthetic.NUM_FRAMES, 64, 64) and rendered.dtype == np.uint8
    np.testing.assert_array_equal(synthetic.render(scenes.take(np.arange(3)), 64), rendered[:3])
    assert np.array_equal(np.bincount(scenes.label), np.full(9, 10))
    big = synthetic.render(scenes.take(np.array([4])), 256)
    assert big.shape == (1, synthetic.NUM_FRAMES, 256, 256)
    # the 256 render shows the same scene: pooled down it matches the 64 render's silhouette
    pooled = big[0].reshape(-1, 64, 4, 64, 4).mean(axis=(2, 4)) >= preprocess.ZERO_LEVEL
    agree = (pooled == (rendered[4] >= preprocess.ZERO_LEVEL)).mean()
    assert agree > 0.98, agree


def test_synthetic_hand_survives_binarization(rendered):
    plus = (rendered >= np.ceil(preprocess.ZERO_LEVEL)).mean(axis=(2, 3))  # (n, t)
    assert plus.min() > 0.015 and plus.max() < 0.35, (plus.min(), plus.max())


def test_synthetic_motions_differ_in_time_not_in_mean_position():
    """Swings start at a random phase: at every time index the mean hand position is the
    same for the three motions; only the movement over time tells them apart."""
    many = synthetic.sample_scenes(0, 9000)
    xs, ys = synthetic._trajectory(many, synthetic.NUM_FRAMES)
    motion = many.label % 3
    for t in (0, synthetic.NUM_FRAMES // 2, synthetic.NUM_FRAMES - 1):
        mx = [xs[motion == m, t].mean() for m in range(3)]
        my = [ys[motion == m, t].mean() for m in range(3)]
        assert np.ptp(mx) < 0.01 and np.ptp(my) < 0.01, (t, mx, my)
    move_x = xs.std(axis=1)
    move_y = ys.std(axis=1)
    assert move_x[motion == 0].max() < 0.01 and move_y[motion == 0].max() < 1e-9
    assert move_x[motion == 1].min() > 0.05 and move_y[motion == 1].max() < 1e-9
    assert move_y[motion == 2].min() > 0.04 and move_x[motion == 2].max() < 0.01


def test_synthetic_rendered_frames_match_across_motions(scenes, rendered):
    """Hand area per frame has the same distribution for the three motions."""
    area = (rendered >= np.ceil(preprocess.ZERO_LEVEL)).mean(axis=(-1, -2))
    motion = scenes.label % 3
    per_video = [area[motion == m].mean(axis=1) for m in range(3)]
    for a in range(3):
        for b in range(a):
            se = np.sqrt(per_video[a].var() / len(per_video[a])
                         + per_video[b].var() / len(per_video[b]))
            assert abs(per_video[a].mean() - per_video[b].mean()) < 3 * se


def test_no_tensorflow_needed():
    assert "tensorflow" not in sys.modules or not hasattr(sys.modules["tensorflow"], "Tensor")


@pytest.mark.parametrize("task", ["motion", "lips"])
def test_one_frame_of_the_temporal_tasks_carries_no_class(task):
    """A linear classifier on single frames (ridge, one-vs-all) is at chance on the held-out
    videos, at every frame; the same classifier on a temporal statistic (each pixel's
    spectrum over the 16 frames) is well above it: the class is in the temporal pattern."""
    from pixelrnn_jax.data import synthetic_tasks
    videos, labels = synthetic_tasks.render_task(task, seed=3, size=16, num_frames=16,
                                                 num_videos=400)
    x = (videos.astype(np.float64) - 117.0) / 60.0
    train, test = np.arange(400) < 300, np.arange(400) >= 300
    onehot = np.eye(4)[labels]

    def accuracy(feats):
        f = np.concatenate([feats, np.ones((len(feats), 1))], 1)
        w = np.linalg.solve(f[train].T @ f[train] + 10.0 * np.eye(f.shape[1]),
                            f[train].T @ onehot[train])
        return float(((f[test] @ w).argmax(1) == labels[test]).mean())

    single = [accuracy(x[:, t].reshape(400, -1)) for t in (0, 5, 11)]
    assert max(single) < 0.40, single     # chance is 0.25 (100 test videos)
    spectra = np.abs(np.fft.rfft(x, axis=1))[:, 1:].reshape(400, -1)
    assert accuracy(spectra) > max(single) + 0.2
