"""Paper Fig. 3: accuracy against readout bandwidth, controlled by max-pooling the intensity
frames before PixelRNN.

    python experiments/bandwidth.py --workdir=runs/bandwidth                 # built-in data
    python experiments/bandwidth.py --dataset=tulips1 --data_dir=DIR \
        --seeds=0,1,2,3,4,5,6,7,8,9 --num_epochs=30 --workdir=runs/bandwidth_lip
    python experiments/bandwidth.py --windows=1,2,4,8 --cnn_layers=1

Windows: 1x1 .. 8x8, then multiples of 8 up to 64x64 (`WINDOWS`). The 64x64 frames are
max-pooled with non-overlapping windows, floor division (`ModelConfig.input_pool`: plane
side 64 // w, a window that does not divide 64 drops the last 64 % w rows and columns), so
the readout per 16 frames is (64 // w)^2: 4,096, 1,024, 441, 256, 144, 100, 81, 64, then
16, 4, 4, 1, 1, 1, 1 values.

Encoder: PixelRNN directly on the binarized pooled frames (cnn_layers=0) for every window,
so that every point of the curve is the same encoder and differs only in its input size.
The in-pixel CNN needs plane sides that are multiples of 4 (its 4x4 pooling and 4x4 tiling);
--cnn_layers=1 or 2 puts it in front of PixelRNN where the pooled plane allows it (windows
1, 2, 4, 5, 8, 16: sides 64, 32, 16, 12, 8, 4) and falls back to cnn_layers=0 elsewhere;
each record says which it used.

All seeds and learning rates of one window train together (`train_sweep`, jax.vmap). The
paper plots the best of ten runs per window; results.json has the best and the mean.
Writes W/results.json ({"settings", "records"}), W/results.md, W/accuracy_vs_bandwidth.png
and W/window_<w>/ (sweep.json, spec.json; a rerun reuses finished windows).
Defaults are CPU-sized: built-in synthetic_gesture, 1 seed, 2 epochs. Time (measured on a
shared, heavily loaded 2-core CPU): --windows=8,64 --seeds=0,1 --learning_rates=1e-2,3e-3
--num_epochs=1 (4 members per window) took 64 s, 39 s for window 8 and 21 s for window 64;
the 15 default windows at 2 epochs take roughly 15 minutes there. The README's curve
(--windows=1,2,4,8,16,32,64 --num_epochs=20, one seed, the Quickstart's settings) took 194 s.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pixelrnn_jax import cli  # noqa: E402

F = flags.FLAGS
WINDOWS = tuple(range(1, 9)) + tuple(range(16, 65, 8))
"""Max-pool windows of Fig. 3: 1..8, then 16, 24, ..., 64."""


def define_flags():
    flags.DEFINE_enum("dataset", "synthetic_gesture",
                      ["synthetic_gesture", "cambridge_hand_gesture", "tulips1"],
                      "Dataset; synthetic_gesture is built in, the others read --data_dir.")
    flags.DEFINE_string("data_dir", None, "Folder of the real dataset as distributed.")
    flags.DEFINE_string("workdir", "runs/bandwidth", "Output folder.")
    flags.DEFINE_list("windows", [str(w) for w in WINDOWS], "Max-pool windows to train.")
    flags.DEFINE_integer("cnn_layers", 0, "In-pixel CNN layers before PixelRNN where the "
                         "pooled plane allows (side a multiple of 4), else 0.")
    flags.DEFINE_enum("precision", "1bit", ["1bit", "32bit"], "Precision of the encoder.")
    flags.DEFINE_list("seeds", ["0"], "Seeds; trained together with the learning rates.")
    flags.DEFINE_list("learning_rates", ["1e-2"], "Initial Adam learning rates.")
    flags.DEFINE_integer("num_epochs", 2, "Epochs per window.")
    flags.DEFINE_integer("batch_size", 16, "Batch size (all members see the same batches).")
    flags.DEFINE_integer("data_seed", 0, "Seed of the data split and order.")
    from ablation import define_training_flags
    define_training_flags()


def window_config(window: int, cnn_layers: int = 0, precision: str = "1bit",
                  frame_size: int = 64, m: float = 2.0):
    """PixelRNN config of one window; the CNN only where the pooled side is a multiple of 4."""
    from pixelrnn_jax.config import ModelConfig
    if not 1 <= window <= frame_size:
        raise ValueError(f"window {window} must be between 1 and the frame size {frame_size}")
    side = frame_size // window
    layers = cnn_layers if side % 4 == 0 else 0
    return ModelConfig(cell="pixelrnn", cnn_layers=layers, precision=precision,
                       frame_size=frame_size, input_pool=window, m=m)


def build_record(window, cfg, sweep=None) -> dict:
    from pixelrnn_jax import accounting
    return {"window": window, "plane_size": cfg.plane_size, "cnn_layers": cfg.cnn_layers,
            "precision": cfg.precision,
            "readout_values_per_16_frames": accounting.readout_values_per_16_frames(cfg),
            "test_accuracy_mean": None if sweep is None else sweep["test_accuracy_mean"],
            "test_accuracy_best": None if sweep is None else sweep["test_accuracy_best"],
            "members": None if sweep is None else sweep["members"]}


def markdown(records) -> str:
    lines = ["| window | plane | CNN layers | readout / 16 frames | acc. % mean | acc. % best |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        m, b = r["test_accuracy_mean"], r["test_accuracy_best"]
        lines.append(f"| {r['window']}x{r['window']} | {r['plane_size']} | {r['cnn_layers']} "
                     f"| {r['readout_values_per_16_frames']:,} "
                     f"| {'' if m is None else f'{100 * m:.1f}'} "
                     f"| {'' if b is None else f'{100 * b:.1f}'} |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; all options are --flags")
    cli.setup_logging()
    from ablation import parse_numbers, run_sweep, training_settings
    from pixelrnn_jax.train import TrainingError
    windows = parse_numbers(F.windows, int, "windows")
    seeds = parse_numbers(F.seeds, int, "seeds")
    lrs = parse_numbers(F.learning_rates, float, "learning_rates")
    if F.cnn_layers not in (0, 1, 2):
        cli.fail(f"--cnn_layers must be 0, 1 or 2, got {F.cnn_layers}")
    try:
        configs = [(w, window_config(w, F.cnn_layers, F.precision, m=F.m)) for w in windows]
    except ValueError as e:
        cli.fail(f"--windows: {e}")
    wd = Path(F.workdir)
    records = []
    t0 = time.perf_counter()
    for w, cfg in configs:
        try:
            out = run_sweep(cfg, wd / f"window_{w}", dataset=F.dataset, data_dir=F.data_dir,
                            seeds=seeds, learning_rates=lrs, num_epochs=F.num_epochs,
                            batch_size=F.batch_size, data_seed=F.data_seed,
                            **training_settings())
        except (ValueError, FileNotFoundError, NotADirectoryError, TrainingError) as e:
            cli.fail(f"window {w}: {e}")
        rec = build_record(w, cfg, out)
        records.append(rec)
        print(f"window {w}x{w}: readout {rec['readout_values_per_16_frames']}, test accuracy "
              f"mean {out['test_accuracy_mean']:.4f} best {out['test_accuracy_best']:.4f}",
              flush=True)
    settings = {"dataset": F.dataset, "seeds": seeds, "learning_rates": lrs,
                "num_epochs": F.num_epochs, "batch_size": F.batch_size,
                "cnn_layers": F.cnn_layers, "precision": F.precision,
                "data_seed": F.data_seed, "m": F.m, **training_settings(),
                "seconds": time.perf_counter() - t0}
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "results.json").write_text(json.dumps({"settings": settings, "records": records},
                                                indent=1))
    (wd / "results.md").write_text(markdown(records))
    from pixelrnn_jax import plots
    plots.accuracy_vs_bandwidth(records, wd / "accuracy_vs_bandwidth.png", title=F.dataset)
    print(markdown(records))
    print(f"wrote {wd / 'results.json'} and {wd / 'accuracy_vs_bandwidth.png'}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
