"""Supplement Table S4 and Fig. S1 (paper Fig. 2): every encoder of the architecture
comparison, trained, next to its on-sensor parameters, feature memory and readout.

The grid is Table S4's 17 rows x {1 bit, 32 bit} (a camera baseline only at the precision it
runs at: RAW at 32 bit, the difference and event cameras at 1 bit), each (row, precision) a
sweep over seeds and learning rates (`runs.run_sweep`). Records are keyed `model`: raw,
difference_camera, event_camera, {1,2}cnn_{srnn,lstm,gru,mgu,genrnn01,genrnn11,pixelrnn}.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pixelrnn_jax import plots
from pixelrnn_jax.core import PRECISIONS, ModelConfig, accounting
from pixelrnn_jax.core.accounting import format_number

__all__ = ["CAMERA_KEYS", "model_key", "table_rows", "row_precisions", "select_jobs",
           "build_row", "markdown", "write_results"]

CAMERA_KEYS = {"raw": "raw", "difference": "difference_camera", "event": "event_camera"}


def model_key(cfg: ModelConfig) -> str:
    """results.json key of a Table S4 row: raw, event_camera, 2cnn_gru, ..."""
    if cfg.cnn_layers:
        return f"{cfg.cnn_layers}cnn_{cfg.cell}"
    return CAMERA_KEYS.get(cfg.cell, cfg.cell)


def table_rows() -> list[tuple[str, str, ModelConfig]]:
    """Table S4's 17 rows as (key, label, config), in the table's order."""
    return [(model_key(cfg), label, cfg) for label, cfg in accounting.TABLE_S4_ROWS]


def row_precisions(cfg: ModelConfig) -> tuple[str, ...]:
    return tuple(p for p in PRECISIONS if p in cfg.spec.precisions)


def select_jobs(models=(), cnn_layers=(1, 2), precisions=PRECISIONS, **changes
                ) -> list[tuple[str, str, ModelConfig]]:
    """(key, precision, config) of every row and precision to train: `models` (keys; empty:
    all), RNN rows only at `cnn_layers`, each config with `changes` (e.g. m, delta)."""
    rows = table_rows()
    keys = {k for k, _, _ in rows}
    unknown = sorted(set(models) - keys)
    if unknown:
        raise ValueError(f"--models: unknown {unknown}; choose from {sorted(keys)}")
    bad = sorted(set(precisions) - set(PRECISIONS))
    if bad:
        raise ValueError(f"--precisions: unknown {bad}; choose from {list(PRECISIONS)}")
    jobs = []
    for key, _, cfg in rows:
        if models and key not in models:
            continue
        if cfg.cnn_layers and cfg.cnn_layers not in cnn_layers:
            continue
        for prec in row_precisions(cfg):
            if prec in precisions:
                jobs.append((key, prec, cfg.replace(precision=prec, **changes)))
    if not jobs:
        raise ValueError(f"nothing to train for --models={list(models)} --cnn_layers="
                         f"{list(cnn_layers)} --precisions={list(precisions)}")
    return jobs


def build_row(key, label, cfg, sweeps=None) -> dict:
    """One results.json record. sweeps: {precision: train_sweep output}; a precision that
    was not trained has null accuracy fields."""
    sweeps = sweeps or {}
    rec = {"model": key, "label": label, "cell": cfg.cell, "cnn_layers": cfg.cnn_layers,
           "onsensor_params": accounting.onsensor_params(cfg),
           "feature_bytes_per_pixel_1bit": accounting.feature_bytes_per_pixel(cfg, 1),
           "feature_bytes_per_pixel_32bit": accounting.feature_bytes_per_pixel(cfg, 32),
           "readout_values_per_16_frames": accounting.readout_values_per_16_frames(cfg)}
    for prec in PRECISIONS:
        s = sweeps.get(prec)
        accs = None if s is None else [m["test_accuracy"] for m in s["members"]]
        rec[f"test_accuracy_mean_{prec}"] = None if s is None else s["test_accuracy_mean"]
        rec[f"test_accuracy_std_{prec}"] = None if s is None else float(np.std(accs))
        rec[f"test_accuracy_best_{prec}"] = None if s is None else s["test_accuracy_best"]
        rec[f"members_{prec}"] = None if s is None else len(s["members"])
    return rec


def markdown(rows) -> str:
    def acc(r, prec):
        m, b = r[f"test_accuracy_mean_{prec}"], r[f"test_accuracy_best_{prec}"]
        if m is None:
            return ""
        sd = r.get(f"test_accuracy_std_{prec}")
        spread = "" if not sd else f" +- {100 * sd:.1f}"
        return f"{100 * m:.1f}{spread} / {100 * b:.1f}"

    lines = ["| model | acc. 1 bit % (mean +- std / best) | acc. 32 bit % (mean +- std / best) "
             "| params "
             "| bytes/pixel 1 bit | bytes/pixel 32 bit | readout / 16 frames |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {acc(r, '1bit')} | {acc(r, '32bit')} "
                     f"| {format_number(r['onsensor_params'])} "
                     f"| {format_number(r['feature_bytes_per_pixel_1bit'])} "
                     f"| {format_number(r['feature_bytes_per_pixel_32bit'])} "
                     f"| {format_number(r['readout_values_per_16_frames'])} |")
    return "\n".join(lines) + "\n"


def write_results(workdir, rows, settings, *, figure=True, title=None) -> Path:
    """results.json, results.md and (with `figure`) Fig. S1's accuracy_vs_memory.png."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "results.json").write_text(json.dumps({"settings": settings, "rows": rows},
                                                indent=1))
    (wd / "results.md").write_text(markdown(rows))
    if figure:
        plots.accuracy_vs_memory(rows, wd / "accuracy_vs_memory.png", title=title)
    return wd / "results.json"
