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
