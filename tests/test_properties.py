"""Properties checked on generated inputs (hypothesis).

  tile / untile              inverses of each other, and channel c at block (c % 4, c // 4)
  sign                       idempotent, values +-1 with sign(0) = +1; surrogate gradient in
                             [0, m], m at 0 (heaviside: [0, m/4]; ternary: [0, m])
  authors' formats           text and header export -> import of random binary weights is
                             exact; to_variables -> from_variables gives the weights back
  encode                     a batch encodes as each of its videos alone (bit for bit)
  SCAMP-5 model              the noise-free program equals encode (skipped until
                             `pixelrnn_jax.scamp5` is importable)

Examples are derandomized (the same on every run) and shapes are drawn from small sets, so
every compiled function is compiled once.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pixelrnn_jax as pr
from pixelrnn_jax import authors_files, authors_model, ops, quantizers

try:
    from pixelrnn_jax import scamp5
except ImportError as err:  # the SCAMP-5 model is built separately
    scamp5, SCAMP5_MISSING = None, f"pixelrnn_jax.scamp5 is not importable yet ({err})"

FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
MODEL = settings(max_examples=8, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
steepness = st.floats(min_value=0.125, max_value=20.0, width=32)


# ------------------------------------------------------------------------ tile / untile

tile_jit = jax.jit(ops.tile)
untile_jit = jax.jit(ops.untile)


@st.composite
def maps(draw):
    lead = draw(st.sampled_from([(), (2,), (1, 3)]))
    h, w = draw(st.sampled_from([(1, 1), (2, 3), (4, 4)]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return np.random.default_rng(seed).standard_normal(lead + (16, h, w)).astype(np.float32)


@FAST
@given(maps())
def test_untile_inverts_tile(x):
    np.testing.assert_array_equal(untile_jit(tile_jit(x)), x)


@FAST
@given(maps())
def test_tile_inverts_untile(x):
    plane = np.asarray(tile_jit(x))
    np.testing.assert_array_equal(tile_jit(untile_jit(plane)), plane)


@FAST
@given(maps(), st.integers(0, 15))
def test_tile_puts_channel_c_at_block_c_mod_4_c_div_4(x, c):
    h, w = x.shape[-2:]
    plane = np.asarray(tile_jit(x))
    rb, cb = c % 4, c // 4
    np.testing.assert_array_equal(plane[..., rb * h:(rb + 1) * h, cb * w:(cb + 1) * w],
                                  x[..., c, :, :])


# --------------------------------------------------------------------------- quantizers

# one fixed length: one compiled shape
vector = hnp.arrays(np.float32, 32, elements=st.one_of(finite32, st.sampled_from([0.0, -0.0])))


@jax.jit
def _sign_twice(x):
    s = quantizers.sign(x)
    return s, quantizers.sign(s)


@FAST
@given(vector)
def test_sign_is_idempotent_with_values_pm1(values):
    x = jnp.asarray(values, jnp.float32)
    s, ss = _sign_twice(x)
    np.testing.assert_array_equal(ss, s)
    assert set(np.unique(np.asarray(s))) <= {-1.0, 1.0}
    np.testing.assert_array_equal(s, np.where(np.asarray(values) >= 0, 1.0, -1.0))


def _grad(q, m, *extra):
    """Elementwise surrogate gradient, eagerly: m is a static argument, so a jitted version
    would compile once per drawn m."""
    return jax.vmap(jax.grad(lambda v: q(v, m, *extra)))


@FAST
@given(vector, steepness)
def test_sign_surrogate_gradient_is_bounded_by_m(values, m):
    g = np.asarray(_grad(quantizers.sign, m)(jnp.asarray(values, jnp.float32)))
    assert np.all(np.isfinite(g)) and np.all(g >= 0) and np.all(g <= np.float32(m) * (1 + 1e-6))
    g0 = np.asarray(_grad(quantizers.sign, m)(jnp.zeros(1)))
    np.testing.assert_allclose(g0, [m], rtol=1e-6)


@FAST
@given(vector, steepness)
def test_heaviside_and_ternary_surrogate_gradients_are_bounded(values, m):
    x = jnp.asarray(values, jnp.float32)
    gh = np.asarray(_grad(quantizers.heaviside, m)(x))
    gt = np.asarray(_grad(quantizers.ternary, m, 0.5)(x))
    assert np.all(gh >= 0) and np.all(gh <= m / 4 * (1 + 1e-6))
    assert np.all(gt >= 0) and np.all(gt <= m * (1 + 1e-6))


# ------------------------------------------------------------------------ authors' formats

@st.composite
def binary_weights(draw, decoder=True):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    pm = lambda *s: rng.choice([-1.0, 1.0], size=s)  # noqa: E731
    two = draw(st.booleans())
    fields = dict(conv1=pm(16, 5, 5), thresh1=draw(finite32), w_f=pm(5, 5), u_f=pm(5, 5),
                  w_o=pm(5, 5), u_o=pm(5, 5), rnn_threshold=draw(finite32))
    if two:
        fields.update(conv2=pm(16, 5, 5), thresh2=draw(finite32))
    if decoder and draw(st.booleans()):
        classes = draw(st.integers(2, 4))
        fields.update(thresh3=draw(finite32), fin_conv_weight=rng.normal(size=(1, 1, 1, 1)),
                      fin_convpost_weight=rng.normal(size=1), fin_convpost_bias=rng.normal(size=1),
                      fc_weight=rng.normal(size=(classes, 8)).astype(np.float32),
                      fc_bias=rng.normal(size=classes))
    return authors_files.OfficialWeights(**fields)


@FAST
@given(binary_weights())
def test_text_export_then_import_is_exact(tmp_path_factory, w):
    path = tmp_path_factory.mktemp("text") / "w.txt"
    authors_files.save_weights_text(w, path)
    back = authors_files.load_weights_text(path)
    assert back.equals(w)
    authors_files.save_weights_text(back, path.with_name("again.txt"))
    assert path.with_name("again.txt").read_bytes() == path.read_bytes()


@FAST
@given(binary_weights(decoder=False))
def test_header_export_then_import_is_exact(tmp_path_factory, w):
    path = tmp_path_factory.mktemp("header") / "w.h"
    authors_files.save_header(w, path)
    assert authors_files.load_header(path).equals(w)


@FAST
@given(binary_weights(decoder=False))
def test_variables_round_trip(w):
    cfg = pr.ModelConfig(cnn_layers=w.cnn_layers)
    back = authors_model.from_variables(authors_model.to_variables(w, cfg))
    # thresholds go through float32 variables: the drawn values are float32 already; the
    # CNN thresholds a binary layer applies are floored at 0.5 (encoder.effective_threshold)
    floor = lambda t: None if t is None else max(t, 0.5)  # noqa: E731
    assert back.equals(dataclasses.replace(w, thresh1=floor(w.thresh1),
                                           thresh2=floor(w.thresh2)))


# ------------------------------------------------------------------------------ encode

def random_binary_model(cfg: pr.ModelConfig, seed: int) -> dict:
    """Encoder variables with random latent kernels and thresholds (no init to compile)."""
    rng = np.random.default_rng(seed)
    enc = {f"cnn_{i}": {"kernel": rng.normal(size=(16, 5, 5)).astype(np.float32),
                        "threshold": np.float32(rng.choice([0.0, 1.0, 2.5]))}
           for i in range(cfg.cnn_layers)}
    enc["cell"] = {n: rng.normal(size=(5, 5)).astype(np.float32)
                   for n in ("w_f", "u_f", "w_o", "u_o")}
    enc["cell"]["theta"] = np.float32(rng.integers(-3, 4))
    return jax.tree.map(jnp.asarray, {"params": {"encoder": enc}})


def random_video(shape, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    v[np.abs(v) < 0.1] = 0.0  # exact zeros binarize to +1
    return v


CONFIGS = {0: pr.ModelConfig(frame_size=16, K=4, cnn_layers=0),
           1: pr.ModelConfig(frame_size=16, K=4, cnn_layers=1)}


@MODEL
@given(st.sampled_from(sorted(CONFIGS)), st.integers(0, 2 ** 32 - 1),
       st.integers(0, 2 ** 32 - 1))
def test_encode_of_a_batch_equals_encode_of_each_video(layers, model_seed, video_seed):
    cfg = CONFIGS[layers]
    variables = random_binary_model(cfg, model_seed)
    video = random_video((3, 8, 16, 16), video_seed)
    batch = np.asarray(pr.encode(variables, video, cfg))
    assert batch.shape == (3, 2, 16, 16)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(pr.encode(variables, video[i], cfg)), batch[i])


@pytest.mark.skipif(scamp5 is None, reason=SCAMP5_MISSING if scamp5 is None else "")
@MODEL
@given(st.sampled_from(sorted(CONFIGS)), st.integers(0, 2 ** 32 - 1),
       st.integers(0, 2 ** 32 - 1))
def test_noise_free_sensor_equals_encode(layers, model_seed, video_seed):
    cfg = CONFIGS[layers]
    variables = random_binary_model(cfg, model_seed)
    video = random_video((2, 8, 16, 16), video_seed)
    ideal = scamp5.NoiseModel.ideal(saturation=None)
    out = scamp5.simulate(variables, video, cfg, noise=ideal)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(pr.encode(variables, video, cfg)))
