"""Shared test fixtures: the optional real-data folder and small compiled models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXELRNN_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"


def shared_file(name: str) -> Path:
    """Path of a file in ../shared/data, or a clean skip when a user's clone lacks it."""
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real reference data not available: {path} (only on developer machines)")
    return path


@pytest.fixture
def shared_data():
    return shared_file


def subprocess_env(request, tmp_path_factory) -> dict:
    """Environment of the experiment scripts a test starts: this checkout first on the path,
    CPU, no inherited XLA_FLAGS, and one XLA compilation cache kept in pytest's cache
    folder across sessions (bounded, LRU), so that reruns of the suite compile little."""
    cache = getattr(request.config, "cache", None)
    xla_cache = (cache.mkdir("pixelrnn-xla-cache") if cache is not None
                 else tmp_path_factory.mktemp("xla-cache"))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]]
                                                         if env.get("PYTHONPATH") else [])),
               JAX_PLATFORMS="cpu",
               JAX_COMPILATION_CACHE_DIR=str(xla_cache),
               JAX_COMPILATION_CACHE_MAX_SIZE=str(256 << 20),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
               TF_CPP_MIN_LOG_LEVEL="3")
    return env
