"""Does the built-in dataset need time? A frame-only classifier against binary PixelRNN.

    python benchmarks/frame_only.py --num_epochs=100 --workdir=runs/frame_only

Trains, with the same settings, (a) binary 1-CNN + PixelRNN on 16-frame clips and (b) the
same encoder on single frames (K = 1: the readout is w_o * CNN(x) + u_o * 1 of one random
frame of each clip, no recurrence), and prints one JSON line with both test accuracies.

Measured on the built-in dataset with gesture.flags' settings (100 epochs): frame-only test
accuracy 0.811 (`--models=frame_only`), against 0.989 for PixelRNN from the Quickstart run.
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.training import TrainConfig, train_and_evaluate

F = flags.FLAGS
flags.DEFINE_integer("num_epochs", 100, "Epochs for each model.")
flags.DEFINE_float("learning_rate", 0.01, "Decoder learning rate.")
flags.DEFINE_float("encoder_lr_scale", 0.5, "Encoder / decoder learning rate.")
flags.DEFINE_float("m", 0.5, "Surrogate steepness.")
flags.DEFINE_string("workdir", "runs/frame_only", "Where the two runs go.")
flags.DEFINE_list("models", ["pixelrnn", "frame_only"], "Which of the two to train.")
flags.DEFINE_float("shift_fraction", 0.05, "Random spatial shift in training.")
flags.DEFINE_integer("plateau_patience", 8, "Epochs without improvement before lr decay.")


def main(argv):
    out = {}
    for name, frames, k in (("pixelrnn", 16, 16), ("frame_only", 1, 1)):
        if name not in F.models:
            continue
        cfg = TrainConfig(model=ModelConfig(m=F.m, K=k), num_frames=frames,
                          num_epochs=F.num_epochs, learning_rate=F.learning_rate,
                          encoder_lr_scale=F.encoder_lr_scale, export_weights=False,
                          shift_fraction=F.shift_fraction,
                          plateau_patience=F.plateau_patience)
        res = train_and_evaluate(cfg, Path(F.workdir) / name)
        out[f"{name}_test_accuracy"] = res["test_accuracy"]
    print(json.dumps(out))


if __name__ == "__main__":
    cli.run(main)
