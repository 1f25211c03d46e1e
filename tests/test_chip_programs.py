"""The chip program on the machine (`chip_machine`, program "chip") and its fast emulation
(`chip_program`, "chip_fast") pinned to it: bit for bit with the noise off, to float
rounding with only systematic errors, in distribution with temporal noise."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from pixelrnn_jax import authors_files
from pixelrnn_jax.sensor.scamp5 import ChipFacts, InstructionError, NoiseModel, Readout, simulate
from pixelrnn_jax.sensor.scamp5 import chip_program as fast

SIDE = 64
IDEAL = NoiseModel.ideal()


def _weights(seed: int) -> authors_files.OfficialWeights:
    rng = np.random.default_rng(seed)
    pm = lambda *s: np.where(rng.random(s) < 0.5, -1.0, 1.0)  # noqa: E731
    return authors_files.OfficialWeights(conv1=pm(16, 5, 5), thresh1=1.0, w_f=pm(5, 5),
                                         u_f=pm(5, 5), w_o=pm(5, 5), u_o=pm(5, 5))


def _frames(seed: int, videos: int = 2, frames: int = 16) -> np.ndarray:
    # smooth random scenes: a binarised frame with structure, not salt and pepper
    rng = np.random.default_rng(seed)
    low = rng.normal(size=(videos, frames, 8, 8))
    img = np.kron(low, np.ones((8, 8))) + 0.3 * rng.normal(size=(videos, frames, SIDE, SIDE))
    return np.clip(128 + 60 * img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["uint8", pytest.param("bool", marks=pytest.mark.slow),
                                  pytest.param("float", marks=pytest.mark.slow)])
def test_noise_free_machine_and_fast_path_agree_bit_for_bit(kind):
    frames = _frames(1)
    video = {"uint8": frames, "bool": frames >= 128,
             "float": (frames.astype(np.float32) - 127.5) / 64}[kind]
    w = _weights(2)
    a = simulate(w, video, program="chip", noise=IDEAL)
    b = simulate(w, video, program="chip_fast", noise=IDEAL)
    assert a.shape == b.shape == (2, 1, SIDE, SIDE) and a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.std() > 1.0          # the readout has structure


@pytest.mark.slow   # 20 s; the noisy agreement runs by default
def test_systematic_errors_agree_to_float_rounding():
    """The shipped calibration's offsets, losses, DAC gain, chip pattern and readout (its
    offset map, rounding), temporal noise off: the same arithmetic in both programs."""
    noise = NoiseModel().scaled(temporal=0.0)
    assert not noise.random
    w, frames = _weights(3), _frames(4, videos=1)
    a = simulate(w, frames, program="chip", noise=noise)
    b = simulate(w, frames, program="chip_fast", noise=noise)
    # rounding to the 8-bit code can flip where float sums differ by an ulp
    assert np.mean(np.abs(a - b) > 0.11) < 1e-3
    assert np.mean(a != b) < 0.01


def test_noisy_programs_agree_in_distribution():
    """Per-pixel mean and spread over 24 noisy runs of each program: the differences are
    what the runs' sampling error allows."""
    noise = NoiseModel().replace(readout=Readout(gain=1.0, std=1.0, quantize=False))
    w, frames = _weights(5), _frames(6, videos=1)
    n = 24
    machine = simulate(w, np.repeat(frames, n, 0), program="chip", noise=noise,
                       rng=jax.random.key(0))[:, 0]
    emul = fast.readout_draws(w, frames, noise, jax.random.key(1), draws=n)["readout"][:, 0, 0]
    emul = emul / np.float32(ChipFacts().increment)
    crop = (slice(None), slice(1, 63), slice(1, 63))
    m, e = machine[crop], emul[crop]
    se = np.sqrt((m.var(0) + e.var(0)) / n) + 1e-3
    z = (m.mean(0) - e.mean(0)) / se
    assert abs(z.mean()) < 0.35
    assert 0.6 < z.std() < 1.4
    assert np.mean(np.abs(z) > 4) < 0.01
    ratio = np.median(e.std(0) + 1e-3) / np.median(m.std(0) + 1e-3)
    assert 0.8 < ratio < 1.25
    # the hidden state is chaotic: single runs differ from each other
    assert np.mean(machine[0] != machine[1]) > 0.1


def test_transfer_losses_reach_the_readout():
    """A lossy neighbour transfer shrinks the input part that moves 64 columns east."""
    lossy = IDEAL.with_instructions(transfer=InstructionError(loss=0.005))
    w = _weights(7)
    frames = _frames(8, videos=1)
    a = fast.readout_draws(w, frames, lossy)
    b = fast.readout_draws(w, frames, IDEAL)
    ratio = np.abs(a["input_part"][0, 0, 0, 1:63, 1:63]).mean() / np.abs(
        b["input_part"][0, 0, 0, 1:63, 1:63]).mean()
    assert ratio == pytest.approx(0.995 ** 64, rel=0.08)
