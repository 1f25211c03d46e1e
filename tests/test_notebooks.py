"""The notebooks run top to bottom on small settings, and are committed without outputs.

Each notebook runs in a fresh python3 kernel started from this interpreter, with the working
directory set to notebooks/ (as Jupyter does), the repository first on PYTHONPATH, and
PIXELRNN_NOTEBOOK_SMOKE=1 so that every cell works on a few videos.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("quickstart.ipynb", "encode_as_a_library.ipynb", "sensor.ipynb")
CELL_TIMEOUT_S = 600


def _read(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{name} cell {i} holds outputs; strip them before committing "
                f"(jupyter nbconvert --clear-output --inplace notebooks/{name})")


def _execute(name, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PIXELRNN_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("PIXELRNN_NOTEBOOK_WORKDIR", str(tmp_path / "workdir"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter"))  # connection files
    nb = _read(name)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells
               if cell.cell_type == "code" for out in cell.outputs)


def test_quickstart_runs(tmp_path, monkeypatch):
    nb = _execute("quickstart.ipynb", tmp_path, monkeypatch)
    assert _images(nb) >= 5  # training curves, three videos' stages, readouts vs RAW
    assert (tmp_path / "workdir" / "results.json").is_file()


@pytest.mark.slow   # 40 s; the Quickstart notebook runs by default
def test_encode_as_a_library_runs(tmp_path, monkeypatch):
    nb = _execute("encode_as_a_library.ipynb", tmp_path, monkeypatch)
    assert _images(nb) >= 2


@pytest.mark.slow   # 40 s; the Quickstart notebook runs by default
def test_sensor_runs(tmp_path, monkeypatch):
    pytest.importorskip("pixelrnn_jax.scamp5", reason="the SCAMP-5 model is not in this tree")
    nb = _execute("sensor.ipynb", tmp_path, monkeypatch)
    assert _images(nb) >= 3
