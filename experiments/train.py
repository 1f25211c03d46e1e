"""Trains an in-pixel encoder + off-sensor decoder end to end.

    python experiments/train.py --flagfile=experiments/gesture.flags
    python experiments/train.py --dataset=cambridge_hand_gesture --data_dir=DIR --workdir=W

Writes W/results.json, W/metrics.jsonl, W/training_curves.png, W/checkpoints/ (rerun with
the same --workdir to resume) and W/sensor_weights/ (the binary weights the sensor loads).
"""
from __future__ import annotations

import json
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
flags.DEFINE_string("workdir", "runs/default", "Where checkpoints and results go.")
flags.DEFINE_integer("cnn_layers", 1, "In-pixel CNN layers (0, 1 or 2).")
flags.DEFINE_string("cell", "pixelrnn", "Recurrent cell or camera baseline.")
flags.DEFINE_enum("precision", "1bit", ["1bit", "32bit"], "Weights and features.")
flags.DEFINE_float("m", 2.0, "Surrogate gradient steepness (tanh(m x)).")
flags.DEFINE_float("noise_input", 0.0, "Noise std before the input binarization.")
flags.DEFINE_float("noise_cnn", 0.0, "Noise std before the CNN threshold.")
flags.DEFINE_float("noise_gate", 0.0, "Noise std before the recurrent gate quantizers.")
flags.DEFINE_float("noise_out", 0.0, "Noise std on the readout o_t.")
flags.DEFINE_integer("K", 16, "Frames between readouts (hidden state reset).")
flags.DEFINE_integer("num_frames", 16, "Frames per clip.")
flags.DEFINE_integer("frame_size", 64, "Side of the frames the encoder sees.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_integer("per_device_batch_size", 0, "If > 0, batch per device (overrides).")
flags.DEFINE_integer("num_epochs", 30, "Epochs.")
flags.DEFINE_float("learning_rate", 1e-2, "Initial Adam learning rate.")
flags.DEFINE_float("encoder_lr_scale", 0.1, "Encoder learning rate / decoder learning rate.")
flags.DEFINE_float("shift_fraction", 0.1, "Random spatial shift in training (fraction).")
flags.DEFINE_integer("plateau_patience", 4, "Epochs without improvement before lr decay.")
flags.DEFINE_integer("seed", 0, "Seed of initialization, data order and noise.")
flags.DEFINE_integer("max_videos", 0, "If > 0, train and evaluate on a class-balanced subset "
                     "of about this many videos (smoke tests).")
flags.DEFINE_string("init_from", None, "Workdir of a finished run of the same model: start "
                    "from its best parameters (e.g. noise-aware fine-tuning).")


def config_from_flags():
    from pixelrnn_jax import ModelConfig
    from pixelrnn_jax.train import TrainConfig
    model = ModelConfig(cnn_layers=F.cnn_layers, cell=F.cell, precision=F.precision, m=F.m,
                        K=F.K, frame_size=F.frame_size, noise_input=F.noise_input,
                        noise_cnn=F.noise_cnn, noise_gate=F.noise_gate, noise_out=F.noise_out)
    return TrainConfig(model=model, dataset=F.dataset, data_dir=F.data_dir,
                       batch_size=F.batch_size, per_device_batch_size=F.per_device_batch_size,
                       num_epochs=F.num_epochs, learning_rate=F.learning_rate, seed=F.seed,
                       encoder_lr_scale=F.encoder_lr_scale,
                       num_frames=F.num_frames, shift_fraction=F.shift_fraction,
                       plateau_patience=F.plateau_patience, max_videos=F.max_videos,
                       init_from=F.init_from)


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; all options are --flags")
    cli.setup_logging()
    from pixelrnn_jax.train import TrainingError, train_and_evaluate
    try:
        config = config_from_flags()
        results = train_and_evaluate(config, F.workdir)
    except (ValueError, FileNotFoundError, NotADirectoryError, TrainingError) as e:
        cli.fail(str(e))
    wd = Path(F.workdir).absolute()
    print(json.dumps({k: results[k] for k in ("test_accuracy", "val_accuracy",
                                              "train_accuracy", "epochs",
                                              "train_videos_per_s")}))
    print(f"results: {wd / 'results.json'}\ncheckpoints: {wd / 'checkpoints'}\n"
          f"sensor weights: {wd / 'sensor_weights'}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
