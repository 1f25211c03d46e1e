"""Splits held in memory, deterministic batching with the paper's augmentation, and a
prefetching iterator that prepares batches on the host while the accelerator trains.

    splits = load_dataset("synthetic_gesture")
    for batch in prefetch(batches(splits.train, 32, train=True, seed=0, epoch=e)):
        ...  # batch["video"] float32 (b, 16, 64, 64), batch["label"] int32 (b,)

All randomness of an epoch (order, temporal offsets, spatial shifts) is drawn up front from
(seed, epoch), so the batches are the same whatever consumes them and however fast, and a
run resumed at batch k of an epoch (`start_batch=k`) sees exactly the batches it would have.
A process of a run over many hosts prepares only its rows of every batch (`rows=`): the
plan is the whole batch's, so the rows together are the batch one process would make.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import Callable, Iterator, Sequence

import numpy as np

from pixelrnn_jax.data import preprocess

__all__ = ["Split", "batches", "num_batches", "prefetch", "measure_throughput"]


@dataclasses.dataclass
class Split:
    """Videos of one split: stored uint8 frames (see `preprocess`) with labels and names.

    Frames of all videos are concatenated in `frames` (n_frames, H, W); video i is
    frames[starts[i]:starts[i] + lengths[i]]. A split too large for memory (RAW frames)
    has frames=None and reads each video through `loader(i)` instead.
    """

    name: str
    labels: np.ndarray      # int32 (n,)
    names: list
    lengths: np.ndarray     # int64 (n,)
    frame_size: int
    frames: np.ndarray | None = None
    starts: np.ndarray | None = None
    loader: Callable[[int], np.ndarray] | None = None
    speakers: list | None = None

    @classmethod
    def from_videos(cls, name, videos: Sequence[np.ndarray], labels, names, frame_size,
                    speakers=None) -> "Split":
        lengths = np.array([len(v) for v in videos], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        frames = (np.concatenate(videos) if len(videos)
                  else np.zeros((0, frame_size, frame_size), np.uint8))
        return cls(name, np.asarray(labels, np.int32), list(names), lengths, frame_size,
                   frames=frames, starts=starts, speakers=speakers)

    @property
    def num_videos(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return self.num_videos

    def video(self, i: int) -> np.ndarray:
        """Stored uint8 frames (t, H, W) of video i."""
        if self.frames is not None:
            return self.frames[self.starts[i]:self.starts[i] + self.lengths[i]]
        return self.loader(i)

    def clips(self, indices: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        """uint8 (b, t, H, W): frames frame_idx[j] of video indices[j]."""
        if self.frames is not None:
            return self.frames[self.starts[indices][:, None] + frame_idx]
        if not len(indices):
            return np.zeros((0, frame_idx.shape[-1], self.frame_size, self.frame_size),
                            np.uint8)
        return np.stack([self.loader(int(i))[f] for i, f in zip(indices, frame_idx)])


EVAL_CLIPS = ("end", "first")


def _epoch_plan(split: Split, train: bool, seed: int, epoch: int, num_frames: int,
                shift_fraction: float, eval_clip: str = "end"):
    """Order, frame indices (n, num_frames) and shifts (n,), (n,) for one pass."""
    n = split.num_videos
    if not train:
        offset = 0 if eval_clip == "first" else None
        frame_idx = np.stack([preprocess.clip_indices(int(m), num_frames, offset)
                              for m in split.lengths]) if n else np.zeros((0, num_frames), int)
        zeros = np.zeros(n, np.int64)
        return np.arange(n), frame_idx, zeros, zeros
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    order = rng.permutation(n)
    frame_idx = np.stack([preprocess.random_clip_indices(int(split.lengths[i]), num_frames, rng)
                          for i in order]) if n else np.zeros((0, num_frames), int)
    top = preprocess.max_shift(split.frame_size, shift_fraction)
    dy = rng.integers(-top, top + 1, size=n)
    dx = rng.integers(-top, top + 1, size=n)
    return order, frame_idx, dy, dx


def batches(split: Split, batch_size: int, *, train: bool, seed: int = 0, epoch: int = 0,
            num_frames: int = 16, shift_fraction: float = 0.1,
            drop_remainder: bool | None = None, start_batch: int = 0,
            rows: slice | None = None, eval_clip: str = "end") -> Iterator[dict]:
    """Yields dict(video=float32 (b, num_frames, H, W), label=int32 (b,)).

    train=True: shuffled order, a random temporal offset (evenly spaced frames,
    linspace(0, n, num_frames, endpoint=False) shifted) and a random spatial shift of up to
    shift_fraction of the frame side (edges repeated), all drawn from (seed, epoch); the
    incomplete last batch is dropped unless drop_remainder=False.
    train=False: every video once, in split order, no shift, the clip `eval_clip`: "end"
    (end-aligned: its last frame is the video's last) or "first" (starting at the first
    frame, the paper's S2.1); the last batch may be smaller unless drop_remainder=True.
    rows: only these rows of every batch (a process's part of the global batch; fewer, or
    none, where a last batch is smaller), drawn from the plan of the whole batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if eval_clip not in EVAL_CLIPS:
        raise ValueError(f"eval_clip must be one of {EVAL_CLIPS}, got {eval_clip!r}")
    if drop_remainder is None:
        drop_remainder = train
    order, frame_idx, dy, dx = _epoch_plan(split, train, seed, epoch, num_frames,
                                           shift_fraction, eval_clip)
    n = len(order)
    stop = (n // batch_size) * batch_size if drop_remainder else n
    for lo in range(start_batch * batch_size, stop, batch_size):
        hi = min(lo + batch_size, stop)
        if rows is not None:
            lo, hi = min(lo + rows.start, hi), min(lo + rows.stop, hi)
        sl = slice(lo, hi)
        clips = split.clips(order[sl], frame_idx[sl])
        if train and (dy[sl].any() or dx[sl].any()):
            clips = preprocess.shift_frames(clips, dy[sl], dx[sl])
        yield {"video": preprocess.normalize_frames(clips),
               "label": split.labels[order[sl]].astype(np.int32)}


def num_batches(split: Split, batch_size: int, *, train: bool,
                drop_remainder: bool | None = None) -> int:
    drop = train if drop_remainder is None else drop_remainder
    n = split.num_videos
    return n // batch_size if drop else -(-n // batch_size)


class prefetch:  # noqa: N801  (used like a function: `for b in prefetch(it): ...`)
    """Runs an iterator in a background thread, `buffer_size` items ahead.

    `transform` (e.g. jax.device_put) is applied in the thread too. Exceptions in the
    producer are re-raised in the consumer. Use as a context manager or call close() to stop
    early; the thread is a daemon and never outlives the process.
    """

    _DONE = object()

    def __init__(self, iterator, buffer_size: int = 2, transform: Callable | None = None):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, buffer_size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterator), transform),
                                        daemon=True, name="pixelrnn-prefetch")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterator, transform):
        try:
            for item in iterator:
                if transform is not None:
                    item = transform(item)
                if not self._put(item):
                    return
        except BaseException as err:  # handed to the consumer
            self._put(("__error__", err))
            return
        self._put(self._DONE)

    def __iter__(self):
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        item = self._queue.get()
        if item is self._DONE:
            self._stop.set()
            raise StopIteration
        if isinstance(item, tuple) and len(item) == 2 and item[0] == "__error__":
            self._stop.set()
            raise item[1]
        return item

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self._stop.set()


