"""Trains an in-pixel encoder + off-sensor decoder end to end.

    python experiments/train.py --flagfile=gesture.flags
    python experiments/train.py --dataset=cambridge_hand_gesture --data_dir=DIR --workdir=W
    python experiments/train.py --flagfile=gesture.flags --distributed     # TPU pod, SLURM
    python experiments/train.py ... --coordinator_address=HOST0:1234 --num_processes=2 \
        --process_id=0                                                  # (1 on the other)

Every field of `ModelConfig`, `TrainConfig` and `DistributedConfig` is a flag (`--helpfull`
lists them). Writes W/results.json, W/metrics.jsonl, W/training_curves.png, W/checkpoints/
(rerun with the same --workdir to resume, with any number of processes) and
W/sensor_weights/ (the binary weights the sensor loads); in a distributed run every process
writes the checkpoints and process 0 the rest.
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.training import DistributedConfig, TrainConfig, train_and_evaluate

flags.DEFINE_string("workdir", "runs/default", "Where checkpoints and results go.")
cli.define_config_flags(TrainConfig)
cli.define_config_flags(DistributedConfig)
F = flags.FLAGS


def main(argv):
    cli.start_distributed(cli.config_from_flags(DistributedConfig))
    results = train_and_evaluate(cli.config_from_flags(TrainConfig), F.workdir)
    wd = Path(F.workdir).absolute()
    print(json.dumps({k: results[k] for k in ("test_accuracy", "val_accuracy",
                                              "train_accuracy", "epochs",
                                              "train_videos_per_s")}))
    print(f"results: {wd / 'results.json'}\ncheckpoints: {wd / 'checkpoints'}\n"
          f"sensor weights: {wd / 'sensor_weights'}")


if __name__ == "__main__":
    cli.run(main)
