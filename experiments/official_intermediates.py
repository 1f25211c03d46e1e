"""Per-step activations of the authors' binary PixelRNN on binarized input frames.

    python experiments/official_intermediates.py \
        --weights=../shared/data/official_weights/lip_iw10.txt \
        --inputs=../shared/data/tulips_reference_sample.npz --out=/tmp/tulips_steps.npz

--inputs holds `binarized` (N, T, 64, 64) bool; --out receives `cnn_out`, `hidden` (h_{t-1}
entering step t), `forget` (bool, True = +1) and `o` (float32, o_t at every step), computed
without noise, in the layout of the reference samples (plus `labels` / `names` when the
inputs have them). With lip_iw10.txt on tulips_reference_sample.npz every bit of cnn_out,
hidden and forget matches the reference, and o matches its rows 64:128 of `ft_ot`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from pixelrnn_jax import official
from pixelrnn_jax.config import ModelConfig

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "the authors' weight text file (e.g. lip_iw10.txt)")
flags.DEFINE_string("inputs", None, ".npz with `binarized` (N, T, 64, 64) bool")
flags.DEFINE_string("out", None, "output .npz")
flags.DEFINE_integer("K", 16, "frames between hidden-state resets")


def run(weights_path: str, inputs_path: str, out_path: str, K: int = 16) -> dict:
    weights = official.load_weights_text(weights_path)
    path = Path(inputs_path)
    if not path.is_file():
        raise FileNotFoundError(f"inputs not found: {path}")
    with np.load(path) as data:
        if "binarized" not in data.files:
            raise ValueError(f"{path} has no array 'binarized' (found {data.files}); expected "
                             f"(N, T, 64, 64) bool frames")
        binarized = data["binarized"]
        extras = {k: data[k] for k in ("labels", "names") if k in data.files}
    config = ModelConfig(cnn_layers=weights.cnn_layers, K=K,
                         num_classes=max(2, 0 if weights.fc_bias is None else len(weights.fc_bias)))
    steps = official.intermediates(official.to_variables(weights, config), binarized, config)
    result = {"cnn_out": steps["cnn_out"], "hidden": steps["hidden"],
              "forget": steps["forget"], "o": steps["o"].astype(np.float32), **extras}
    np.savez_compressed(out_path, **result)
    return result


def main(argv):
    del argv
    for name in ("weights", "inputs", "out"):
        if not getattr(FLAGS, name):
            sys.exit(f"error: --{name} is required")
    try:
        result = run(FLAGS.weights, FLAGS.inputs, FLAGS.out, FLAGS.K)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {FLAGS.out}: " + ", ".join(f"{k} {v.dtype} {v.shape}" for k, v in result.items()))


if __name__ == "__main__":
    app.run(main)
