"""Readers for the image datasets of the CNN-encoder comparison (paper Table 1), from the
files as distributed: MNIST's four IDX files and CIFAR-10's python pickle batches."""
from __future__ import annotations

import gzip
import pickle
import re
from pathlib import Path

import numpy as np

__all__ = ["MNIST_CLASSES", "CIFAR10_CLASSES", "MNIST_FILES", "MNIST_INSTRUCTIONS",
           "CIFAR10_INSTRUCTIONS", "read_idx", "read_mnist", "image_root", "read_cifar10"]

MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

MNIST_INSTRUCTIONS = """\
MNIST is not downloaded by this library. Put the four IDX files of the MNIST database
(Y. LeCun, C. Cortes, C. Burges), gzipped or not, in one folder and pass it:
  train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
  t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz"""

CIFAR10_INSTRUCTIONS = """\
CIFAR-10 is not downloaded by this library. Get the python version (cifar-10-python.tar.gz,
A. Krizhevsky, https://www.cs.toronto.edu/~kriz/cifar.html), extract it, and pass the folder
cifar-10-batches-py (or its parent), which holds
  data_batch_1 .. data_batch_5  test_batch  batches.meta"""


def _find_file(root: Path, stem: str) -> Path:
    # Distributions differ: "train-images-idx3-ubyte", "train-images.idx3-ubyte", ".gz".
    pattern = re.compile(re.escape(stem).replace(r"\-idx", r"[-.]idx") + r"(\.gz)?$")
    hits = sorted(p for p in root.iterdir() if pattern.match(p.name))
    if not hits:
        raise FileNotFoundError(f"mnist: {root} has no file {stem}[.gz].\n{MNIST_INSTRUCTIONS}")
    return hits[0]


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ValueError(f"cannot read IDX file {path}: {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"IDX file {path} is truncated: header says {dims}, "
                         f"found {body.size} bytes of data")
    return body.reshape(dims)


def read_mnist(root) -> dict:
    """{'train': (images uint8 (n, 28, 28), labels int32), 'test': ...}."""
    root = image_root(root, "mnist", MNIST_INSTRUCTIONS)
    out = {}
    for split, (img_stem, lab_stem) in MNIST_FILES.items():
        img_path, lab_path = _find_file(root, img_stem), _find_file(root, lab_stem)
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"mnist: {img_path} ({images.shape}) and {lab_path} "
                             f"({labels.shape}) do not pair up as images and labels")
        if labels.max(initial=0) > 9:
            raise ValueError(f"mnist: {lab_path} has labels outside 0..9")
        out[split] = (images, labels.astype(np.int32))
    return out


def image_root(root, dataset, instructions) -> Path:
    if root is None:
        raise FileNotFoundError(f"{dataset}: no data folder given (pass data_dir=...).\n"
                                f"{instructions}")
    root = Path(root).expanduser()
    if not root.is_dir() or not any(root.iterdir()):
        state = "does not exist" if not root.is_dir() else "is empty"
        raise FileNotFoundError(f"{dataset}: folder {root} {state}.\n{instructions}")
    return root


def read_cifar10(root) -> dict:
    """{'train': (images uint8 (n, 32, 32, 3), labels int32), 'test': ...}."""
    root = image_root(root, "cifar10", CIFAR10_INSTRUCTIONS)
    if not (root / "data_batch_1").exists() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    out = {}
    for split, files in names.items():
        images, labels = [], []
        for name in files:
            path = root / name
            if not path.exists():
                raise FileNotFoundError(f"cifar10: {path} is missing.\n{CIFAR10_INSTRUCTIONS}")
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
                data = np.asarray(batch[b"data"], np.uint8)
                lab = np.asarray(batch[b"labels"], np.int32)
            except Exception as err:  # unpickling errors come in many types
                raise ValueError(f"cannot read CIFAR-10 batch {path}: {err}") from err
            if data.ndim != 2 or data.shape[1] != 3072 or len(lab) != len(data):
                raise ValueError(f"cifar10: {path} holds data {data.shape} and "
                                 f"{len(lab)} labels; expected (n, 3072) and n labels")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(lab)
        out[split] = (np.concatenate(images), np.concatenate(labels))
    return out

