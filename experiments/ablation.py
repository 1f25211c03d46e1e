"""Supplement Table S4 and Fig. S1 (paper Fig. 2): every encoder of the architecture
comparison, trained, next to its on-sensor parameters, feature memory and readout.

    python experiments/ablation.py --accounting_only --workdir=runs/table_s4   # seconds
    python experiments/ablation.py --workdir=runs/ablation                      # built-in data
    python experiments/ablation.py --dataset=cambridge_hand_gesture --data_dir=DIR \
        --seeds=0,1,2,3,4,5,6,7,8,9 --learning_rates=1e-2,3e-3 --num_epochs=30 \
        --workdir=runs/ablation_gesture
    python experiments/ablation.py --models=1cnn_pixelrnn,1cnn_gru --precisions=1bit

The grid is Table S4's 17 rows x {1 bit, 32 bit} (a camera baseline only at the precision it
runs at: RAW at 32 bit, the difference and event cameras at 1 bit), x --seeds x
--learning_rates. All seeds and learning rates of one (row, precision) train together in one
compiled program (`pixelrnn_jax.train.train_sweep`: jax.vmap over stacked parameters and
optimizer states); each member keeps its best-validation epoch, and the row reports the mean
and the best test accuracy over its members.

Writes to --workdir:
  results.json          {"rows": [...], "settings": {...}}, one record per Table S4 row,
                        keyed `model` (raw, difference_camera, event_camera,
                        {1,2}cnn_{srnn,lstm,gru,mgu,genrnn01,genrnn11,pixelrnn})
  results.md            the table (accuracy in percent, memory rounded as Table S4 prints it)
  accuracy_vs_memory.png  Fig. S1: best accuracy against feature bytes per pixel, with
                        SCAMP-5's 32 bytes-per-pixel limit dashed
  <model>_<precision>/  sweep.json (every member's accuracy) and spec.json; a rerun with
                        the same settings reuses finished sweeps.

--accounting_only writes results.json and results.md with the accuracy fields null (no
training, no data). The defaults are CPU-sized (built-in synthetic_gesture, 1 seed, 1
learning rate, 2 epochs); the paper's comparison used the real datasets and longer training.
RAW trains on 256x256 frames read video by video; its accuracy, like the event camera's,
is that of the mean of its per-frame logits.

Time (measured on a shared, heavily loaded 2-core CPU): --accounting_only 16 s;
--models=1cnn_pixelrnn --precisions=1bit --seeds=0,1 --num_epochs=1 147 s of sweep (compile
included; 720 training videos at 6 videos/s per step of 2 members), plus 45 s the first
time to build the built-in dataset. The default grid is 29 such sweeps of 2 epochs: expect
hours on CPU; on one GPU, pass the paper's seeds and epochs. Near idle, 1 seed, 80 epochs of
batch 32 (the README's comparison): 1cnn_pixelrnn 548 s, 1cnn_gru 1,591 s, 1cnn_lstm 1,424 s,
each camera 31-44 s. The gated baselines are the slow rows on CPU (recurrent convolutions as
`lax.conv` on one input plane), and vmapping seeds costs them more than proportionally (an
LSTM step: 0.80 s for one member, 2.3 s for two).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelrnn_jax import cli  # noqa: E402

F = flags.FLAGS
CAMERA_KEYS = {"raw": "raw", "difference": "difference_camera", "event": "event_camera"}
PRECISIONS = ("1bit", "32bit")


def define_flags():
    flags.DEFINE_enum("dataset", "synthetic_gesture",
                      ["synthetic_gesture", "cambridge_hand_gesture", "tulips1"],
                      "Dataset; synthetic_gesture is built in, the others read --data_dir.")
    flags.DEFINE_string("data_dir", None, "Folder of the real dataset as distributed.")
    flags.DEFINE_string("workdir", "runs/ablation", "Output folder.")
    flags.DEFINE_list("models", [], "Row keys to train (default: all 17), e.g. 1cnn_pixelrnn.")
    flags.DEFINE_list("cnn_layers", ["1", "2"], "CNN depths of the RNN rows to train.")
    flags.DEFINE_list("precisions", list(PRECISIONS), "Precisions to train.")
    flags.DEFINE_list("seeds", ["0"], "Seeds; trained together with the learning rates.")
    flags.DEFINE_list("learning_rates", ["1e-2"], "Initial Adam learning rates.")
    flags.DEFINE_integer("num_epochs", 2, "Epochs per sweep.")
    flags.DEFINE_integer("batch_size", 16, "Batch size (all members see the same batches).")
    flags.DEFINE_integer("data_seed", 0, "Seed of the data split and order.")
    flags.DEFINE_float("delta", 0.1, "Threshold of the difference and event cameras.")
    define_training_flags()
    flags.DEFINE_bool("accounting_only", False,
                      "Write the table's parameter, memory and readout columns only.")


def define_training_flags():
    """The training settings of every sweep (shared with bandwidth.py)."""
    flags.DEFINE_float("m", 2.0, "Surrogate steepness of the binary quantizers.")
    flags.DEFINE_float("encoder_lr_scale", 0.1, "Encoder learning rate / decoder's.")
    flags.DEFINE_float("shift_fraction", 0.1, "Random spatial shift in training.")
    flags.DEFINE_integer("plateau_patience", 4, "Epochs without validation-loss improvement "
                         "before a member's learning rate halves.")


def training_settings() -> dict:
    """The values of `define_training_flags` but --m (a model setting), for `run_sweep`."""
    return {"encoder_lr_scale": F.encoder_lr_scale, "shift_fraction": F.shift_fraction,
            "plateau_patience": F.plateau_patience}


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------


def model_key(cfg) -> str:
    """results.json key of a Table S4 row: raw, event_camera, 2cnn_gru, ..."""
    if cfg.cnn_layers:
        return f"{cfg.cnn_layers}cnn_{cfg.cell}"
    return CAMERA_KEYS.get(cfg.cell, cfg.cell)


def table_rows():
    """Table S4's 17 rows as (key, label, config), in the table's order."""
    from pixelrnn_jax.accounting import TABLE_S4_ROWS
    return [(model_key(cfg), label, cfg) for label, cfg in TABLE_S4_ROWS]


def row_precisions(cfg) -> tuple[str, ...]:
    from pixelrnn_jax.cells import get_cell_spec
    return tuple(p for p in PRECISIONS if p in get_cell_spec(cfg.cell).precisions)


def build_row(key, label, cfg, sweeps=None) -> dict:
    """One results.json record. sweeps: {precision: train_sweep output}; a precision that
    was not trained has null accuracy fields."""
    from pixelrnn_jax import accounting
    sweeps = sweeps or {}
    rec = {"model": key, "label": label, "cell": cfg.cell, "cnn_layers": cfg.cnn_layers,
           "onsensor_params": accounting.onsensor_params(cfg),
           "feature_bytes_per_pixel_1bit": accounting.feature_bytes_per_pixel(cfg, 1),
           "feature_bytes_per_pixel_32bit": accounting.feature_bytes_per_pixel(cfg, 32),
           "readout_values_per_16_frames": accounting.readout_values_per_16_frames(cfg)}
    for prec in PRECISIONS:
        s = sweeps.get(prec)
        rec[f"test_accuracy_mean_{prec}"] = None if s is None else s["test_accuracy_mean"]
        rec[f"test_accuracy_best_{prec}"] = None if s is None else s["test_accuracy_best"]
        rec[f"members_{prec}"] = None if s is None else len(s["members"])
    return rec


def markdown(rows) -> str:
    from pixelrnn_jax.accounting import _fmt

    def acc(r, prec):
        m, b = r[f"test_accuracy_mean_{prec}"], r[f"test_accuracy_best_{prec}"]
        return "" if m is None else f"{100 * m:.1f} / {100 * b:.1f}"

    lines = ["| model | acc. 1 bit % (mean / best) | acc. 32 bit % (mean / best) | params "
             "| bytes/pixel 1 bit | bytes/pixel 32 bit | readout / 16 frames |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {acc(r, '1bit')} | {acc(r, '32bit')} "
                     f"| {_fmt(r['onsensor_params'])} "
                     f"| {_fmt(r['feature_bytes_per_pixel_1bit'])} "
                     f"| {_fmt(r['feature_bytes_per_pixel_32bit'])} "
                     f"| {_fmt(r['readout_values_per_16_frames'])} |")
    return "\n".join(lines) + "\n"


def write_results(workdir, rows, settings, *, figure=True, title=None) -> Path:
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "results.json").write_text(json.dumps({"settings": settings, "rows": rows},
                                                indent=1))
    (wd / "results.md").write_text(markdown(rows))
    if figure:
        from pixelrnn_jax import plots
        plots.accuracy_vs_memory(rows, wd / "accuracy_vs_memory.png", title=title)
    return wd / "results.json"


# --------------------------------------------------------------------------------------
# training (shared with bandwidth.py)
# --------------------------------------------------------------------------------------

_DATASETS = {}


def load_data(dataset, data_dir, seed, cfg):
    """The dataset for `cfg`, loaded once per frame size (RAW: 256x256, video by video)."""
    from pixelrnn_jax import data as data_lib
    raw = cfg.cell == "raw"
    key = (dataset, data_dir, seed, cfg.frame_size, raw)
    if key not in _DATASETS:
        _DATASETS[key] = data_lib.load_dataset(dataset, data_dir, seed=seed,
                                               frame_size=cfg.frame_size, raw=raw)
    return _DATASETS[key]


def run_sweep(cfg, run_dir, *, dataset, data_dir, seeds, learning_rates, num_epochs,
              batch_size, data_seed, encoder_lr_scale=0.1, shift_fraction=0.1,
              plateau_patience=4) -> dict:
    """train_sweep of one config over seeds x learning rates in run_dir; a finished sweep
    with the same settings is read back instead of retrained."""
    from pixelrnn_jax.train import TrainConfig, train_sweep
    config = TrainConfig(model=cfg, dataset=dataset, data_dir=data_dir,
                         batch_size=batch_size, num_epochs=num_epochs, seed=data_seed,
                         learning_rate=float(learning_rates[0]), export_weights=False,
                         encoder_lr_scale=encoder_lr_scale, shift_fraction=shift_fraction,
                         plateau_patience=plateau_patience)
    spec = {"config": config.to_dict(), "seeds": [int(s) for s in seeds],
            "learning_rates": [float(lr) for lr in learning_rates]}
    spec = json.loads(json.dumps(spec, default=str))
    run_dir = Path(run_dir)
    done, spec_path = run_dir / "sweep.json", run_dir / "spec.json"
    if done.exists() and spec_path.exists() and json.loads(spec_path.read_text()) == spec:
        return json.loads(done.read_text())
    data = load_data(dataset, data_dir, data_seed, cfg)
    t0 = time.perf_counter()
    out = train_sweep(config, spec["seeds"], spec["learning_rates"], run_dir, dataset=data)
    out["seconds"] = time.perf_counter() - t0
    done.write_text(json.dumps(out, indent=1))
    spec_path.write_text(json.dumps(spec, indent=1))
    return out


def parse_numbers(values, kind, name):
    try:
        out = [kind(v) for v in values]
    except ValueError:
        cli.fail(f"--{name}={','.join(values)}: expected a comma-separated list of numbers")
    if not out:
        cli.fail(f"--{name} is empty; give at least one value")
    return out


def selected(rows):
    keys = {k for k, _, _ in rows}
    unknown = sorted(set(F.models) - keys)
    if unknown:
        cli.fail(f"--models: unknown {unknown}; choose from {sorted(keys)}")
    bad = sorted(set(F.precisions) - set(PRECISIONS))
    if bad:
        cli.fail(f"--precisions: unknown {bad}; choose from {list(PRECISIONS)}")
    jobs = []
    for key, label, cfg in rows:
        if F.models and key not in F.models:
            continue
        if cfg.cnn_layers and str(cfg.cnn_layers) not in F.cnn_layers:
            continue
        for prec in row_precisions(cfg):
            if prec in F.precisions:
                jobs.append((key, prec, cfg.replace(precision=prec, delta=F.delta, m=F.m)))
    if not jobs:
        cli.fail(f"nothing to train for --models={F.models} --cnn_layers={F.cnn_layers} "
                 f"--precisions={F.precisions}")
    return jobs


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; all options are --flags")
    rows = table_rows()
    settings = {"dataset": F.dataset, "accounting_only": F.accounting_only}
    if F.accounting_only:
        records = [build_row(k, label, cfg) for k, label, cfg in rows]
        path = write_results(F.workdir, records, settings, figure=False)
        print(markdown(records))
        print(f"wrote {path}")
        return
    cli.setup_logging()
    from pixelrnn_jax.train import TrainingError
    seeds = parse_numbers(F.seeds, int, "seeds")
    lrs = parse_numbers(F.learning_rates, float, "learning_rates")
    settings.update(seeds=seeds, learning_rates=lrs, num_epochs=F.num_epochs,
                    batch_size=F.batch_size, data_seed=F.data_seed, delta=F.delta, m=F.m,
                    **training_settings())
    jobs = selected(rows)
    sweeps: dict = {}
    t0 = time.perf_counter()
    for key, prec, cfg in jobs:
        try:
            out = run_sweep(cfg, Path(F.workdir) / f"{key}_{prec}", dataset=F.dataset,
                            data_dir=F.data_dir, seeds=seeds, learning_rates=lrs,
                            num_epochs=F.num_epochs, batch_size=F.batch_size,
                            data_seed=F.data_seed, **training_settings())
        except (ValueError, FileNotFoundError, NotADirectoryError, TrainingError) as e:
            cli.fail(f"{key} {prec}: {e}")
        sweeps.setdefault(key, {})[prec] = out
        print(f"{key} {prec}: test accuracy mean {out['test_accuracy_mean']:.4f} "
              f"best {out['test_accuracy_best']:.4f} ({len(out['members'])} members)",
              flush=True)
    settings["seconds"] = time.perf_counter() - t0
    records = [build_row(k, label, cfg, sweeps.get(k)) for k, label, cfg in rows]
    path = write_results(F.workdir, records, settings, title=F.dataset)
    print(markdown(records))
    print(f"wrote {path} and {Path(F.workdir) / 'accuracy_vs_memory.png'}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
