"""Figures: the ones saved next to results.json and the notebooks' panels.

Built on `matplotlib.figure.Figure` (no pyplot state, any backend, no display needed). A
leaf of the package: it imports nothing of it, so every layer can draw.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

__all__ = ["training_curves", "accuracy_vs_memory", "accuracy_vs_bandwidth", "grouped_bars",
           "frame_rows", "image_grid", "readouts_vs_raw", "readout_comparison",
           "histogram_vs_measurement", "accumulation_curves", "to_png", "show", "save",
           "SENSOR_BYTES_PER_PIXEL"]

TAB10 = matplotlib.colormaps["tab10"].colors


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Figure, out_path, dpi: int = 110) -> Path:
    fig.savefig(out_path, dpi=dpi)
    return Path(out_path)


def training_curves(rows: list[dict], out_path) -> Path:
    """Loss and accuracy per epoch from the records of metrics.jsonl."""
    ep = [r["epoch"] for r in rows]
    fig = _figure(9, 3.2)
    a, b = fig.subplots(1, 2)
    a.plot(ep, [r["train_loss"] for r in rows], label="train")
    a.plot(ep, [r["val_loss"] for r in rows], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy"), a.legend()
    b.plot(ep, [r["train_accuracy"] for r in rows], label="train")
    b.plot(ep, [r["val_accuracy"] for r in rows], label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.set_ylim(0, 1.02), b.legend()
    return save(fig, out_path)


SENSOR_BYTES_PER_PIXEL = 32.0
"""SCAMP-5's memory for intermediate features, bytes per pixel (supplement Fig. S1)."""


def accuracy_vs_memory(rows, out_path, *, limit: float = SENSOR_BYTES_PER_PIXEL,
                       title: str | None = None) -> Path:
    """Fig. S1 / Fig. 2: test accuracy against feature memory per pixel.

    rows: Table S4 records with `model`, `feature_bytes_per_pixel_{1bit,32bit}` and
    `test_accuracy_best_{1bit,32bit}`; filled markers are 1 bit, hollow ones 32 bit. Where a
    record has `test_accuracy_mean_*` and `test_accuracy_std_*` (several seeds) the mean is
    drawn with +- std error bars beside the best (a small dot). The sensor's memory `limit`
    is drawn as a dashed vertical line.
    """
    fig = _figure(7.6, 4.4)
    ax = fig.subplots()
    colors = TAB10
    cells = list(dict.fromkeys(r.get("cell", r["model"]) for r in rows))
    for r in rows:  # colour: cell or camera; marker: CNN layers (triangle: no CNN)
        color = colors[cells.index(r.get("cell", r["model"])) % len(colors)]
        marker = {0: "^", 1: "o", 2: "s"}.get(r.get("cnn_layers", 0), "o")
        labelled = False
        for prec, fill in (("1bit", True), ("32bit", False)):
            mem = r.get(f"feature_bytes_per_pixel_{prec}")
            best = r.get(f"test_accuracy_best_{prec}")
            if mem is None or best is None:
                continue
            mean, sd = r.get(f"test_accuracy_mean_{prec}"), r.get(f"test_accuracy_std_{prec}")
            label = None if labelled else r.get("label", r["model"])
            if mean is not None and sd:
                ax.errorbar([mem], [mean], yerr=[sd], fmt=marker, ms=7, color=color,
                            mfc=color if fill else "none", capsize=2, lw=0.8, label=label)
                ax.plot([mem], [best], ".", ms=3, color=color)
            else:
                ax.plot([mem], [best], marker, ms=7, color=color,
                        mfc=color if fill else "none", label=label)
            labelled = True
    ax.axvline(limit, ls="--", color="k", lw=1)
    ax.text(limit, 0.02, f" sensor limit\n {limit:g} B/pixel", fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_xlim(0.15, 300)
    ticks = [0.25, 1, 4, 16, 32, 64, 256]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("feature memory per pixel [bytes] (filled: 1 bit, hollow: 32 bit)")
    ax.set_ylabel("test accuracy (mean +- std over seeds; dot: best)")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, out_path)


