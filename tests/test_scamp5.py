"""The SCAMP-5 model: noise statistics, saturation, the instruction set, and the PixelRNN
program against `pixelrnn_jax.encode`."""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pixelrnn_jax as pr
from pixelrnn_jax import ops
from pixelrnn_jax.sensor.scamp5 import (
    ChipPattern,
    InstructionError,
    Machine,
    NoiseModel,
    ProgramOptions,
    Readout,
    simulate,
    weight_planes,
)
from pixelrnn_jax.sensor.scamp5 import ideal_program as prog
from pixelrnn_jax.sensor.scamp5.machine import block_mask
from pixelrnn_jax.sensor.scamp5.noise import MEASURED_MEAN, MEASURED_STD

IDEAL = NoiseModel.ideal()


def _increments(noise: NoiseModel, repeats: int, shape=(2, 4, 4, 64, 64), value=10.0):
    """`repeats` x "add value" from 0 on every pixel of a plane, read back (jit)."""
    @jax.jit
    def run(key):
        m = Machine.create(noise, shape, key)
        s = m.init()
        for _ in range(repeats):
            s = m.add_const(s, "A", "A", value)
        return m.read(s, "A")

    return np.asarray(run(jax.random.key(0)))


@pytest.mark.parametrize("source", ["bank", "fresh"])
def test_write_of_10_reads_back_as_fig_s4(source):
    # supplement Fig. S4: writing 10 reads back with mean 10.73 and std 2.90 (chip (a) of the
    # shipped calibration: its DAC, the shared temporal noise, its readout); 131072 samples
    noise = NoiseModel.from_calibration(chip="figure_s4", source=source)

    @jax.jit
    def run(key):
        m = Machine.create(noise, (2, 4, 4, 64, 64), key)
        return m.readout(m.load(m.init(), "A", 10.0), "A")[1]

    v = np.asarray(run(jax.random.key(0)))
    assert abs(v.mean() / MEASURED_MEAN - 1) < 0.02
    assert abs(v.std() / MEASURED_STD - 1) < 0.03
    assert np.all(v == np.round(v))             # the 8-bit code


def test_readout_on_reads_only_when_asked():
    # the frames a program does not read out give zeros and draw no readout noise
    noise = NoiseModel.from_calibration(chip="figure_s4")

    @jax.jit
    def run(key, read):
        m = Machine.create(noise, (1, 4, 4, 8, 8), key)
        s = m.load(m.init(), "A", 10.0)
        after, out = m.readout_on(s, "A", read)
        return out, m.readout(s, "A")[1], after.count - s.count

    out, direct, draws = run(jax.random.key(0), True)
    np.testing.assert_array_equal(out, direct)
    assert int(draws) > 0
    out, _, draws = run(jax.random.key(0), False)
    assert not np.any(out) and int(draws) == 0


def test_repeated_increments_add_independent_noise():
    err = InstructionError(std=0.7)
    nm = IDEAL.with_instructions(add_const=err)
    v = _increments(nm, 4)
    assert abs(v.mean() - 40.0) < 0.02
    assert abs(v.std() / (2 * 0.7) - 1) < 0.02


