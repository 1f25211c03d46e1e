"""Sweeps of the paper's grids, each in its own run directory: a finished sweep with the same
settings is read back instead of retrained, an interrupted one resumes from its checkpoint.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from pixelrnn_jax import data as data_lib
from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.training import TrainConfig, train_sweep
from pixelrnn_jax.training.rundir import to_json

__all__ = ["load_data", "run_sweep"]

_DATASETS: dict = {}


def load_data(dataset: str, data_dir, seed: int, cfg: ModelConfig):
    """The dataset for `cfg`, loaded once per frame size (RAW: 256x256, video by video)."""
    raw = cfg.cell == "raw"
    key = (dataset, data_dir, seed, cfg.frame_size, raw)
    if key not in _DATASETS:
        _DATASETS[key] = data_lib.load_dataset(dataset, data_dir, seed=seed,
                                               frame_size=cfg.frame_size, raw=raw)
    return _DATASETS[key]


def run_sweep(config: TrainConfig, run_dir, seeds, learning_rates) -> dict:
    """`train_sweep` of `config` over seeds x learning rates in `run_dir` (sweep.json and
    spec.json); the output of a finished sweep with the same spec is read back."""
    spec = json.loads(to_json({"config": config.to_dict(), "seeds": [int(s) for s in seeds],
                               "learning_rates": [float(lr) for lr in learning_rates]}))
    run_dir = Path(run_dir)
    done, spec_path = run_dir / "sweep.json", run_dir / "spec.json"
    if done.exists() and spec_path.exists() and json.loads(spec_path.read_text()) == spec:
        return json.loads(done.read_text())
    dataset = load_data(config.dataset, config.data_dir, config.seed, config.model)
    t0 = time.perf_counter()
    out = train_sweep(config, spec["seeds"], spec["learning_rates"], run_dir, dataset=dataset)
    out["seconds"] = time.perf_counter() - t0
    done.write_text(json.dumps(out, indent=1))
    spec_path.write_text(json.dumps(spec, indent=1))
    return out
