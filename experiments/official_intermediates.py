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

from absl import flags

from pixelrnn_jax import cli
from pixelrnn_jax.sensor import authors_model

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "the authors' weight text file (e.g. lip_iw10.txt)")
flags.DEFINE_string("inputs", None, ".npz with `binarized` (N, T, 64, 64) bool")
flags.DEFINE_string("out", None, "output .npz")
flags.DEFINE_integer("K", 16, "frames between hidden-state resets")


def main(argv):
    for name in ("weights", "inputs", "out"):
        if not getattr(FLAGS, name):
            cli.fail(f"--{name} is required")
    result = authors_model.write_intermediates(FLAGS.weights, FLAGS.inputs, FLAGS.out,
                                               FLAGS.K)
    print(f"wrote {FLAGS.out}: " + ", ".join(f"{k} {v.dtype} {v.shape}" for k, v in result.items()))


if __name__ == "__main__":
    cli.run(main)
