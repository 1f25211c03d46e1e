"""Two procedural video tasks in which one frame carries no class information: only the
temporal pattern tells the classes apart, so they separate the recurrent cells and the
cameras where the built-in gestures (`synthetic`) let a single frame go a long way.

motion  4 motions of one hand shape around a fixed circle of the view:
          0 "still"       the hand rests at a point of the circle (a slight tremor)
          1 "clockwise"   it travels clockwise along the circle (0.6-0.9 turns per clip)
          2 "anticlock"   the same, anticlockwise
          3 "sway"        it sways back and forth along the circle (1.5 periods per clip)
        The hand's angle on the circle at the first frame is uniform, and every motion moves
        it along the circle only, so at every frame the hand's position is uniform on the
        circle whatever the class: a frame alone is at chance (25 %).
lips    4 "words" of a mouth-like shape (a dark ellipse in a lighter face region) whose
        opening follows a sinusoid with 1, 1.5, 2 or 3 cycles per 16 frames, at a uniform
        random phase: at every frame the opening is distributed alike (the arcsine law of a
        sinusoid at a uniform phase) for all classes; only its rhythm differs.

Nuisances drawn per video, the same way for every class: the circle's or the mouth's centre
(a few pixels), sizes, the speed, brightness of the foreground and the background, a linear
illumination gradient and Gaussian sensor noise. Like `synthetic`, the foreground is always
brighter (motion) or darker (lips) than a normalised 0 (raw gray ~117) and the background the
other way, so the sign of the normalised intensity (the binary encoder's input) keeps the
shape. Frames are raw gray levels, rendered from analytic distances at any resolution.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["TASKS", "Task", "render_task"]

NUM_FRAMES = 24
FRAMES_PER_PERIOD_CLIP = 16   # the rhythms are defined over a 16-frame clip


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    class_names: tuple[str, ...]
    num_videos: int
    description: str


TASKS = {
    "motion": Task("motion", ("still", "clockwise", "anticlock", "sway"), 600,
                   "motion-only gestures: one hand shape moving along a fixed circle, 4 "
                   "motions; every frame's hand position is uniform on the circle"),
    "lips": Task("lips", ("one", "one-and-a-half", "two", "three"), 600,
                 "lip-reading-like words: a mouth whose opening follows 1, 1.5, 2 or 3 cycles "
                 "per 16 frames at a random phase; every frame's opening is distributed alike"),
}


def _check(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown synthetic task {name!r}: choose one of {sorted(TASKS)}")
    return TASKS[name]


def _scene(rng, n):
    u = lambda lo, hi, *shape: rng.uniform(lo, hi, size=(n, *shape))  # noqa: E731
    return {"cx": u(0.46, 0.54), "cy": u(0.46, 0.54), "fg": u(190, 230), "bg": u(25, 60),
            "grad": u(-0.08, 0.08, 2), "noise": u(3, 8), "phase": u(0, 2 * np.pi),
            "phase2": u(0, 2 * np.pi),
            "speed": u(0.6, 0.9), "size": u(0.9, 1.1), "seed": rng.integers(0, 2**31, size=n)}


def _motion_angles(label, phase, phase2, speed, t):
    """Angle on the circle per frame (n t): still / clockwise / anticlockwise / sway. Every
    motion adds to the uniform start angle `phase` a path independent of it, so the angle at
    any frame stays uniform."""
    tau = t / FRAMES_PER_PERIOD_CLIP
    turn = 2 * np.pi * speed[:, None] * tau
    sway = 0.9 * np.sin(2 * np.pi * 1.5 * tau + phase2[:, None])
    tremor = 0.02 * np.sin(2 * np.pi * 3 * tau)
    moves = np.stack([tremor + 0 * turn, -turn, turn, sway + 0 * turn])   # (4 n t)
    return phase[:, None] + moves[label, np.arange(len(label))]


def _lips_opening(label, phase, t):
    """Mouth opening in [0, 1] per frame (n t): sinusoids of 1, 1.5, 2, 3 cycles per clip."""
    cycles = np.array([1.0, 1.5, 2.0, 3.0])[label][:, None]
    return 0.5 + 0.5 * np.sin(2 * np.pi * cycles * t / FRAMES_PER_PERIOD_CLIP
                              + phase[:, None])


def render_task(name: str, seed: int = 0, size: int = 64, num_frames: int = NUM_FRAMES,
                num_videos: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(videos uint8 (n t size size) raw gray levels, labels int32 (n,)) of a task; class k
    gets videos k, k + 4, k + 8, ..."""
    task = _check(name)
    n = task.num_videos if num_videos is None else num_videos
    rng = np.random.default_rng([seed, 0x5A7A, len(name)])
    labels = (np.arange(n) % len(task.class_names)).astype(np.int32)
    p = _scene(rng, n)
    t = np.arange(num_frames, dtype=np.float64)
    grid = (np.arange(size) + 0.5) / size
    gx, gy = grid[None, None, :], grid[None, :, None]
    out = np.empty((n, num_frames, size, size), np.uint8)
    if name == "motion":
        ang = _motion_angles(labels, p["phase"], p["phase2"], p["speed"], t)
    else:
        opening = _lips_opening(labels, p["phase"], t)
    for i in range(n):
        illum = 1 + p["grad"][i, 0] * (2 * gx - 1) + p["grad"][i, 1] * (2 * gy - 1)
        if name == "motion":
            r = 0.26 * p["size"][i]
            hx = p["cx"][i] + r * np.cos(ang[i])[:, None, None]
            hy = p["cy"][i] + r * np.sin(ang[i])[:, None, None]
            dist = np.hypot(gx - hx, (gy - hy) * 0.8) - 0.09 * p["size"][i]  # an oval hand
            cover = np.clip(0.5 - dist * size, 0, 1)
            frames = p["bg"][i] * (1 - cover) + p["fg"][i] * cover
        else:
            a = 0.16 * p["size"][i]                              # half width of the mouth
            b = (0.015 + 0.075 * opening[i])[:, None, None] * p["size"][i]
            d = np.hypot((gx - p["cx"][i]) / a, (gy - p["cy"][i]) / b) - 1
            cover = np.clip(0.5 - d * np.minimum(a, b) * size, 0, 1)
            face = np.clip(0.5 - (np.hypot((gx - p["cx"][i]) / 0.36,
                                           (gy - p["cy"][i]) / 0.30) - 1) * 0.3 * size, 0, 1)
            frames = p["bg"][i] * (1 - face) + p["fg"][i] * face
            frames = frames * (1 - cover) + p["bg"][i] * 0.5 * cover      # the dark opening
        frames = frames * illum
        noise = np.random.default_rng(int(p["seed"][i]) + size).standard_normal(frames.shape)
        out[i] = np.clip(np.rint(frames + noise * p["noise"][i]), 0, 255).astype(np.uint8)
    return out, labels
