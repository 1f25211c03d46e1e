"""Paper Fig. 3: accuracy against readout bandwidth, controlled by max-pooling the intensity
frames before PixelRNN (`pixelrnn_jax.paper.fig3`).

    python experiments/bandwidth.py --workdir=runs/bandwidth                 # built-in data
    python experiments/bandwidth.py --dataset=tulips1 --data_dir=DIR \\
        --seeds=0,1,2,3,4,5,6,7,8,9 --num_epochs=30 --workdir=runs/bandwidth_lip
    python experiments/bandwidth.py --windows=1,2,4,8 --cnn_layers=1

All seeds and learning rates of one window train together (`train_sweep`, jax.vmap). The
paper plots the best of ten runs per window; results.json has the best and the mean. Every
training field of `TrainConfig` is a flag (--helpfull). Writes W/results.json, W/results.md,
W/accuracy_vs_bandwidth.png and W/window_<w>/ (a rerun reuses finished windows). The
README's curve (--windows=1,2,4,8,16,32,64 --num_epochs=20, one seed, the Quickstart's
settings) took 194 s on the 2-core CPU.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli, plots
from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.paper import fig3, runs
from pixelrnn_jax.training import TrainConfig

F = flags.FLAGS
flags.DEFINE_string("workdir", "runs/bandwidth", "Output folder.")
flags.DEFINE_list("windows", [str(w) for w in fig3.WINDOWS], "Max-pool windows to train.")
flags.DEFINE_integer("cnn_layers", 0, "In-pixel CNN layers before PixelRNN where the "
                     "pooled plane allows (side a multiple of 4), else 0.")
flags.DEFINE_enum("precision", "1bit", ["1bit", "32bit"], "Precision of the encoder.")
flags.DEFINE_float("m", ModelConfig.m, "Surrogate steepness of the binary quantizers.")
flags.DEFINE_list("seeds", ["0"], "Seeds; trained together with the learning rates.")
flags.DEFINE_list("learning_rates", ["1e-2"], "Initial Adam learning rates.")
cli.define_config_flags(TrainConfig, exclude=[f for f in ModelConfig.__dataclass_fields__])


def main(argv):
    seeds, lrs = [int(s) for s in F.seeds], [float(v) for v in F.learning_rates]
    configs = [(int(w), fig3.window_config(int(w), F.cnn_layers, F.precision, m=F.m))
               for w in F.windows]
    base = cli.config_from_flags(TrainConfig, export_weights=False, learning_rate=lrs[0])
    wd = Path(F.workdir)
    records = []
    t0 = time.perf_counter()
    for w, cfg in configs:
        with cli.user_errors(f"window {w}: "):
            out = runs.run_sweep(base.replace(model=cfg), wd / f"window_{w}", seeds, lrs)
        rec = fig3.build_record(w, cfg, out)
        records.append(rec)
        print(f"window {w}x{w}: readout {rec['readout_values_per_16_frames']}, test accuracy "
              f"mean {out['test_accuracy_mean']:.4f} best {out['test_accuracy_best']:.4f}",
              flush=True)
    settings = {"seeds": seeds, "learning_rates": lrs, "cnn_layers": F.cnn_layers,
                "precision": F.precision, "m": F.m, "training": base.to_dict(),
                "seconds": time.perf_counter() - t0}
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "results.json").write_text(json.dumps({"settings": settings, "records": records},
                                                indent=1))
    (wd / "results.md").write_text(fig3.markdown(records))
    plots.accuracy_vs_bandwidth(records, wd / "accuracy_vs_bandwidth.png", title=F.dataset)
    print(fig3.markdown(records))
    print(f"wrote {wd / 'results.json'} and {wd / 'accuracy_vs_bandwidth.png'}")


if __name__ == "__main__":
    cli.run(main)
