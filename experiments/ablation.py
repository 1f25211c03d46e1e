"""Supplement Table S4 and Fig. S1 (paper Fig. 2): every encoder of the architecture
comparison, trained, next to its on-sensor parameters, feature memory and readout.

    python experiments/ablation.py --accounting_only --workdir=runs/table_s4   # seconds
    python experiments/ablation.py --workdir=runs/ablation                      # built-in data
    python experiments/ablation.py --dataset=cambridge_hand_gesture --data_dir=DIR \\
        --seeds=0,1,2,3,4,5,6,7,8,9 --learning_rates=1e-2,3e-3 --num_epochs=30 \\
        --workdir=runs/ablation_gesture
    python experiments/ablation.py --models=1cnn_pixelrnn,1cnn_gru --precisions=1bit

Table S4's 17 rows x {1 bit, 32 bit} (`pixelrnn_jax.paper.table_s4`), each (row, precision)
one vmapped sweep over --seeds x --learning_rates (`train_sweep`; each member keeps its
best-validation epoch; the row reports the mean and the best test accuracy). Every training
field of `TrainConfig` is a flag (--helpfull); --m and --delta go to every model. Writes
results.json, results.md, accuracy_vs_memory.png (Fig. S1, SCAMP-5's 32 bytes-per-pixel
limit dashed) and <model>_<precision>/ (a rerun reuses finished sweeps and resumes
unfinished ones). --accounting_only writes the size columns without training.

Measured (near idle, 1 seed, 80 epochs of batch 32, the README's comparison):
1cnn_pixelrnn 548 s, 1cnn_gru 1,591 s, 1cnn_lstm 1,424 s, each camera 31-44 s.
"""
from __future__ import annotations

import time
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.core import PRECISIONS, ModelConfig
from pixelrnn_jax.paper import runs, table_s4
from pixelrnn_jax.training import TrainConfig

F = flags.FLAGS
flags.DEFINE_string("workdir", "runs/ablation", "Output folder.")
flags.DEFINE_list("models", [], "Row keys to train (default: all 17), e.g. 1cnn_pixelrnn.")
flags.DEFINE_list("cnn_layers", ["1", "2"], "CNN depths of the RNN rows to train.")
flags.DEFINE_list("precisions", list(PRECISIONS), "Precisions to train.")
flags.DEFINE_list("seeds", ["0"], "Seeds; trained together with the learning rates.")
flags.DEFINE_list("learning_rates", ["1e-2"], "Initial Adam learning rates.")
flags.DEFINE_bool("accounting_only", False,
                  "Write the table's parameter, memory and readout columns only.")
flags.DEFINE_float("m", ModelConfig.m, "Surrogate steepness of every model's quantizers.")
flags.DEFINE_float("delta", ModelConfig.delta, "Threshold of the difference / event cameras.")
cli.define_config_flags(TrainConfig, exclude=[f for f in ModelConfig.__dataclass_fields__])


def main(argv):
    rows = table_s4.table_rows()
    settings = {"dataset": F.dataset, "accounting_only": F.accounting_only}
    if F.accounting_only:
        records = [table_s4.build_row(k, label, cfg) for k, label, cfg in rows]
        path = table_s4.write_results(F.workdir, records, settings, figure=False)
        print(table_s4.markdown(records))
        print(f"wrote {path}")
        return
    seeds, lrs = [int(s) for s in F.seeds], [float(v) for v in F.learning_rates]
    jobs = table_s4.select_jobs(F.models, [int(c) for c in F.cnn_layers], F.precisions,
                                m=F.m, delta=F.delta)
    base = cli.config_from_flags(TrainConfig, export_weights=False, learning_rate=lrs[0])
    settings.update(seeds=seeds, learning_rates=lrs, m=F.m, delta=F.delta,
                    training=base.to_dict())
    sweeps: dict = {}
    t0 = time.perf_counter()
    for key, prec, cfg in jobs:
        with cli.user_errors(f"{key} {prec}: "):
            out = runs.run_sweep(base.replace(model=cfg), Path(F.workdir) / f"{key}_{prec}",
                                 seeds, lrs)
        sweeps.setdefault(key, {})[prec] = out
        print(f"{key} {prec}: test accuracy mean {out['test_accuracy_mean']:.4f} "
              f"best {out['test_accuracy_best']:.4f} ({len(out['members'])} members)",
              flush=True)
    settings["seconds"] = time.perf_counter() - t0
    records = [table_s4.build_row(k, label, cfg, sweeps.get(k)) for k, label, cfg in rows]
    path = table_s4.write_results(F.workdir, records, settings, title=F.dataset)
    print(table_s4.markdown(records))
    print(f"wrote {path} and {Path(F.workdir) / 'accuracy_vs_memory.png'}")


if __name__ == "__main__":
    cli.run(main)
