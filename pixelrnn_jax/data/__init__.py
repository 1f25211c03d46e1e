"""Data: the built-in synthetic gesture videos, the real datasets read from the user's copy
(Cambridge Hand Gesture, Tulips1, MNIST, CIFAR-10) through tensorflow-datasets builders
(array_record, no TensorFlow needed), the paper's preprocessing, and the batch pipeline.

    splits = pixelrnn_jax.data.load_dataset("synthetic_gesture", seed=0)
    for batch in pixelrnn_jax.data.prefetch(
            pixelrnn_jax.data.batches(splits.train, 32, train=True, seed=0, epoch=0)):
        batch["video"]  # float32 (b, 16, 64, 64) normalised intensities; sign = binary input
        batch["label"]  # int32 (b,)
"""
from pixelrnn_jax.data.datasets import (
                                        IMAGE_DATASETS,
                                        VIDEO_DATASETS,
                                        DatasetSplits,
                                        ImageSplits,
                                        default_cache_dir,
                                        load_dataset,
                                        load_images,
                                        speaker_split,
                                        stratified_split,
)
from pixelrnn_jax.data.layouts import LayoutError
from pixelrnn_jax.data.pipeline import Split, batches, measure_throughput, num_batches, prefetch
from pixelrnn_jax.data.preprocess import (
                                        clip_indices,
                                        normalize_frames,
                                        random_clip_indices,
                                        shift_frames,
)

__all__ = [
    "load_dataset", "load_images", "batches", "prefetch", "num_batches", "measure_throughput",
    "normalize_frames", "clip_indices", "random_clip_indices", "shift_frames",
    "stratified_split", "speaker_split", "default_cache_dir",
    "DatasetSplits", "ImageSplits", "Split", "LayoutError", "VIDEO_DATASETS", "IMAGE_DATASETS",
]
