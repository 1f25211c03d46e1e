"""Loading a dataset into train/val/test splits: `load_dataset` (videos) and `load_images`.

The real datasets are read from the user's folder (`data_dir`, the tfds manual_dir) and
prepared once into a cache (`cache_dir`, default $TFDS_DATA_DIR or ~/tensorflow_datasets),
under a folder keyed by a fingerprint of the frame files, so a changed source folder is
prepared afresh instead of reusing stale data. The synthetic dataset is built into
`data_dir` (default: the same cache).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from pixelrnn_jax.data import builders, images, layouts, preprocess
from pixelrnn_jax.data.pipeline import Split

__all__ = ["VIDEO_DATASETS", "IMAGE_DATASETS", "SPLIT_FRACTIONS", "RAW_FRAME_SIZE",
           "DatasetSplits", "ImageSplits", "default_cache_dir", "stratified_split",
           "speaker_split", "load_dataset", "load_images"]

log = logging.getLogger("pixelrnn_jax")

VIDEO_DATASETS = tuple(builders.VIDEO_BUILDERS)   # the built-in one first
IMAGE_DATASETS = tuple(builders.IMAGE_BUILDERS)
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
RAW_FRAME_SIZE = 256



@dataclasses.dataclass
class DatasetSplits:
    """A video dataset split 80:10:10; `split_info` is what results.json records."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: tuple
    split_info: dict
    description: str

    @property
    def frame_size(self) -> int:
        return self.train.frame_size


@dataclasses.dataclass
class ImageSplits:
    name: str
    train: tuple  # (images uint8 (n, H, W[, 3]), labels int32 (n,))
    test: tuple
    num_classes: int
    class_names: tuple
    description: str


def default_cache_dir() -> Path:
    return Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()


# ------------------------------------------------------------------------- splits

def _largest_remainder(counts: np.ndarray, total: int, rng) -> np.ndarray:
    """Integer per-class quotas summing to `total`, proportional to counts."""
    ideal = counts * total / counts.sum()
    quota = np.floor(ideal).astype(int)
    rest = total - quota.sum()
    # Largest fractional parts first; ties broken by the seeded generator.
    order = np.lexsort((rng.permutation(len(counts)), -(ideal - quota)))
    quota[order[:rest]] += 1
    return quota


def stratified_split(labels, seed: int, fractions=SPLIT_FRACTIONS) -> dict:
    """Indices of a stratified train/val/test split (sizes round(fraction * n) for val and
    test, the rest train), each split sorted. Deterministic for `seed`."""
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng([seed, 0x5B1])
    classes, counts = np.unique(labels, return_counts=True)
    n_test = int(round(fractions["test"] * n))
    n_val = int(round(fractions["val"] * n))
    q_test = _largest_remainder(counts, n_test, rng)
    q_val = _largest_remainder(counts, n_val, rng)
    out = {"train": [], "val": [], "test": []}
    for c, qt, qv in zip(classes, q_test, q_val):
        idx = rng.permutation(np.flatnonzero(labels == c))
        out["test"].extend(idx[:qt])
        out["val"].extend(idx[qt:qt + qv])
        out["train"].extend(idx[qt + qv:])
    return {k: np.sort(np.asarray(v, np.int64)) for k, v in out.items()}


def speaker_split(speakers, seed: int, fractions=SPLIT_FRACTIONS) -> tuple[dict, dict]:
    """Speaker-disjoint split: whole speakers go to val and test (round(fraction * speakers)
    each, at least one), the others to train."""
    speakers = np.asarray(speakers)
    uniq = np.unique(speakers)
    if len(uniq) < 3:
        raise ValueError(f"a speaker-disjoint split needs at least 3 speakers, got {len(uniq)}")
    rng = np.random.default_rng([seed, 0x5B2])
    perm = list(rng.permutation(uniq))
    n_test = max(1, int(round(fractions["test"] * len(uniq))))
    n_val = max(1, int(round(fractions["val"] * len(uniq))))
    groups = {"test": sorted(perm[:n_test]), "val": sorted(perm[n_test:n_test + n_val]),
              "train": sorted(perm[n_test + n_val:])}
    idx = {k: np.flatnonzero(np.isin(speakers, g)).astype(np.int64) for k, g in groups.items()}
    return idx, {k: [str(s) for s in g] for k, g in groups.items()}


# ------------------------------------------------------------------------ loading

def _prepare(builder_cls, config, tfds_dir: Path, manual_dir=None):
    builder = builder_cls(config=config, data_dir=str(tfds_dir), file_format="array_record") \
        if config is not None else builder_cls(data_dir=str(tfds_dir),
                                               file_format="array_record")
    download_config = tfds.download.DownloadConfig(
        manual_dir=str(manual_dir) if manual_dir is not None else None)
    if not builder.is_prepared():
        log.info("preparing %s in %s (once; later runs reuse it)", builder.name, tfds_dir)
    tfds.disable_progress_bar()  # one log line instead of a progress bar per example
    builder.download_and_prepare(download_config=download_config)
    return builder