def accuracy_vs_bandwidth(records, out_path, *, title: str | None = None) -> Path:
    """Fig. 3: test accuracy against readout values per 16 frames (log axis).

    records: dicts with `readout_values_per_16_frames`, `test_accuracy_best` and, optionally,
    `test_accuracy_mean` and `window`.
    """
    recs = sorted((r for r in records if r.get("test_accuracy_best") is not None),
                  key=lambda r: r["readout_values_per_16_frames"])
    fig = _figure(5.6, 3.8)
    ax = fig.subplots()
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
    return save(fig, out_path)


def grouped_bars(groups: list[str], series: dict, out_path, *, outlines: dict | None = None,
                 ylabel: str = "test accuracy (%)", title: str | None = None) -> Path:
    """Bars per group for every series {name: [value per group]} (NaN: no bar), with
    optional dashed outlines {name: [value per group]} (e.g. a paper's figures)."""
    names = list(series)
    width = 0.8 / max(len(names), 1)
    fig = _figure(3.0 + 2.0 * len(groups), 3.8)
    ax = fig.subplots()
    for j, n in enumerate(names):
        xs = np.arange(len(groups)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, series[n], width, color=f"C{j}", label=n)
        if outlines and n in outlines:
            ax.bar(xs, outlines[n], width, fill=False, edgecolor="black", linestyle="--",
                   linewidth=0.8)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return save(fig, out_path)


# --------------------------------------------------------------------------------------
# figures for notebooks: built on matplotlib.figure.Figure (no pyplot state, any backend)
# --------------------------------------------------------------------------------------

RAW_SIDE = 256  # the RAW camera baseline: 256 x 256 intensities per frame


def to_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a figure, e.g. `IPython.display.Image(to_png(fig))` in a notebook."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _imshow(ax, img, cmap, vmin=None, vmax=None):
    a = np.asarray(img)
    if a.dtype == bool:
        a = np.where(a, 1.0, -1.0)
        vmin, vmax = -1.0, 1.0
    im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    return im


