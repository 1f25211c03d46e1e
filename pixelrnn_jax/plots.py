"""Figures saved next to results.json (matplotlib, no display needed)."""
from __future__ import annotations

import json
from pathlib import Path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def training_curves(metrics_path, out_path) -> Path:
    """Loss and accuracy per epoch from metrics.jsonl."""
    plt = _pyplot()
    rows = [json.loads(l) for l in Path(metrics_path).read_text().splitlines() if l.strip()]
    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep, [r["train_loss"] for r in rows], label="train")
    a.plot(ep, [r["val_loss"] for r in rows], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy"), a.legend()
    b.plot(ep, [r["train_accuracy"] for r in rows], label="train")
    b.plot(ep, [r["val_accuracy"] for r in rows], label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.set_ylim(0, 1.02), b.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)


SENSOR_BYTES_PER_PIXEL = 32.0
"""SCAMP-5's memory for intermediate features, bytes per pixel (supplement Fig. S1)."""


def accuracy_vs_memory(rows, out_path, *, limit: float = SENSOR_BYTES_PER_PIXEL,
                       title: str | None = None) -> Path:
    """Fig. S1 / Fig. 2: test accuracy against feature memory per pixel.

    rows: Table S4 records with `model`, `feature_bytes_per_pixel_{1bit,32bit}` and
    `test_accuracy_best_{1bit,32bit}`; filled markers are 1 bit, hollow ones 32 bit. The
    sensor's memory `limit` is drawn as a dashed vertical line.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    colors = plt.get_cmap("tab10").colors
    cells = list(dict.fromkeys(r.get("cell", r["model"]) for r in rows))
    for r in rows:  # colour: cell or camera; marker: CNN layers (triangle: no CNN)
        color = colors[cells.index(r.get("cell", r["model"])) % len(colors)]
        marker = {0: "^", 1: "o", 2: "s"}.get(r.get("cnn_layers", 0), "o")
        labelled = False
        for prec, fill in (("1bit", True), ("32bit", False)):
            mem, acc = r.get(f"feature_bytes_per_pixel_{prec}"), r.get(f"test_accuracy_best_{prec}")
            if mem is None or acc is None:
                continue
            ax.plot([mem], [acc], marker, ms=7, color=color, mfc=color if fill else "none",
                    label=None if labelled else r.get("label", r["model"]))
            labelled = True
    ax.axvline(limit, ls="--", color="k", lw=1)
    ax.text(limit, 0.02, f" sensor limit\n {limit:g} B/pixel", fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_xlim(0.15, 300)
    ticks = [0.25, 1, 4, 16, 32, 64, 256]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("feature memory per pixel [bytes] (filled: 1 bit, hollow: 32 bit)")
    ax.set_ylabel("test accuracy (best over seeds)")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)


def accuracy_vs_bandwidth(records, out_path, *, title: str | None = None) -> Path:
    """Fig. 3: test accuracy against readout values per 16 frames (log axis).

    records: dicts with `readout_values_per_16_frames`, `test_accuracy_best` and, optionally,
    `test_accuracy_mean` and `window`.
    """
    plt = _pyplot()
    recs = sorted((r for r in records if r.get("test_accuracy_best") is not None),
                  key=lambda r: r["readout_values_per_16_frames"])
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    x = [r["readout_values_per_16_frames"] for r in recs]
    ax.plot(x, [r["test_accuracy_best"] for r in recs], "o-", label="best over seeds")
    if any(r.get("test_accuracy_mean") is not None for r in recs):
        ax.plot(x, [r.get("test_accuracy_mean") for r in recs], "s--", ms=4, alpha=0.7,
                label="mean over seeds")
    for r in recs:
        if "window" in r:
            ax.annotate(f"{r['window']}", (r["readout_values_per_16_frames"],
                                           r["test_accuracy_best"]),
                        textcoords="offset points", xytext=(0, 5), fontsize=6, ha="center")
    ax.set_xscale("log")
    ax.set_xlabel("readout bandwidth [values per 16 frames] (labels: pooling window)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)
