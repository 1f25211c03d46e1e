"""Host-side input pipeline throughput (videos/s), printed as JSON.

    python benchmarks/data_pipeline.py                       # built-in synthetic_gesture
    python benchmarks/data_pipeline.py --dataset=cambridge_hand_gesture --data_dir=/data/cam

Measures `batches` alone and behind `prefetch` (training: shuffling, random temporal
offset, random spatial shift, normalisation; evaluation: end-aligned clips). Compare the
training figure with the training loop's own videos/s: the pipeline keeps the accelerator
busy when it is the larger of the two.
"""
import json
import os
import time

from absl import app, flags

from pixelrnn_jax import data

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "synthetic_gesture", "one of " + ", ".join(data.VIDEO_DATASETS))
flags.DEFINE_string("data_dir", None, "raw dataset folder (real datasets)")
flags.DEFINE_string("cache_dir", None, "where prepared datasets live")
flags.DEFINE_integer("batch_size", 32, "videos per batch")
flags.DEFINE_integer("num_batches", 40, "batches timed per measurement")
flags.DEFINE_bool("raw", False, "256x256 frames (RAW camera baseline)")


def main(argv):
    del argv
    start = time.perf_counter()
    splits = data.load_dataset(FLAGS.dataset, FLAGS.data_dir, raw=FLAGS.raw,
                               cache_dir=FLAGS.cache_dir)
    prepare_s = time.perf_counter() - start
    results = {"dataset": FLAGS.dataset, "frame_size": splits.frame_size,
               "cpu_count": os.cpu_count(), "load_seconds": round(prepare_s, 2),
               "batch_size": FLAGS.batch_size}
    for key, split, train, pre in (("train", splits.train, True, False),
                                   ("train_prefetch", splits.train, True, True),
                                   ("eval", splits.test, False, False)):
        stats = data.measure_throughput(split, FLAGS.batch_size, train=train,
                                        num_batches_=FLAGS.num_batches, use_prefetch=pre)
        results[f"{key}_videos_per_s"] = round(stats["videos_per_s"], 1)
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
