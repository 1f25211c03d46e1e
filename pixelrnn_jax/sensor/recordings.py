"""Real SCAMP-5 readouts and the off-sensor linear decoder fine-tuned on them.

The sensor reads out the PixelRNN output o_t of the last frame of each video as a 64x64 block
(rows and columns 128:192 of its 256x256 readout image), stored as 8-bit values `v` with
`o = (v - 127) / 10` (10 analog units = one +-1 product; the range clips at about +-12.7).
Two sources are read:

  * an archive like `cambridge_scamp5_outputs.npz`: `outputs` uint8 (n 64 64), `labels` (n,),
    `names` (n,), optionally `official_train` (n,) bool, the authors' decoder split;
  * a folder of the sensor's saved frames, `<class>/<video>/15_output.BMP` (256x256 grayscale),
    classes in sorted order (numerically when the folder names are numbers).

The decoder fine-tuned on them is in `readout_decoder`.

    rec = load_recordings("cambridge_scamp5_outputs.npz")
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from pixelrnn_jax.sensor.units import readout_to_model_units

__all__ = ["Recordings", "SIDE", "read_npz", "load_archive", "load_frame_folder",
           "load_recordings", "stratified_folds", "train_test_split"]

SIDE = 64  # the readout block
BLOCK = slice(128, 192)  # where it lies in the 256x256 readout image
FRAME_FILE = "15_output.BMP"


@dataclasses.dataclass
class Recordings:
    """Sensor readouts of n videos.

    readouts (n 64 64) float32 in model units ((v - 127) / 10); labels (n,) int32 from 0;
    names (n,) str; official_train (n,) bool or None when the source has no official split;
    class_names: the folder name of each label (None for archives).
    """

    readouts: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    official_train: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    source: str = ""

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)


def read_npz(path, required: tuple[str, ...], kind: str, expected: str) -> dict:
    """All arrays of a NumPy .npz archive, with one-line errors for a missing file, a file
    that is not an archive, or missing arrays (`kind` names the archive, `expected` says
    what it should hold)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} archive not found: {path}")
    try:
        data = np.load(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a NumPy .npz archive ({e})") from None
    with data:
        missing = [k for k in required if k not in data.files]
        if missing:
            raise ValueError(f"{path} lacks array(s) {missing} (found {data.files}); expected "
                             f"{expected}")
        return {k: data[k] for k in data.files}


def load_archive(path) -> Recordings:
    """Reads an archive with `outputs`, `labels`, `names` and optionally `official_train`."""
    path = Path(path)
    data = read_npz(path, ("outputs", "labels", "names"), "recordings",
                    "outputs (n, 64, 64) uint8, labels (n,), names (n,)")
    outputs, labels, names = data["outputs"], data["labels"], data["names"]
    train = data.get("official_train")
    n = len(outputs)
    if outputs.ndim != 3 or outputs.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{path}: outputs has shape {outputs.shape}, expected (n, {SIDE}, {SIDE})")
    if n == 0:
        raise ValueError(f"{path}: outputs holds no videos")
    if labels.shape != (n,) or names.shape != (n,):
        raise ValueError(f"{path}: labels {labels.shape} and names {names.shape} must both be "
                         f"({n},) to match outputs")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"{path}: labels must be integers >= 0, got {labels.dtype} "
                         f"with minimum {labels.min()}")
    if train is not None:
        if train.shape != (n,) or train.dtype != np.bool_:
            raise ValueError(f"{path}: official_train must be ({n},) bool, got "
                             f"{train.dtype} {train.shape}")
        if train.all() or not train.any():
            raise ValueError(f"{path}: official_train must mark some, not all, videos")
    return Recordings(readout_to_model_units(outputs), labels.astype(np.int32), names.astype(str),
                      train, None, str(path))


def _class_order(names: list[str]) -> list[str]:
    if all(n.isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def load_frame_folder(path) -> Recordings:
    """Reads `<class>/<video>/15_output.BMP` readout images (256x256 grayscale)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"recordings folder not found: {root}")
    classes = _class_order([p.name for p in root.iterdir() if p.is_dir()])
    images, labels, names, missing = [], [], [], []
    for label, cls in enumerate(classes):
        for video in sorted(p for p in (root / cls).iterdir() if p.is_dir()):
            file = video / FRAME_FILE
            if not file.is_file():
                missing.append(str(video))
                continue
            try:
                with Image.open(file) as im:
                    img = np.asarray(im.convert("L"))
            except OSError as e:
                raise ValueError(f"{file}: unreadable image ({e})") from None
            if img.shape != (256, 256):
                raise ValueError(f"{file}: readout image is {img.shape[0]}x{img.shape[1]}, "
                                 f"expected 256x256")
            images.append(img[BLOCK, BLOCK])
            labels.append(label)
            names.append(video.name)
    if missing:
        raise ValueError(f"{len(missing)} video folder(s) under {root} lack {FRAME_FILE}, e.g. "
                         f"{missing[0]}")
    if not images:
        raise ValueError(f"no readouts under {root}: expected <class>/<video>/{FRAME_FILE}")
    if len(classes) < 2:
        raise ValueError(f"{root} holds readouts of {len(classes)} class; need at least 2")
    return Recordings(readout_to_model_units(np.stack(images)), np.asarray(labels, np.int32),
                      np.asarray(names), None, tuple(classes), str(root))


def load_recordings(path) -> Recordings:
    """An archive (.npz file) or a folder of saved readout frames."""
    path = Path(path)
    if path.is_dir():
        return load_frame_folder(path)
    if path.is_file():
        return load_archive(path)
    raise FileNotFoundError(f"recordings not found: {path} (give an .npz archive or a folder "
                            f"of <class>/<video>/{FRAME_FILE})")


# ----------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------


def stratified_folds(labels, k: int, seed: int) -> np.ndarray:
    """Fold id 0..k-1 of every sample, each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), np.int32)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + int(c)) % k
    return folds


def train_test_split(rec: Recordings, test_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """Boolean train mask: the official split when the source has one, else a stratified split
    with `test_fraction` of every class held out (at least one video per class)."""
    if rec.official_train is not None:
        return rec.official_train.copy(), "official"
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train = np.ones(len(rec), bool)
    for c in np.unique(rec.labels):
        idx = np.flatnonzero(rec.labels == c)
        if len(idx) < 2:
            raise ValueError(f"class {c} has {len(idx)} video; a train/test split needs >= 2")
        rng.shuffle(idx)
        n_test = min(len(idx) - 1, max(1, round(test_fraction * len(idx))))
        train[idx[:n_test]] = False
    return train, f"stratified(test_fraction={test_fraction}, seed={seed})"
