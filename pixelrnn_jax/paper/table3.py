"""Paper Table 3's protocol on the simulated SCAMP-5: how much accuracy a model keeps on the
sensor.

For a trained run: the training set goes through the simulated sensor twice (different
noise draws), the off-sensor linear decoder is fine-tuned on the first pass's readouts, and
the table reports train accuracy on pass 1 and pass 2 and test accuracy (the test videos
through the sensor once more), beside the run's own test accuracy in simulation. Any sensor
program runs through the one interface, `scamp5.simulate(..., program=...)`.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from pixelrnn_jax import data
from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.sensor import readout_decoder, scamp5
from pixelrnn_jax.training import load_trained

__all__ = ["sensor_readouts", "evaluate_run", "markdown"]


def sensor_readouts(variables, config: ModelConfig, split, batch_size: int, key,
                    program: str = "ideal", noise=None) -> np.ndarray:
    """The last readout (n 64 64) of every video of `split` through the sensor program."""
    scamp5.check_fits(config, program)
    out = []
    for i, batch in enumerate(data.batches(split, batch_size, train=False, seed=0, epoch=0,
                                           num_frames=config.K)):
        r = scamp5.simulate(variables, np.asarray(batch["video"], np.float32), config,
                            program=program, noise=noise, rng=jax.random.fold_in(key, i))
        out.append(np.asarray(r)[:, -1])
    return np.concatenate(out)


def evaluate_run(run_dir, batch_size: int, weight_decay: float, seed: int,
                 program: str = "ideal", noise=None) -> dict:
    """Table 3's row of the finished training run in `run_dir`."""
    config, variables = load_trained(run_dir)
    cfg = config.model
    ds = data.load_dataset(config.dataset, config.data_dir, seed=config.seed,
                           frame_size=cfg.frame_size)
    key = jax.random.key(seed)
    run1, run2, test = (sensor_readouts(variables, cfg, split, batch_size,
                                        jax.random.fold_in(key, i), program, noise)
                        for i, split in ((1, ds.train), (2, ds.train), (3, ds.test)))
    dec = readout_decoder.fit_decoder(run1, ds.train.labels, 0, weight_decay,
                                      readout_decoder.DecoderConfig(), ds.num_classes)
    acc = lambda x, y: float((dec.predict(x) == y).mean())  # noqa: E731
    return {"train_accuracy_run1": acc(run1, ds.train.labels),
            "train_accuracy_run2": acc(run2, ds.train.labels),
            "test_accuracy": acc(test, ds.test.labels),
            "simulation_test_accuracy": json.loads(
                (Path(run_dir) / "results.json").read_text())["test_accuracy"],
            "training_noise": cfg.noise, "sensor_mode": program,
            "dataset": config.dataset, "run": str(run_dir)}


def markdown(rows) -> str:
    lines = ["| model | train acc. run 1 | train acc. run 2 | test acc. (sensor) | "
             "test acc. (simulation) |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {100 * r['train_accuracy_run1']:.1f}% | "
              f"{100 * r['train_accuracy_run2']:.1f}% | {100 * r['test_accuracy']:.1f}% | "
              f"{100 * r['simulation_test_accuracy']:.1f}% |" for r in rows]
    return "\n".join(lines) + "\n"
