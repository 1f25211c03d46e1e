"""tensorflow-datasets builders, written as array_record and read with as_data_source(), so
TensorFlow is never needed (uint8 Tensor, ClassLabel and Text features only).

  synthetic_gesture        the procedural gesture videos of `synthetic` (built from a seed)
  synthetic_motion         motion-only gestures of `synthetic_tasks` (no class in one frame)
  synthetic_lips           lip-reading-like words of `synthetic_tasks` (rhythm only)
  cambridge_hand_gesture   Cambridge Hand Gesture videos from the user's folder (manual_dir)
  tulips1                  Tulips1 utterances from the user's folder (manual_dir)
  mnist_idx, cifar10_pickle  MNIST / CIFAR-10 images from their distributed files

Videos are stored as `video` uint8 (t, S, S) frames in the representation of `preprocess`
(ImageNet-weighted gray, bilinear-resized to S x S); the config `gray64` (S = 64) serves
the in-pixel models and `gray256` the RAW camera baseline. All examples go to one split,
`train`; the 80:10:10 split is made when loading (`datasets.load_dataset`), from a seed.
"""
from __future__ import annotations

import dataclasses
import inspect
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from pixelrnn_jax.data import images, layouts, preprocess, synthetic, synthetic_tasks

__all__ = ["VideoConfig", "video_config", "CambridgeHandGesture", "Tulips1", "SyntheticGesture",
           "SyntheticMotion", "SyntheticLips", "MnistIdx", "Cifar10Pickle", "VIDEO_BUILDERS",
           "IMAGE_BUILDERS", "is_built_in"]

_THREADS = 2  # JPEG decoding and resizing release the GIL


@dataclasses.dataclass
class VideoConfig(tfds.core.BuilderConfig):
    frame_size: int = 64


def video_config(frame_size: int) -> VideoConfig | str:
    """The builder config for frames of this size (by name when it is a built-in one)."""
    if frame_size in (64, 256):
        return f"gray{frame_size}"
    return _new_config(frame_size)


def _new_config(frame_size: int) -> VideoConfig:
    return VideoConfig(name=f"gray{frame_size}", frame_size=frame_size,
                       description=f"ImageNet-weighted gray frames, bilinear-resized to "
                                   f"{frame_size}x{frame_size}, uint8")


class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """tfds 4.9's default `code_path` needs the `importlib_resources` backport even on
    Python >= 3.9; this module's own file is the builder's code path."""

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(inspect.getfile(cls))