def test_instruction_errors_are_affine_and_sign_dependent():
    err = InstructionError(offset=0.5, loss=0.01, loss_negative=0.03)
    nm = IDEAL.with_instructions(add_const=err)
    up, down = _increments(nm, 1, value=10.0), _increments(nm, 1, value=-10.0)
    np.testing.assert_allclose(up, 10.0 * 0.99 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(down, -10.0 * 0.97 - 0.5, rtol=1e-6)
    # the chip's pattern: a fixed per-pixel offset, the same in every run
    pat = IDEAL.replace(pattern=ChipPattern(seed=4, offset_std=1.0))
    a, b = _increments(pat, 1), _increments(pat.replace(pattern=ChipPattern(seed=5,
                                                                            offset_std=1.0)), 1)
    assert abs(a.std() - 1.0) < 0.02 and not np.allclose(a, b)
    np.testing.assert_array_equal(a, _increments(pat, 1))


def test_noise_sources_switch_off():
    assert np.all(_increments(IDEAL, 3) == 30.0)
    assert not IDEAL.random
    assert NoiseModel() == NoiseModel.from_calibration()
    assert NoiseModel().random and NoiseModel().chip == "recordings"
    assert not NoiseModel().scaled(temporal=0.0).random
    exact = NoiseModel().scaled(temporal=0.0, systematic=0.0, pattern=0.0).replace(dac_gain=1.0)
    assert np.all(_increments(exact, 1) == 10.0)


def test_saturation():
    assert np.all(_increments(IDEAL, 20) == 127.0)
    assert np.all(_increments(IDEAL, 20, value=-10.0) == -128.0)
    assert np.all(_increments(IDEAL.replace(saturation=None), 20) == 200.0)


def test_noise_model_rejects_bad_settings():
    with pytest.raises(ValueError, match="std must be >= 0"):
        InstructionError(std=-1.0)
    with pytest.raises(ValueError, match="must be finite"):
        InstructionError(offset=float("nan"))
    with pytest.raises(ValueError, match="offset_std must be finite"):
        ChipPattern(offset_std=float("nan"))
    with pytest.raises(ValueError, match="gain must be > 0"):
        Readout(gain=0.0)
    with pytest.raises(ValueError, match="unknown analog instruction.*'mul'"):
        NoiseModel(instructions={"mul": InstructionError()})
    with pytest.raises(ValueError, match="unknown analog instruction 'mul'"):
        IDEAL.instruction("mul")
    with pytest.raises(ValueError, match="source"):
        NoiseModel(source="urandom")
    with pytest.raises(ValueError, match="saturation"):
        NoiseModel(saturation=(5.0, -5.0))
    with pytest.raises(ValueError, match="PRNG key"):
        Machine.create(NoiseModel(), (1, 4, 4, 8, 8))


def test_neighbour_transfers_carry_their_error():
    """A shift by n is n transfers: the loss compounds, the noise adds up."""
    err = InstructionError(loss=0.01, std=0.5)
    nm = IDEAL.with_instructions(transfer=err)

    @jax.jit
    def run(key):
        m = Machine.create(nm, (4, 4, 4, 64, 64), key)
        s = m.load(m.init(), "A", 80.0)
        return m.read(m.shift(s, "B", "A", "south", 8, boundary="array"), "B")

    b = np.asarray(run(jax.random.key(2)))[:, 2]           # rows far from the array edge
    assert abs(b.mean() / (80.0 * 0.99 ** 8) - 1) < 1e-3
    assert abs(b.std() / (0.5 * np.sqrt(sum(0.99 ** (2 * k) for k in range(8)))) - 1) < 0.03


@jax.jit
def _instruction_tour(x):
    """Elementary ops on an (1, 4, 4, 8, 8) plane, ideal."""
    m = Machine.create(IDEAL, x.shape)
    s = m.load(m.init(), "A", x)
    s = m.shift(s, "B", "A", "north")
    s = m.shift(s, "C", "A", "east", 2)
    s = m.shift(s, "D", "A", "west", 1, boundary="array")
    s = m.div2(s, "E", "A")
    s = m.neg(s, "F", "E")
    s = m.threshold(s, "R0", "A", 0.5)
    s = m.sub(s, "E", "E", "F", where="R0")
    s = m.threshold(s, "R1", "A", 0.2, scale=5.0)
    s = m.threshold(s, "R2", "A", 0.2, scale=5.0, strict=True)
    s = m.d_xor(s, "R3", "R1", "R2")
    return s.analog, s.digital["R3"]


def test_instructions():
    x = jnp.asarray(np.random.default_rng(0).integers(-5, 6, (1, 4, 4, 8, 8)), jnp.float32)
    analog, ties = _instruction_tour(x)
    a = {k: np.asarray(v) for k, v in analog.items()}
    xn = np.asarray(x)
    assert np.array_equal(np.asarray(ties), xn == 1.0)   # >= and > differ only at the level
    assert np.array_equal(a["B"][..., :-1, :], xn[..., 1:, :])       # north: one row up
    assert np.all(a["B"][..., -1, :] == 0)                             # zero fill per block
    assert np.array_equal(a["C"][..., 2:], xn[..., :-2])               # east: two columns right
    img = np.asarray(pr.scamp5.to_image(x))
    assert np.array_equal(np.asarray(pr.scamp5.to_image(a["D"]))[..., :-1], img[..., 1:])
    assert np.array_equal(a["F"], -xn / 2)
    # where-masked: E - F = x where x >= 0.5, else unchanged x / 2
    assert np.array_equal(a["E"], np.where(xn >= 0.5, xn, xn / 2))


def test_where_masked_ops_leave_other_pixels_untouched():
    @jax.jit
    def run(key):
        m = Machine.create(NoiseModel(), (1, 4, 4, 8, 8), key)
        s = m.d_load(m.init(), "R1", block_mask(m.grid, rows=[0]))
        return m.add_const(s, "A", "A", 10.0, where="R1").analog["A"]

    a = np.asarray(run(jax.random.key(1)))
    assert np.all(a[:, 1:] == 0.0)
    assert np.all(a[:, 0] != 0.0)


def test_compaction_matches_tile_layout():
    bits = np.random.default_rng(1).random((2, 4, 4, 16, 16)) > 0.5

    @jax.jit
    def run(b):
        m = Machine.create(IDEAL, b.shape)
        s = m.d_load(m.init(), "R0", b)
        return m.d_compact(s, "R1", "R0").digital["R1"]

    out = np.asarray(run(bits))
    # block (by, bx) computes channel c = by + 4 bx
    maps = np.stack([bits[:, c % 4, c // 4, ::4, ::4] for c in range(16)], axis=1)
    expected = np.asarray(ops.tile(jnp.asarray(maps)))
    for by in range(4):
        for bx in range(4):
            assert np.array_equal(out[:, by, bx], expected)


def test_saturation_changes_the_cnn_decision():
    # all +1 input and weights: interior sums are 25 products = 250 units, clipped to 127
    @partial(jax.jit, static_argnums=0)
    def run(sat):
        noise = IDEAL.replace(saturation=(-128.0, 127.0) if sat else None)
        m = Machine.create(noise, (1, 4, 4, 16, 16))
        s = m.d_set(m.init(), prog.X, True)
        planes = jnp.ones((25, 4, 4, 16, 16), bool)
        s = prog.conv_taps(m, s, planes, prog.ACC, prog.X, 10.0)
        acc = s.analog[prog.ACC]
        return acc, prog.cnn_layer(m, s, planes, jnp.float32(13.0), 10.0).digital[prog.X]

    acc, bits = run(True)
    assert float(acc.max()) == 127.0
    assert not bool(bits.any())            # 12.7 < 13 on the chip
    acc, bits = run(False)
    assert float(acc.max()) == 250.0
    assert bool(bits.all())                # 25 >= 13 in the model


def test_batched_program_is_the_vmapped_program():
    """Videos are a vectorized axis: the program on a batch equals `jax.vmap` of it."""
    rng = np.random.default_rng(2)
    bits = rng.random((2, 4, 4, 16, 16)) > 0.5
    planes = jnp.asarray(rng.random((25, 4, 4, 1, 1)) > 0.5) & jnp.ones((16, 16), bool)

    def layer(b):
        m = Machine.create(IDEAL, b.shape)
        s = m.d_load(m.init(), prog.X, b)
        return prog.cnn_layer(m, s, planes, jnp.float32(1.0), 10.0).digital[prog.X]

    np.testing.assert_array_equal(jax.jit(layer)(bits), jax.jit(jax.vmap(layer))(bits))


def _random_binary_model(cfg: pr.ModelConfig, seed: int) -> dict:
    """Encoder variables with random latent weights (random +-1 kernels) and thresholds on
    and off the integer lattice, built with NumPy (no init to compile)."""
    rng = np.random.default_rng(seed)
    enc = {f"cnn_{i}": {"kernel": rng.normal(size=(16, 5, 5)).astype(np.float32),
                        "threshold": np.float32([1.0, 2.5, 0.0][i % 3])}
           for i in range(cfg.cnn_layers)}
    enc["cell"] = {n: rng.normal(size=(5, 5)).astype(np.float32)
                   for n in ("w_f", "u_f", "w_o", "u_o")}
    enc["cell"]["theta"] = np.float32(seed - 2.0)
    return jax.tree.map(jnp.asarray, {"params": {"encoder": enc}})


def _video(cfg: pr.ModelConfig, b: int, t: int, seed: int):
    v = np.random.default_rng(seed).normal(size=(b, t, cfg.frame_size, cfg.frame_size))
    v[v.__abs__() < 0.05] = 0.0            # exact zeros binarize to +1
    return jnp.asarray(v, jnp.float32)


# (config, batch, frames, ProgramOptions, NoiseModel); test_scamp5_export reuses TWO_LAYERS
CHIP = pr.ModelConfig(frame_size=64, K=16, cnn_layers=1)
TWO_LAYERS = pr.ModelConfig(frame_size=32, input_pool=2, K=4, cnn_layers=2)
ONE_LAYER = pr.ModelConfig(frame_size=16, K=4, cnn_layers=1)
NO_CNN = pr.ModelConfig(frame_size=16, K=4, cnn_layers=0)
# increment 2: no sum of up to 50 products reaches the saturation limit
SMALL_INCREMENT = ProgramOptions(increment=2.0)
EQUALITY_CASES = {
    "chip_k16": (CHIP, 2, 16, ProgramOptions(), IDEAL.replace(saturation=None)),
    "two_layers_k4": (TWO_LAYERS, 2, 8, SMALL_INCREMENT, IDEAL),
    "one_layer_k4": (ONE_LAYER, 2, 8, SMALL_INCREMENT, IDEAL),
    "no_cnn_single_video": (NO_CNN, None, 8, SMALL_INCREMENT, IDEAL),
}


@pytest.mark.parametrize("case", sorted(EQUALITY_CASES))
def test_noise_free_program_equals_encode(case):
    cfg, b, t, options, noise = EQUALITY_CASES[case]
    variables = _random_binary_model(cfg, cfg.cnn_layers)
    video = _video(cfg, b or 1, t, seed=cfg.frame_size)
    if b is None:
        video = video[0]
    out = simulate(variables, video, cfg, noise=noise, options=options)
    ref = pr.encode(variables, video, cfg)
    assert out.shape == ref.shape == video.shape[:-3] + (t // cfg.K,) + (cfg.plane_size,) * 2
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def test_noisy_runs():
    cfg = pr.ModelConfig(frame_size=16, K=4)
    variables = _random_binary_model(cfg, 3)
    video = _video(cfg, 2, 4, seed=5)
    wp = weight_planes(variables, cfg)
    a = simulate(wp, video, cfg, rng=jax.random.key(0))
    b = simulate(wp, video, cfg, rng=jax.random.key(0))
    c = simulate(wp, video, cfg, rng=jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.isfinite(np.asarray(a)))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert float(jnp.abs(a).max()) <= 12.8 + 1e-5  # o_t saturates at 128 units
    with pytest.raises(ValueError, match="rng"):
        simulate(wp, video, cfg)


def test_simulate_traces_once():
    cfg = pr.ModelConfig(frame_size=16, K=4)
    wp = weight_planes(_random_binary_model(cfg, 3), cfg)
    video = _video(cfg, 2, 4, seed=6)
    simulate(wp, video, cfg, rng=jax.random.key(0))
    before = prog._simulate_jit._cache_size()
    simulate(wp, video + 1.0, cfg, rng=jax.random.key(7))
    assert prog._simulate_jit._cache_size() == before


def test_bad_inputs():
    cfg = pr.ModelConfig(frame_size=16, K=4)
    variables = _random_binary_model(cfg, 3)
    with pytest.raises(ValueError, match="binary PixelRNN"):
        simulate(variables, _video(cfg, 1, 4, 0), cfg.replace(precision="32bit"), noise=IDEAL)
    with pytest.raises(ValueError, match="16x16"):
        simulate(variables, jnp.zeros((1, 4, 8, 8)), cfg, noise=IDEAL)
    with pytest.raises(ValueError, match="multiple of"):
        simulate(variables, jnp.zeros((1, 6, 16, 16)), cfg, noise=IDEAL)
    with pytest.raises(ValueError, match="cnn_layers"):
        simulate(variables, _video(cfg, 1, 4, 0), cfg.replace(cnn_layers=2), noise=IDEAL)
    with pytest.raises(ValueError, match="blocks"):
        simulate(weight_planes(variables, cfg), jnp.zeros((1, 4, 32, 32)),
                 cfg.replace(frame_size=32), noise=IDEAL)
    with pytest.raises(ValueError, match="unknown sensor program 'chop'"):
        simulate(variables, _video(cfg, 1, 4, 0), cfg, program="chop")
    with pytest.raises(ValueError, match="chip program runs one CNN layer"):
        simulate(variables, _video(cfg, 1, 4, 0), cfg.replace(cnn_layers=2), program="chip")
    with pytest.raises(ValueError, match="16-frame cycles"):
        simulate(variables, _video(cfg, 1, 4, 0), cfg, program="chip")
    chip_video = np.zeros((1, 16, 64, 64), np.float32)
    for program in ("chip", "chip_fast"):
        with pytest.raises(TypeError, match="must be a NoiseModel"):
            simulate(variables, chip_video, pr.ModelConfig(), program=program,
                     noise=ProgramOptions())
        with pytest.raises(ValueError, match=r"\(videos, frames, 64, 64\)"):
            simulate(variables, np.zeros((1, 16, 32, 32), np.uint8), program=program,
                     noise=IDEAL)
        with pytest.raises(ValueError, match="not a multiple of the program's 16-frame"):
            simulate(variables, np.zeros((1, 8, 64, 64), np.uint8), program=program,
                     noise=IDEAL)
        with pytest.raises(ValueError, match="uint8 frames, bool binarised frames"):
            simulate(variables, np.zeros((1, 16, 64, 64), np.int16), program=program,
                     noise=IDEAL)
        with pytest.raises(ValueError, match="NaN"):
            simulate(variables, np.full((1, 16, 64, 64), np.nan, np.float32),
                     program=program, noise=IDEAL)


# ---------------------------------------------------------------- noise sites for training

def _flagfile_noise(path):
    vals = {}
    for line in path.read_text().splitlines():
        if line.startswith("--noise_"):
            k, v = line[2:].split("=")
            vals[k] = float(v)
    return vals


@pytest.mark.slow   # 50 s of noisy program runs
def test_model_noise_measures_the_program():
    e = InstructionError(std=0.5)
    noise = IDEAL.with_instructions(load=e, add_const=e, add=e, copy=e, transfer=e, reset=e)
    inc, units = ProgramOptions().increment, ProgramOptions().input_units
    got = prog.model_noise(noise, videos=1)
    # the upload: one DAC write; the gates: a reset and 25 products on each side, the input
    # side's 64 neighbour transfers to the hidden block and the add; the pooled CNN sums: a
    # reset and 25 products, then the max-pool's transfers and copies
    assert got["noise_input"] == pytest.approx(0.5 / units, rel=0.03)
    assert got["noise_gate"] == pytest.approx(np.sqrt(2 * 26 + 64 + 1) * 0.5 / inc, rel=0.03)
    assert got["noise_out"] == pytest.approx(got["noise_gate"], rel=0.03)
    assert np.sqrt(26) * 0.5 / inc < got["noise_cnn"] < np.sqrt(26 + 8) * 0.5 / inc
    quiet = prog.model_noise(noise.with_instructions(transfer=InstructionError()), videos=1)
    assert quiet["noise_gate"] == pytest.approx(np.sqrt(2 * 26 + 1) * 0.5 / inc, rel=0.03)
    assert prog.model_noise(NoiseModel.ideal()) == dict.fromkeys(got, 0.0)
    # the noise-aware flagfile for the simulated sensor carries the default's numbers
    from pathlib import Path
    default = prog.model_noise()
    flagfile = Path(__file__).resolve().parents[1] / "experiments/gesture_sensornoise.flags"
    for k, v in _flagfile_noise(flagfile).items():
        assert v == pytest.approx(default[k], rel=0.05, abs=2e-3), k
