"""Trains every model of supplement Table S4 (network architecture comparison) and writes
the table with measured accuracy next to the derived parameter, memory and readout columns.

    python experiments/ablation.py --workdir=runs/ablation --num_epochs=12
    python experiments/ablation.py --dataset=tulips1 --data_dir=DIR --workdir=runs/ablation_lip
    python experiments/ablation.py --cells=pixelrnn,gru --cnn_layers=1 --precisions=1bit
    python experiments/ablation.py --dry_run        # the table's size columns only

Each model trains in W/<model>/ through `pixelrnn_jax.train.train_and_evaluate`, so rerunning
with the same --workdir resumes unfinished models and skips finished ones. Writes
W/ablation.json and W/ablation.md. RAW trains on 256x256 frames; its accuracy is the
video-level one of the training loop (the mean of its frame logits).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelrnn_jax import cli  # noqa: E402

F = flags.FLAGS
flags.DEFINE_enum("dataset", "synthetic_gesture",
                  ["synthetic_gesture", "cambridge_hand_gesture", "tulips1"],
                  "Dataset; synthetic_gesture is built in, the others read --data_dir.")
flags.DEFINE_string("data_dir", None, "Folder of the real dataset as distributed.")
flags.DEFINE_string("workdir", "runs/ablation", "One subfolder per model, and the table.")
flags.DEFINE_list("cells", [], "Cells to run (default: all of Table S4).")
flags.DEFINE_list("cnn_layers", ["1", "2"], "CNN depths of the RNN rows.")
flags.DEFINE_list("precisions", ["1bit", "32bit"], "Precisions to train.")
flags.DEFINE_integer("num_epochs", 30, "Epochs per model.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_float("learning_rate", 1e-2, "Initial Adam learning rate.")
flags.DEFINE_float("delta", 0.1, "Threshold of the difference and event cameras.")
flags.DEFINE_integer("seed", 0, "Seed of initialization, data order and noise.")
flags.DEFINE_bool("dry_run", False, "Only print the models and their size columns.")


def selected_models():
    from pixelrnn_jax import accounting
    models = []
    for label, cfg in accounting.table_s4_models(tuple(F.precisions)):
        if F.cells and cfg.cell not in F.cells:
            continue
        if cfg.cnn_layers and str(cfg.cnn_layers) not in F.cnn_layers:
            continue
        models.append((label, cfg.replace(delta=F.delta)))
    if not models:
        cli.fail(f"no Table S4 model matches --cells={F.cells} --cnn_layers={F.cnn_layers} "
                 f"--precisions={F.precisions}")
    return models


def row(label, cfg, results=None):
    from pixelrnn_jax import accounting
    return {"model": label, "cell": cfg.cell, "cnn_layers": cfg.cnn_layers,
            "precision": cfg.precision,
            "test_accuracy": None if results is None else results["test_accuracy"],
            "val_accuracy": None if results is None else results["val_accuracy"],
            "onsensor_params": accounting.onsensor_params(cfg),
            "feature_bytes_per_pixel": accounting.feature_bytes_per_pixel(cfg),
            "readout_values_per_16_frames": accounting.readout_values_per_16_frames(cfg)}


def markdown(rows) -> str:
    def fmt(v):
        if v is None:
            return "-"
        return f"{v:.2%}" if isinstance(v, float) and v <= 1 else f"{v:,}"
    lines = ["| model | test acc. | val acc. | params | bytes/pixel | readout / 16 frames |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        mem = r["feature_bytes_per_pixel"]
        lines.append(f"| {r['model']} | {fmt(r['test_accuracy'])} | {fmt(r['val_accuracy'])} "
                     f"| {r['onsensor_params']:,} | {'-' if mem is None else f'{mem:.3f}'} "
                     f"| {r['readout_values_per_16_frames']:,} |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; all options are --flags")
    cli.setup_logging()
    from pixelrnn_jax.train import TrainConfig, TrainingError, train_and_evaluate
    models = selected_models()
    rows = []
    wd = Path(F.workdir)
    for label, cfg in models:
        if F.dry_run:
            rows.append(row(label, cfg))
            continue
        run_dir = wd / re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        # camera baselines have no on-sensor weights to export
        config = TrainConfig(model=cfg, dataset=F.dataset, data_dir=F.data_dir,
                             batch_size=F.batch_size, num_epochs=F.num_epochs,
                             learning_rate=F.learning_rate, seed=F.seed,
                             export_weights=cfg.cnn_layers > 0)
        done = run_dir / "results.json"
        try:
            if done.exists() and json.loads(done.read_text())["epochs"] >= F.num_epochs:
                results = json.loads(done.read_text())
            else:
                results = train_and_evaluate(config, run_dir)
        except (ValueError, FileNotFoundError, NotADirectoryError, TrainingError) as e:
            cli.fail(f"{label}: {e}")
        rows.append(row(label, cfg, results))
        print(f"{label}: test accuracy {results['test_accuracy']:.4f}", flush=True)
    table = markdown(rows)
    print(table)
    if not F.dry_run:
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "ablation.json").write_text(json.dumps(rows, indent=1))
        (wd / "ablation.md").write_text(table)
        print(f"table: {wd / 'ablation.md'}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