def measure_throughput(split: Split, batch_size: int = 32, *, train: bool = True,
                       num_batches_: int = 20, use_prefetch: bool = True, seed: int = 0,
                       num_frames: int = 16) -> dict:
    """Videos/s of `batches` (and `prefetch`) alone, i.e. how fast the host can feed a
    training loop; compare with the training loop's own videos/s."""
    if split.num_videos == 0:
        raise ValueError(f"split {split.name!r} has no videos to time")
    it = batches(split, batch_size, train=train, seed=seed, epoch=0, num_frames=num_frames,
                 drop_remainder=False)
    videos, epoch = 0, 0
    src = prefetch(it) if use_prefetch else it
    start = time.perf_counter()
    done = 0
    while done < num_batches_:
        try:
            b = next(src)
        except StopIteration:
            epoch += 1
            it = batches(split, batch_size, train=train, seed=seed, epoch=epoch,
                         num_frames=num_frames, drop_remainder=False)
            src = prefetch(it) if use_prefetch else it
            continue
        videos += len(b["label"])
        done += 1
    elapsed = time.perf_counter() - start
    if use_prefetch:
        src.close()
    return {"videos_per_s": videos / elapsed, "batches": done, "videos": videos,
            "seconds": elapsed, "batch_size": batch_size, "train": train,
            "prefetch": use_prefetch, "frame_size": split.frame_size}
