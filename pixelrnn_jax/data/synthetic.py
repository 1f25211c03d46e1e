"""A procedural hand-gesture video dataset: 3 hand shapes x 3 motions = 9 classes.

Built from a seed, nothing downloaded. It mirrors the structure of the Cambridge Hand Gesture
dataset (shape x motion classes) and is made so that only the temporal order tells motions
apart:

  shapes  0 "flat"   four fingers together, pointing up (a tall compact silhouette)
          1 "spread" five fingers fanned out (a wide silhouette)
          2 "vee"    two fingers in a V, the others folded
  motions 0 "hold"   the hand stays where it is (a slight tremor)
          1 "swing"  the hand swings left and right (1.5 periods per clip)
          2 "nod"    the hand swings up and down (1.5 periods per clip)

  class = 3 * shape + motion, names `shape/motion`, 100 videos per class (900 in all).

Why a single frame says little about the motion: both swings start at a random phase, so a
frame shows the hand anywhere along its swing, often near the centre; and the centre of
every video is jittered horizontally. The motion is in how the silhouette changes from frame
to frame, which the recurrent encoder sees and a per-frame classifier does not.

The hand stays near the middle of the view, like the hands of the Cambridge Hand Gesture
videos: the off-sensor decoder is a single linear layer over the 64x64 readout, so the
classes must be separable by where things happen on the sensor.

Nuisances (drawn per video, the same way for every class): vertical position, hand rotation
(+-6 deg), size, swing amplitude (0.09-0.13 frame widths, 3/4 of it for nods), background
brightness and a sinusoidal texture, global illumination gain, a linear illumination
gradient, a slight flicker over time, and Gaussian sensor noise. Contrast is chosen so that
the sign of the ImageNet-normalised intensity (the binary PixelRNN's input) keeps the hand
silhouette: the hand is always brighter than a normalised 0 (raw gray ~117) and the
background always darker, whatever the illumination, apart from sensor noise.

Frames are rendered from signed distance fields, so every resolution shows the same
continuous scene with antialiased edges: 64x64 for the in-pixel models, 256x256 for the
RAW camera baseline. Values are raw gray levels (R = G = B), i.e. exactly the stored
representation of the real datasets (see `preprocess`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["SHAPES", "MOTIONS", "CLASS_NAMES", "NUM_VIDEOS", "NUM_FRAMES", "SceneParams",
           "sample_scenes", "render"]

SHAPES = ("flat", "spread", "vee")
MOTIONS = ("hold", "swing", "nod")
CLASS_NAMES = tuple(f"{s}/{m}" for s in SHAPES for m in MOTIONS)
NUM_VIDEOS = 900
NUM_FRAMES = 24

# Hand geometry in hand units (palm centre at the origin, y pointing down, fingers up).
# Each finger is a capsule: (base_x, base_y, tip_x, tip_y, radius).
_PALM = (0.34, 0.36)  # ellipse semi-axes


def _fan(angles_deg, length, radius, base_y=-0.18, base_r=0.26):
    caps = []
    for a in np.deg2rad(angles_deg):
        bx, by = base_r * np.sin(a), base_y - base_r * (np.cos(a) - 1) * 0.5
        caps.append((bx, by, bx + length * np.sin(a), by - length * np.cos(a), radius))
    return caps


_FINGERS = {
    # four touching fingers and a thumb held along the palm: tall and narrow
    "flat": [(x, -0.2, x, -0.92 - 0.08 * (abs(x) < 0.1), 0.085)
             for x in (-0.22, -0.075, 0.075, 0.22)] + [(0.3, 0.15, 0.36, -0.25, 0.09)],
    # five fingers fanned out: wide
    "spread": _fan((-80, -38, -12, 14, 40), 0.72, 0.085),
    # index and middle finger in a V, the rest folded into the palm
    "vee": _fan((-24, 24), 0.85, 0.095),
}


@dataclasses.dataclass(frozen=True)
class SceneParams:
    """Per-video scene parameters, arrays of length n (one entry per video)."""

    label: np.ndarray       # int32 class = 3 * shape + motion
    phase: np.ndarray       # horizontal position at the first frame, in [0, 1)
    travel: np.ndarray      # distance moved by the sweeps, frame widths
    wave_amp: np.ndarray    # amplitude of the wave, frame widths
    wave_phase: np.ndarray  # where in its swing the wave starts, radians
    cy: np.ndarray          # vertical position of the palm centre
    scale: np.ndarray       # hand size unit, fraction of the frame
    angle: np.ndarray       # hand rotation, radians
    hand_gray: np.ndarray   # hand brightness before illumination
    bg_gray: np.ndarray     # background brightness before illumination
    tex: np.ndarray         # (n, 3, 4): amplitude, fx, fy, phase of 3 texture waves
    gain: np.ndarray        # global illumination gain
    grad: np.ndarray        # (n, 2): illumination gradient along x and y
    flicker: np.ndarray     # (n, 2): amplitude and phase of a slow flicker
    noise: np.ndarray       # sensor noise std in gray levels
    seed: np.ndarray        # per-video noise seed

    def __len__(self):
        return len(self.label)

    def take(self, idx) -> "SceneParams":
        return SceneParams(**{f.name: getattr(self, f.name)[idx]
                              for f in dataclasses.fields(self)})


def sample_scenes(seed: int = 0, num_videos: int = NUM_VIDEOS) -> SceneParams:
    """Draws the scene of every video; class k gets videos k, k + 9, k + 18, ...

    Every parameter is drawn the same way whatever the class (the motion only decides which
    of travel / wave_* is used), so nothing but the motion differs between classes."""
    rng = np.random.default_rng([seed, 20240617])
    n = num_videos
    u = lambda lo, hi, *shape: rng.uniform(lo, hi, size=(n, *shape))  # noqa: E731
    tex = np.stack([u(0, 7, 3), u(-6, 6, 3), u(-6, 6, 3), u(0, 2 * np.pi, 3)], axis=-1)
    tex[..., 0] *= 1.0 / 3  # three waves, at most +-7 gray levels together
    return SceneParams(
        label=(np.arange(n) % len(CLASS_NAMES)).astype(np.int32),
        phase=u(0, 1), travel=u(0.35, 0.5), wave_amp=u(0.13, 0.17),
        wave_phase=u(0, 2 * np.pi), cy=u(0.53, 0.58), scale=u(0.21, 0.235),
        angle=np.deg2rad(u(-6, 6)), hand_gray=u(195, 230), bg_gray=u(25, 60),
        tex=tex, gain=u(0.8, 1.2), grad=u(-0.08, 0.08, 2),
        flicker=np.stack([u(0, 0.04), u(0, 2 * np.pi)], axis=-1),
        noise=u(3, 8), seed=rng.integers(0, 2**31, size=n),
    )


def _trajectory(p: SceneParams, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Hand position per frame: x (n, t) and y (n, t), fractions of the frame.

    hold: the hand stays (a slight tremor); swing: it swings left and right; nod: it swings
    up and down. Both swings start at a random phase, and the centre of every video is
    jittered by about as much as the swings move the hand, so a single frame's position
    says little about the motion.
    """
    tau = np.linspace(0.0, 1.0, num_frames)[None, :]
    motion = (p.label % 3)[:, None]
    osc = np.sin(2 * np.pi * 1.5 * tau + p.wave_phase[:, None])
    tremor = 0.008 * np.sin(2 * np.pi * 3 * tau + p.wave_phase[:, None])
    dx = np.where(motion == 1, p.wave_amp[:, None] * osc, tremor)
    dy = np.where(motion == 2, 0.8 * p.wave_amp[:, None] * osc, 0.0)
    x = 0.46 + 0.08 * p.phase[:, None] + dx
    return np.mod(x, 1.0), p.cy[:, None] + dy