class _VideoBuilder(_Builder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [_new_config(64), _new_config(256)]
    CLASS_NAMES: tuple = ()
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""
    EXTRA_FEATURES: dict = {}

    def _info(self):
        s = self.builder_config.frame_size
        features = {"video": tfds.features.Tensor(shape=(None, s, s), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
                    "name": tfds.features.Text(),
                    **{k: tfds.features.Text() for k in self.EXTRA_FEATURES}}
        return tfds.core.DatasetInfo(builder=self, description=self.DESCRIPTION,
                                     features=tfds.features.FeaturesDict(features),
                                     homepage=self.HOMEPAGE, citation=self.CITATION)


class _ManualVideoBuilder(_VideoBuilder, skip_registration=True):
    SCAN = None

    def _split_generators(self, dl_manager):
        videos = type(self).SCAN(dl_manager.manual_dir)
        return {"train": self._generate_examples(videos)}

    def _generate_examples(self, videos):
        size = self.builder_config.frame_size

        def read(v):
            return np.stack([preprocess.read_frame(f, size) for f in v.frames]), _resolution(v)

        first = None  # (resolution, video) of the first video: every video must match it
        with ThreadPoolExecutor(_THREADS) as pool:
            for lo in range(0, len(videos), 8):  # bounded look-ahead keeps memory flat
                chunk = videos[lo:lo + 8]
                for v, (frames, res) in zip(chunk, pool.map(read, chunk)):
                    if first is None:
                        first = (res, v)
                    elif res != first[0]:
                        raise ValueError(
                            f"video {v.name} has frames of resolution {res[0]}x{res[1]} but "
                            f"video {first[1].name} has {first[0][0]}x{first[0][1]}; a dataset "
                            f"copy must keep one resolution: replace the odd video")
                    example = {"video": frames, "label": v.label, "name": v.name}
                    if "speaker" in self.EXTRA_FEATURES:
                        example["speaker"] = v.speaker
                    yield v.name, example


def _resolution(v) -> tuple[int, int]:
    """(width, height) shared by all frames of a video; a video mixing sizes is rejected."""
    sizes = {}
    for f in v.frames:
        with Image.open(f) as im:
            sizes.setdefault(im.size, f)
    if len(sizes) > 1:
        (a, fa), (b, fb) = list(sizes.items())[:2]
        folder = v.frames[0].parent
        raise ValueError(f"video folder {folder} ({v.name}) mixes frame sizes {a[0]}x{a[1]} "
                         f"({fa.name}) and {b[0]}x{b[1]} ({fb.name}); keep one resolution "
                         f"per video")
    return next(iter(sizes))


class CambridgeHandGesture(_ManualVideoBuilder):
    """Cambridge Hand Gesture Data set: 900 videos, 9 classes (3 shapes x 3 motions), 5
    illumination sets. Names `Set{s}_{c}_{nnnn}`, class c = label + 1."""

    name = "cambridge_hand_gesture"
    CLASS_NAMES = layouts.CAMBRIDGE_CLASSES
    MANUAL_DOWNLOAD_INSTRUCTIONS = layouts.CAMBRIDGE_INSTRUCTIONS
    SCAN = staticmethod(layouts.scan_cambridge)
    DESCRIPTION = "Cambridge Hand Gesture Data set (Kim & Cipolla), 900 videos, 9 classes."
    HOMEPAGE = "https://labicvl.github.io/ges_db.htm"
    CITATION = ("T.-K. Kim and R. Cipolla. Canonical correlation analysis of video volume "
                "tensors for action categorization and detection. IEEE TPAMI 31(8), 2009.")


class Tulips1(_ManualVideoBuilder):
    """Tulips1: 12 speakers x digits one..four x 2 repetitions = 96 utterances.
    Names `<digit>/<Speaker><rep>`; the speaker is kept for speaker-disjoint splits."""

    name = "tulips1"
    CLASS_NAMES = layouts.TULIPS_CLASSES
    MANUAL_DOWNLOAD_INSTRUCTIONS = layouts.TULIPS_INSTRUCTIONS
    SCAN = staticmethod(layouts.scan_tulips)
    EXTRA_FEATURES = {"speaker": True}
    DESCRIPTION = "Tulips1 lip-reading utterances (Movellan 1995), 96 videos, 4 classes."
    CITATION = ("J. R. Movellan. Visual speech recognition with stochastic networks. "
                "NIPS 7, 1995.")


class SyntheticGesture(_VideoBuilder):
    """Procedural gestures (3 shapes x 3 motions), generated from scene seed 0; see
    `pixelrnn_jax.data.synthetic` for what varies and why one frame says little of the motion."""

    name = "synthetic_gesture"
    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"2.0.0": "Motions hold / swing / nod around the centre of the view."}
    CLASS_NAMES = synthetic.CLASS_NAMES
    DESCRIPTION = (f"Synthetic hand gestures: {synthetic.NUM_VIDEOS} videos of "
                   f"{synthetic.NUM_FRAMES} frames, 9 classes (3 hand shapes x hold, swing, "
                   f"nod).")
    SCENE_SEED = 0
    NUM_VIDEOS = synthetic.NUM_VIDEOS

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        size = self.builder_config.frame_size
        scenes = synthetic.sample_scenes(self.SCENE_SEED, self.NUM_VIDEOS)
        chunks = np.array_split(np.arange(len(scenes)), max(1, len(scenes) // 20))
        with ThreadPoolExecutor(_THREADS) as pool:
            for lo in range(0, len(chunks), _THREADS):
                parts = chunks[lo:lo + _THREADS]
                rendered = pool.map(lambda idx: synthetic.render(scenes.take(idx), size), parts)
                for idx, videos in zip(parts, rendered):
                    for i, video in zip(idx, videos):
                        label = int(scenes.label[i])
                        name = f"{synthetic.CLASS_NAMES[label].replace('/', '_')}_{i:04d}"
                        yield name, {"video": video, "label": label, "name": name}


class _TaskBuilder(_VideoBuilder, skip_registration=True):
    """A task of `synthetic_tasks`, generated from scene seed 0."""

    TASK = ""
    SCENE_SEED = 0

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        task = synthetic_tasks.TASKS[self.TASK]
        videos, labels = synthetic_tasks.render_task(self.TASK, self.SCENE_SEED,
                                                     self.builder_config.frame_size)
        for i, (video, label) in enumerate(zip(videos, labels)):
            name = f"{task.class_names[label]}_{i:04d}"
            yield name, {"video": video, "label": int(label), "name": name}


class SyntheticMotion(_TaskBuilder):
    name = "synthetic_motion"
    TASK = "motion"
    CLASS_NAMES = synthetic_tasks.TASKS["motion"].class_names
    DESCRIPTION = (f"Synthetic motion-only gestures: {synthetic_tasks.TASKS['motion'].num_videos}"
                   f" videos of {synthetic_tasks.NUM_FRAMES} frames, 4 classes; "
                   f"{synthetic_tasks.TASKS['motion'].description}.")


class SyntheticLips(_TaskBuilder):
    name = "synthetic_lips"
    TASK = "lips"
    CLASS_NAMES = synthetic_tasks.TASKS["lips"].class_names
    DESCRIPTION = (f"Synthetic lip-reading-like words: {synthetic_tasks.TASKS['lips'].num_videos}"
                   f" videos of {synthetic_tasks.NUM_FRAMES} frames, 4 classes; "
                   f"{synthetic_tasks.TASKS['lips'].description}.")


class _ImageBuilder(_Builder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    SHAPE: tuple = ()
    CLASS_NAMES: tuple = ()
    READ = None

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__, disable_shuffling=True,  # file order
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=self.SHAPE, dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=list(self.CLASS_NAMES))}))

    def _split_generators(self, dl_manager):
        data = type(self).READ(dl_manager.manual_dir)
        return {split: self._generate_examples(*arrays) for split, arrays in data.items()}

    def _generate_examples(self, images_, labels):
        for i, (image, label) in enumerate(zip(images_, labels)):
            yield i, {"image": image, "label": int(label)}


