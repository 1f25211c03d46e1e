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