def frame_rows(rows: dict, *, steps=None, title: str | None = None, cmap: str = "gray",
               panel: float = 0.85):
    """Frame sequences as rows of a grid, one column per time step.

    rows: {label: (t h w)} arrays; bool arrays show True (+1) white and False (-1) black,
      float arrays share one gray scale per row.
    steps: the time steps to show (default all).
    """
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    if not arrays:
        raise ValueError("frame_rows needs at least one row of frames")
    for k, v in arrays.items():
        if v.ndim != 3:
            raise ValueError(f"row {k!r} must be (frames, height, width), got shape {v.shape}")
    t = min(len(v) for v in arrays.values())
    steps = list(range(t)) if steps is None else list(steps)
    fig = _figure(panel * len(steps) + 1.2, panel * len(arrays) + 0.5)
    axes = np.atleast_2d(fig.subplots(len(arrays), len(steps), squeeze=False))
    for r, (label, frames) in enumerate(arrays.items()):
        lo, hi = (None, None) if frames.dtype == bool else (float(frames.min()),
                                                             float(frames.max()))
        for c, step in enumerate(steps):
            _imshow(axes[r, c], frames[step], cmap, lo, hi)
            if r == 0:
                axes[r, c].set_title(f"t={step}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def image_grid(images: dict, *, ncols: int | None = None, cmap: str = "gray",
               colorbar: bool = False, title: str | None = None, panel: float = 2.2):
    """Single images (h w) in a grid, each titled by its key."""
    items = list(images.items())
    if not items:
        raise ValueError("image_grid needs at least one image")
    ncols = len(items) if ncols is None else ncols
    nrows = -(-len(items) // ncols)
    fig = _figure(panel * ncols + (0.6 if colorbar else 0), panel * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax, (label, img) in zip(axes, items):
        im = _imshow(ax, img, cmap)
        ax.set_title(label, fontsize=8)
        if colorbar and np.asarray(img).dtype != bool:
            fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[len(items):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def readouts_vs_raw(readouts: dict, readout_values: int, num_frames: int = 16,
                    raw_side: int = RAW_SIDE):
    """The readouts of a few videos beside the values they cost against a RAW camera.

    readouts: {label: (h w)} what the sensor reads out for one `num_frames` window.
    readout_values: values read out per `num_frames` frames (`accounting.summary`).
    """
    raw = raw_side * raw_side * num_frames
    items = list(readouts.items())
    fig = _figure(2.3 * len(items) + 3.6, 2.8)
    axes = fig.subplots(1, len(items) + 1, width_ratios=[1] * len(items) + [1.4])
    lim = max(float(np.abs(np.asarray(v)).max()) for _, v in items) or 1.0
    for ax, (label, img) in zip(axes, items):
        im = _imshow(ax, img, "coolwarm", -lim, lim)
        ax.set_title(label, fontsize=8)
    fig.colorbar(im, ax=list(axes[:len(items)]), shrink=0.8, label="readout value")
    bars = axes[-1]
    names = [f"RAW camera\n{raw_side}x{raw_side}", "PixelRNN\nreadout"]
    values = [raw, readout_values]
    bars.bar(names, values, color=["0.6", "tab:red"])
    bars.set_yscale("log")
    bars.set_ylabel(f"values read out per {num_frames} frames")
    for i, v in enumerate(values):
        bars.text(i, v, f"{v:,}", ha="center", va="bottom", fontsize=8)
    bars.set_title(f"{raw / readout_values:,.0f}x fewer values", fontsize=9)
    bars.set_ylim(readout_values / 10, raw * 8)
    return fig


def histogram_vs_measurement(samples, mean: float, std: float, *, label: str = "model",
                             xlabel: str = "value read back", bins: int = 60):
    """Histogram of samples with the measured normal density (mean, std) drawn over it."""
    x = np.asarray(samples, np.float64).reshape(-1)
    fig = _figure(5.0, 3.2)
    ax = fig.subplots()
    ax.hist(x, bins=bins, density=True, color="0.7", histtype="stepfilled",
            label=f"{label}: mean {x.mean():.2f}, std {x.std():.2f}")
    grid = np.linspace(x.min(), x.max(), 200)
    ax.plot(grid, np.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi)),
            color="tab:red", label=f"measured: mean {mean:.2f}, std {std:.2f}")
    ax.set_xlabel(xlabel), ax.set_ylabel("density"), ax.legend(fontsize=8)
    return fig


def accumulation_curves(sim: dict, measured: dict | None = None) -> Figure:
    """Bias and std against the number of kernel applications: simulated curves (solid)
    beside measured ones (dashed, same colour) for every value {"<v>": {"bias", "std"}}."""
    fig = _figure(10, 3.6)
    a, b = fig.subplots(1, 2)
    for i, (k, curves) in enumerate(sorted(sim.items(), key=lambda kv: float(kv[0]))):
        color = TAB10[i % len(TAB10)]
        n = np.arange(1, len(curves["bias"]) + 1)
        a.plot(n, curves["bias"], color=color, label=f"{k}: simulated")
        b.plot(np.arange(len(curves["std"])), curves["std"], color=color)
        if measured and k in measured:
            m = measured[k]
            a.plot(np.arange(1, len(m["bias"]) + 1), m["bias"], "--", color=color,
                   label=f"{k}: measured")
            b.plot(np.arange(len(m["std"])), m["std"], "--", color=color)
    a.set_xlabel("applications n"), a.set_ylabel("bias (input - output readout, units)")
    b.set_xlabel("applications n"), b.set_ylabel("std over pixels (units)")
    a.legend(fontsize=7, ncol=2)
    return fig


def readout_comparison(real, preds: dict, names, count: int = 4) -> Figure:
    """Real readouts (n 64 64) beside simulated ones {title: (n 64 64)} for the first
    `count` videos, each panel on its own diverging scale around its mean (crop 1..62)."""
    cols = {"real": real, **preds}
    count = min(count, len(real))
    fig = _figure(2.2 * len(cols), 2.2 * count)
    axes = fig.subplots(count, len(cols), squeeze=False)
    for i in range(count):
        for j, (title, imgs) in enumerate(cols.items()):
            img = np.asarray(imgs[i])[1:63, 1:63]
            lim = float(np.percentile(np.abs(img - img.mean()), 99)) or 1.0
            ax = axes[i, j]
            ax.imshow(img, cmap="RdBu_r", vmin=img.mean() - lim, vmax=img.mean() + lim)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(str(names[i]), fontsize=8)
    return fig


def show(fig, dpi: int = 100) -> None:
    """Displays a figure in a notebook as a PNG, whatever matplotlib backend is active."""
    from IPython.display import Image, display
    display(Image(to_png(fig, dpi)))