def _hand_sdf(shape: str, px, py):
    """Signed distance (hand units) to the hand silhouette at points (px, py)."""
    a, b = _PALM
    k = np.sqrt((px / a) ** 2 + (py / b) ** 2)
    d = (k - 1) * min(a, b)
    for bx, by, tx, ty, r in _FINGERS[shape]:
        ex, ey = tx - bx, ty - by
        h = np.clip(((px - bx) * ex + (py - by) * ey) / (ex * ex + ey * ey), 0, 1)
        d = np.minimum(d, np.hypot(px - bx - h * ex, py - by - h * ey) - r)
    return d


def render(params: SceneParams, size: int = 64, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """Renders videos as raw gray levels, uint8 (n, t, size, size)."""
    n = len(params)
    out = np.empty((n, num_frames, size, size), np.uint8)
    xs, ys = _trajectory(params, num_frames)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    for i in range(n):
        out[i] = _render_one(params.take(i), xs[i], ys[i], grid)
    return out


def _reach(shape: str) -> float:
    """Radius (hand units) of a circle around the palm centre holding the whole hand."""
    tips = [np.hypot(tx, ty) + r for _, _, tx, ty, r in _FINGERS[shape]]
    return max(tips + [max(_PALM)]) + 0.05


def _render_one(p: SceneParams, xs, ys, grid) -> np.ndarray:
    t, side = len(xs), len(grid)
    f32 = np.float32
    gx, gy = grid[None, :], grid[:, None]
    bg = np.full((side, side), p.bg_gray, f32)
    for amp, fx, fy, ph in p.tex:
        bg += f32(amp) * np.sin(f32(2 * np.pi) * (f32(fx) * gx + f32(fy) * gy) + f32(ph))
    # The distance field is evaluated only in a square window around the hand of each
    # frame (same window size for all frames, so one vectorised evaluation).
    shape = SHAPES[p.label // 3]
    half = int(np.ceil(_reach(shape) * p.scale * side)) + 1
    win = 2 * half
    ox = np.rint(xs * side).astype(int) - half  # window origin per frame, may be < 0
    oy = np.rint(ys * side).astype(int) - half  # per frame
    coords = (np.arange(win, dtype=f32) + 0.5) / side
    dx = (ox[:, None] / side).astype(f32)[:, None, :] + coords[None, None, :] \
        - xs[:, None, None].astype(f32)
    dy = (oy[:, None, None] / side + coords[None, :, None] - ys[:, None, None]).astype(f32)
    s = f32(p.scale)
    c, sn = f32(np.cos(p.angle)), f32(np.sin(p.angle))
    hx, hy = (c * dx + sn * dy) / s, (c * dy - sn * dx) / s
    d = _hand_sdf(shape, hx, hy) * s  # frame units
    cover = np.clip(f32(0.5) - d * f32(side), 0, 1)
    hand = cover * f32(p.hand_gray) * (1 - f32(0.08) * np.clip(hx * hx + hy * hy, 0, 1))
    # Coverage and hand light go on canvases padded by a window on every side; the columns
    # beyond the left and right edges then wrap around (the view is horizontally periodic).
    alpha = np.zeros((t, side + 2 * win, side + 2 * win), f32)
    light = np.zeros_like(alpha)
    for k in range(t):
        yk, xk = slice(oy[k] + win, oy[k] + 2 * win), slice(ox[k] + win, ox[k] + 2 * win)
        alpha[k, yk, xk] = cover[k]
        light[k, yk, xk] = hand[k]

    def fold(a):
        view = a[:, win:win + side, win:win + side].copy()
        view[:, :, side - win:] += a[:, win:win + side, :win]
        view[:, :, :win] += a[:, win:win + side, win + side:]
        return view

    alpha, light = fold(alpha), fold(light)
    frames = bg[None] * (1 - alpha) + light
    illum = f32(p.gain) * (1 + f32(p.grad[0]) * (2 * gx - 1) + f32(p.grad[1]) * (2 * gy - 1))
    flick = 1 + p.flicker[0] * np.sin(np.linspace(0, 2 * np.pi, t) + p.flicker[1])
    frames = frames * illum[None] * flick[:, None, None].astype(f32)
    noise = np.random.default_rng(int(p.seed) + side).standard_normal(frames.shape, f32)
    frames += noise * f32(p.noise)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)