def _read_all(source, keys=None, chunk: int = 256):
    keys = range(len(source)) if keys is None else keys
    keys = list(keys)
    for lo in range(0, len(keys), chunk):
        yield from source.__getitems__(keys[lo:lo + chunk])


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def load_dataset(name: str, data_dir=None, *, seed: int = 0, frame_size: int = 64,
                 raw: bool = False, cache_dir=None, split_by: str = "stratified"
                 ) -> DatasetSplits:
    """Loads a video dataset, prepared as in the paper, split 80:10:10 with `seed`.

    name: 'synthetic_gesture' (built in; data_dir = where to build it, default the cache),
      'cambridge_hand_gesture' or 'tulips1' (data_dir = your copy, as distributed).
    frame_size: side of the stored frames (64 for the in-pixel models); raw=True selects
      256x256 frames for the RAW camera baseline, read from disk video by video.
    split_by: 'stratified' (per class, the paper's split) or 'speaker' (tulips1 only:
      speaker-disjoint val and test).
    """
    if name not in VIDEO_DATASETS:
        raise ValueError(f"unknown video dataset {name!r}; choose one of {VIDEO_DATASETS} "
                         f"(images: load_images with {IMAGE_DATASETS})")
    if split_by not in ("stratified", "speaker"):
        raise ValueError(f"split_by must be 'stratified' or 'speaker', got {split_by!r}")
    if split_by == "speaker" and name != "tulips1":
        raise ValueError(f"split_by='speaker' needs speaker labels, which only tulips1 has "
                         f"(got {name!r})")
    if raw:
        frame_size = RAW_FRAME_SIZE
    if frame_size < 4:
        raise ValueError(f"frame_size must be >= 4, got {frame_size}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    builder_cls = builders.VIDEO_BUILDERS[name]
    config = builders.video_config(frame_size)
    if builders.is_built_in(name):
        tfds_dir = Path(data_dir).expanduser() if data_dir is not None else cache
        builder = _prepare(builder_cls, config, tfds_dir)
        source_info = {"source": "built-in procedural generator",
                       "scene_seed": builder_cls.SCENE_SEED}
    else:
        videos = builder_cls.SCAN(data_dir)  # validates the layout, clear errors
        root = Path(data_dir).expanduser()
        fp = layouts.fingerprint(videos, root)
        builder = _prepare(builder_cls, config, cache / f"{name}-{fp}", manual_dir=root)
        source_info = {"source": str(root.resolve()), "fingerprint": fp}

    source = builder.as_data_source()["train"]
    records = []
    for k, ex in enumerate(_read_all(source)):
        records.append((_text(ex["name"]), int(ex["label"]), _text(ex.get("speaker", "")),
                        None if raw else ex["video"], k, len(ex["video"])))
    records.sort(key=lambda r: preprocess.natural_key(r[0]))
    labels = np.array([r[1] for r in records], np.int32)
    speakers = [r[2] for r in records]
    if split_by == "speaker":
        index, speaker_groups = speaker_split(speakers, seed)
    else:
        index, speaker_groups = stratified_split(labels, seed), None

    def make(split_name):
        rows = [records[i] for i in index[split_name]]
        spk = [r[2] for r in rows] if name == "tulips1" else None
        if not raw:
            return Split.from_videos(split_name, [r[3] for r in rows], [r[1] for r in rows],
                                     [r[0] for r in rows], frame_size, speakers=spk)
        keys = np.array([r[4] for r in rows], np.int64)
        return Split(split_name, np.array([r[1] for r in rows], np.int32),
                     [r[0] for r in rows], np.array([r[5] for r in rows], np.int64),
                     frame_size, loader=lambda i, keys=keys: source[int(keys[i])]["video"],
                     speakers=spk)

    splits = {k: make(k) for k in ("train", "val", "test")}
    class_names = tuple(builder.info.features["label"].names)
    split_info = {
        "dataset": name, "seed": seed, "method": split_by,
        "stratified": split_by == "stratified", "fractions": dict(SPLIT_FRACTIONS),
        "sizes": {k: s.num_videos for k, s in splits.items()},
        "names": {k: list(s.names) for k, s in splits.items()},
        "frame_size": frame_size, "tfds_dir": str(Path(builder.data_dir)), **source_info,
        "preprocessing": {
            "normalization": "ImageNet mean/std per channel, then ITU-R 601 gray "
                             f"{preprocess.GRAY_WEIGHTS}, bilinear resize (PIL)",
            "frames": "16 evenly spaced, floor(linspace(0, n, 16, endpoint=False)) + offset; "
                      "train: random offset, eval: end-aligned; n < 16: frames repeated",
            "spatial_shift": "train: random, up to 10% of the side, edges repeated"},
    }
    if speaker_groups is not None:
        split_info["speakers"] = speaker_groups
    lengths = np.concatenate([s.lengths for s in splits.values()])
    description = (f"{name}: {len(records)} videos ({lengths.min()}-{lengths.max()} frames), "
                   f"{len(class_names)} classes, {frame_size}x{frame_size} frames; split "
                   f"{'/'.join(str(s.num_videos) for s in splits.values())} (train/val/test, "
                   f"{split_by}, seed {seed})")
    return DatasetSplits(name, splits["train"], splits["val"], splits["test"],
                         len(class_names), class_names, split_info, description)


def _files_fingerprint(root: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:12]


def load_images(name: str, data_dir, *, cache_dir=None) -> ImageSplits:
    """MNIST or CIFAR-10 from the distributed files: train/test (images uint8, labels)."""
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; choose one of {IMAGE_DATASETS}")
    builder_cls = builders.IMAGE_BUILDERS[name]
    instructions = builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS
    root = images.image_root(data_dir, name, instructions)  # missing/empty: instructions
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    builder = _prepare(builder_cls, None, cache / f"{name}-{_files_fingerprint(root)}",
                       manual_dir=root)
    sources = builder.as_data_source()
    out = {}
    for split in ("train", "test"):
        exs = list(_read_all(sources[split]))
        out[split] = (np.stack([e["image"] for e in exs]),
                      np.array([e["label"] for e in exs], np.int32))
    names = tuple(builder.info.features["label"].names)
    return ImageSplits(name, out["train"], out["test"], len(names), names,
                       f"{name}: {len(out['train'][1])} train / {len(out['test'][1])} test images")