class MnistIdx(_ImageBuilder):
    """MNIST handwritten digits read from the four distributed IDX files."""

    name = "mnist_idx"
    SHAPE = (28, 28)
    CLASS_NAMES = images.MNIST_CLASSES
    MANUAL_DOWNLOAD_INSTRUCTIONS = images.MNIST_INSTRUCTIONS
    READ = staticmethod(images.read_mnist)


class Cifar10Pickle(_ImageBuilder):
    """CIFAR-10 read from the distributed python pickle batches."""

    name = "cifar10_pickle"
    SHAPE = (32, 32, 3)
    CLASS_NAMES = images.CIFAR10_CLASSES
    MANUAL_DOWNLOAD_INSTRUCTIONS = images.CIFAR10_INSTRUCTIONS
    READ = staticmethod(images.read_cifar10)


VIDEO_BUILDERS = {b.name: b for b in (SyntheticGesture, CambridgeHandGesture, Tulips1,
                                      SyntheticMotion, SyntheticLips)}


def is_built_in(name: str) -> bool:
    """Whether a video dataset is generated from a seed (no folder of the user's)."""
    return not issubclass(VIDEO_BUILDERS[name], _ManualVideoBuilder)
IMAGE_BUILDERS = {"mnist": MnistIdx, "cifar10": Cifar10Pickle}
