"""Reading the real datasets' folders exactly as they are distributed, with errors that say
what is wrong and where.

Each scanner returns the videos it found (name, label, frame paths in temporal order) after
checking the whole tree; nothing is decoded here. A wrong layout is reported with the first
offending path, so a mislabelled video can never slip through.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

from pixelrnn_jax.data.preprocess import IMAGE_SUFFIXES, natural_key

__all__ = ["CAMBRIDGE_CLASSES", "TULIPS_CLASSES", "CAMBRIDGE_INSTRUCTIONS",
           "TULIPS_INSTRUCTIONS", "VideoEntry", "LayoutError", "check_root", "scan_cambridge",
           "scan_tulips", "fingerprint"]

CAMBRIDGE_CLASSES = tuple(f"class_{k}" for k in range(1, 10))
TULIPS_CLASSES = ("one", "two", "three", "four")

CAMBRIDGE_INSTRUCTIONS = """\
The Cambridge Hand Gesture Data set (T.-K. Kim and R. Cipolla, 900 videos, 9 classes) is not
downloaded by this library. Get it from its authors (Imperial College London, Computer
Vision and Learning Lab, https://labicvl.github.io/ges_db.htm), extract the archives, and
pass the folder that holds the extracted sets. Either layout is accepted:
  original:    <dir>/Set1..Set5/0000..0008/0000..0019/frame-XXXX.jpg
               (illumination set / class 0-8 / sequence / frames)
  repackaged:  <dir>/<class 1..9>/Set{s}_{c}_{nnnn}/*.jpg  (c = the class folder)"""

TULIPS_INSTRUCTIONS = """\
The Tulips1 audio-visual database (J. R. Movellan, 1995: 12 speakers saying the digits one
to four twice, 96 utterances) is not downloaded by this library. Obtain it from its
distributors (UCSD Machine Perception Laboratory), extract it, and pass the folder with
  <dir>/<digit 1..4>/<Speaker><repetition 1|2>/*.jpg     e.g. <dir>/3/Regina2/frame01.jpg"""


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    name: str
    label: int
    frames: tuple  # frame file paths in temporal order
    speaker: str = ""


class LayoutError(ValueError):
    """The folder exists but is not laid out as the dataset is distributed."""


def _visible(entries):
    return [e for e in entries if not e.name.startswith(".") and e.name != "Thumbs.db"]


def _children(path: Path):
    with os.scandir(path) as it:
        entries = sorted(_visible(it), key=lambda e: natural_key(e.name))
    dirs = [e for e in entries if e.is_dir()]
    files = [e for e in entries if e.is_file()]
    return dirs, files


def check_root(root, dataset: str, instructions: str) -> Path:
    """The user's folder must exist and hold something."""
    if root is None:
        raise FileNotFoundError(f"{dataset}: no data folder given (pass data_dir=...).\n"
                                f"{instructions}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset}: folder {root} does not exist.\n{instructions}")
    dirs, files = _children(root)
    if not dirs:
        found = f" (it holds only {files[0].name!r}; extract archives first)" if files else ""
        raise FileNotFoundError(f"{dataset}: folder {root} is empty{found}.\n{instructions}")
    return root


def _frames(video_dir: Path, dataset: str) -> tuple:
    dirs, files = _children(video_dir)
    if dirs:
        raise LayoutError(f"{dataset}: unexpected folder {Path(dirs[0].path)} inside the video "
                          f"folder {video_dir} (a video folder holds only its frame images)")
    frames = tuple(Path(f.path) for f in files if Path(f.name).suffix.lower() in IMAGE_SUFFIXES)
    if not frames:
        raise LayoutError(f"{dataset}: video folder {video_dir} holds no image frames "
                          f"({', '.join(IMAGE_SUFFIXES)})")
    return frames


def _bad(dataset: str, path, expected: str, instructions: str):
    return LayoutError(f"{dataset}: unexpected {'folder' if Path(path).is_dir() else 'file'} "
                       f"{path}: expected {expected}.\n{instructions}")


def scan_cambridge(root) -> list[VideoEntry]:
    """Videos of the Cambridge Hand Gesture data set in either distributed layout."""
    ds, howto = "cambridge_hand_gesture", CAMBRIDGE_INSTRUCTIONS
    root = check_root(root, ds, howto)
    dirs, _ = _children(root)
    set_re, cls_re = re.compile(r"Set(\d+)$"), re.compile(r"[1-9]$")
    if set_re.match(dirs[0].name):
        layout, top_re = "original", set_re
        top_expected = "folders Set1..Set5 (original layout)"
    elif cls_re.match(dirs[0].name):
        layout, top_re = "repackaged", cls_re
        top_expected = "class folders 1..9 (repackaged layout)"
    else:
        raise _bad(ds, dirs[0].path, "Set1..Set5 or class folders 1..9", howto)
    for d in dirs:
        if not top_re.match(d.name):
            raise _bad(ds, d.path, top_expected, howto)
    videos = []
    if layout == "original":
        for set_dir in dirs:
            s = int(set_re.match(set_dir.name).group(1))
            class_dirs, _ = _children(set_dir.path)
            for cdir in class_dirs:
                if not re.fullmatch(r"000[0-8]", cdir.name):
                    raise _bad(ds, cdir.path, f"class folders 0000..0008 inside {set_dir.name}",
                               howto)
                label = int(cdir.name)
                seq_dirs, _ = _children(cdir.path)
                for q in seq_dirs:
                    if not re.fullmatch(r"\d{4}", q.name):
                        raise _bad(ds, q.path, "4-digit sequence folders (0000..0019) inside "
                                   f"{set_dir.name}/{cdir.name}", howto)
                    videos.append(VideoEntry(f"Set{s}_{label + 1}_{q.name}", label,
                                             _frames(Path(q.path), ds)))
    else:
        vid_re = re.compile(r"Set(\d+)_([1-9])_(\d{4})$")
        for cdir in dirs:
            c = int(cdir.name)
            vdirs, _ = _children(cdir.path)
            for v in vdirs:
                m = vid_re.match(v.name)
                if not m:
                    raise _bad(ds, v.path, f"video folders Set{{s}}_{c}_{{nnnn}} inside class "
                               f"folder {c}", howto)
                if int(m.group(2)) != c:
                    raise LayoutError(f"{ds}: video folder {v.path} is in class folder {c} "
                                      f"but its name says class {m.group(2)}; move it to "
                                      f"{Path(root) / m.group(2)}")
                videos.append(VideoEntry(v.name, c - 1, _frames(Path(v.path), ds)))
    return _finish(videos, root, ds, howto, CAMBRIDGE_CLASSES)


def scan_tulips(root) -> list[VideoEntry]:
    """Utterances of Tulips1: <digit 1..4>/<Speaker><rep>/frames."""
    ds, howto = "tulips1", TULIPS_INSTRUCTIONS
    root = check_root(root, ds, howto)
    dirs, _ = _children(root)
    utt_re = re.compile(r"([A-Za-z]+)([12])$")
    videos = []
    for ddir in dirs:
        if not re.fullmatch(r"[1-4]", ddir.name):
            raise _bad(ds, ddir.path, "digit folders 1..4", howto)
        digit = int(ddir.name)
        udirs, _ = _children(ddir.path)
        for u in udirs:
            m = utt_re.match(u.name)
            if not m:
                raise _bad(ds, u.path, f"utterance folders <Speaker><1|2> (e.g. Regina1) inside "
                           f"digit folder {digit}", howto)
            videos.append(VideoEntry(f"{digit}/{u.name}", digit - 1,
                                     _frames(Path(u.path), ds), speaker=m.group(1)))
    return _finish(videos, root, ds, howto, TULIPS_CLASSES)


def _finish(videos, root, ds, howto, classes=()):
    if not videos:
        raise FileNotFoundError(f"{ds}: no videos found under {root}.\n{howto}")
    present = {v.label for v in videos}
    missing = [name for i, name in enumerate(classes) if i not in present]
    if missing:
        raise LayoutError(f"{ds}: no videos of class(es) {', '.join(missing)} under {root}; "
                          f"the copy looks incomplete (interrupted extraction?): extract the "
                          f"full dataset\n{howto}")
    names = [v.name for v in videos]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise LayoutError(f"{ds}: video {dup} appears twice under {root}; keep one copy")
    return sorted(videos, key=lambda v: natural_key(v.name))


def fingerprint(videos, root) -> str:
    """Short hash of the frame files (relative paths and sizes): a changed folder gets a
    fresh prepared copy instead of a stale one."""
    h = hashlib.sha1()
    root = Path(root)
    for v in videos:
        h.update(f"{v.name}|{v.label}|{v.speaker}\n".encode())
        for f in v.frames:
            h.update(f"{f.relative_to(root)}:{f.stat().st_size}\n".encode())
    return h.hexdigest()[:12]
