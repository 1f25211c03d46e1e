"""Core library: quantizers, fused kernels, the scan encoder, encode, accounting, errors."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference import assert_close, conv5x5_reference, pooled_conv_reference

import pixelrnn_jax as pr
from pixelrnn_jax import accounting, ops, quantizers


def _video(b=2, t=16, side=64, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((b, t, side, side)),
                       jnp.float32)


# ---------------------------------------------------------------- quantizers

@pytest.mark.parametrize("m", [1.0, 2.0, 5.0])
def test_sign_surrogate_gradient_is_tanh_derivative(m):
    x = jnp.linspace(-3, 3, 101)
    g = jax.vmap(jax.grad(lambda v: quantizers.sign(v, m)))(x)
    expected = m * (1 - np.tanh(m * np.asarray(x)) ** 2)
    np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-5)
    # and numerically, against a finite difference of the proxy tanh(m x)
    eps = 1e-3
    fd = (np.tanh(m * (np.asarray(x) + eps)) - np.tanh(m * (np.asarray(x) - eps))) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-4)


def test_sign_values_and_zero():
    x = jnp.array([-2.0, -0.0, 0.0, 1e-9, 3.0])
    np.testing.assert_array_equal(quantizers.sign(x), [-1, 1, 1, 1, 1])
    np.testing.assert_array_equal(quantizers.sign(quantizers.sign(x)), quantizers.sign(x))


def test_heaviside_and_ternary():
    x = jnp.array([-1.0, -0.3, 0.0, 0.3, 1.0])
    np.testing.assert_array_equal(quantizers.heaviside(x), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(quantizers.ternary(x, 2.0, 0.5), [-1, 0, 0, 0, 1])
    g = jax.vmap(jax.grad(lambda v: quantizers.heaviside(v, 3.0)))(x)
    s = 1 / (1 + np.exp(-3 * np.asarray(x)))
    np.testing.assert_allclose(g, 3 * s * (1 - s), rtol=1e-5)
    np.testing.assert_array_equal(quantizers.numpy_sign([-2.0, -0.0, 0.0, 3.0]), [-1, 1, 1, 1])


def test_noise_before_quantizer_uses_explicit_key():
    x = jnp.zeros((1000,))
    assert quantizers.add_noise(x, 0.6, None) is x
    a = quantizers.add_noise(x, 0.6, jax.random.key(0))
    b = quantizers.add_noise(x, 0.6, jax.random.key(0))
    np.testing.assert_array_equal(a, b)
    assert 0.5 < float(jnp.std(a)) < 0.7


def test_one_optimizer_step_flips_a_binary_weight():
    cfg = pr.ModelConfig(frame_size=16, K=4)
    variables = pr.init(jax.random.key(0), cfg, 4)
    params = variables["params"]
    video = _video(4, 4, 16)
    label = jnp.arange(4) % 9
    tx = optax.sgd(5.0)

    def loss(p):
        logits = pr.PixelRNNModel(cfg).apply({"params": p}, video)
        return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()

    grads = jax.grad(loss)(params)
    g = grads["encoder"]["cnn_0"]["kernel"]
    assert float(jnp.abs(g).sum()) > 0, "no gradient reached the latent binary weights"
    new = optax.apply_updates(params, tx.update(grads, tx.init(params))[0])
    before = np.sign(params["encoder"]["cnn_0"]["kernel"]) >= 0
    after = np.sign(new["encoder"]["cnn_0"]["kernel"]) >= 0
    assert (before != after).sum() >= 1


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize("shape,exact", [((3, 16, 20), True), ((40, 8, 8), False),  # 1 chunk
                                         pytest.param((3, 16, 20), False,     # 2 chunks
                                                      marks=pytest.mark.slow),
                                         pytest.param((40, 8, 8), True, marks=pytest.mark.slow)])
def test_pooled_conv_matches_reference_forward_and_gradients(exact, shape):
    rng = np.random.default_rng(1)
    x = jnp.asarray(np.sign(rng.standard_normal(shape) + 0.2), jnp.float32)
    w = jnp.asarray(np.sign(rng.standard_normal((16, 5, 5))), jnp.float32)
    fast = lambda x, w: ops.pooled_conv(x, w, exact, True).reshape(x.shape)  # noqa: E731
    ref = lambda x, w: ops.tile(pooled_conv_reference(x, w))  # noqa: E731
    np.testing.assert_array_equal(fast(x, w), ref(x, w))
    g = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    ga = jax.grad(lambda x, w: jnp.sum(fast(x, w) * g), (0, 1))(x, w)
    gb = jax.grad(lambda x, w: jnp.sum(ref(x, w) * g), (0, 1))(x, w)
    for a, b in zip(ga, gb):
        assert_close(a, b)


@pytest.mark.parametrize("lead", [(2, 3), (2, 40)])  # 6 planes; 80 planes: chunked gradient
def test_conv5x5_matches_lax_conv_with_gradients(lead):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal(lead + (9, 7)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((5, 5)), jnp.float32)
    assert_close(ops.conv5x5(x, w), conv5x5_reference(x, w))
    g = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    ga = jax.grad(lambda x, w: jnp.sum(ops.conv5x5(x, w) * g), (0, 1))(x, w)
    gb = jax.grad(lambda x, w: jnp.sum(conv5x5_reference(x, w) * g), (0, 1))(x, w)
    for a, b in zip(ga, gb):   # the kernel gradient sums 80 planes: its scale is ~150
        assert_close(a, b)


def test_tile_layout_and_inverse():
    maps = jnp.asarray(np.random.default_rng(3).standard_normal((2, 16, 4, 5)))
    plane = np.asarray(ops.tile(maps))
    assert plane.shape == (2, 16, 20)
    for c in range(16):
        rb, cb = c % 4, c // 4
        np.testing.assert_array_equal(plane[:, rb * 4:(rb + 1) * 4, cb * 5:(cb + 1) * 5],
                                      maps[:, c])
    np.testing.assert_array_equal(ops.untile(ops.tile(maps)), maps)


# ---------------------------------------------------------------- encoder

@pytest.mark.parametrize("layers,K", [(1, 16), (1, 4), (2, 16), (2, 4)])
def test_encode_shapes(layers, K):
    cfg = pr.ModelConfig(cnn_layers=layers, K=K)
    variables = pr.init(jax.random.key(0), cfg, 16)
    out = pr.encode(variables, _video(2, 16), cfg)
    assert out.shape == (2, 16 // K, 64, 64)
    if layers == 1 and K == 16:   # a single video and the decoder: once (they compile anew)
        assert pr.encode(variables, _video(1, 16)[0], cfg).shape == (16 // K, 64, 64)
        assert pr.classify(variables, _video(2, 16), cfg).shape == (2, 9)


def test_encode_batch_equals_each_video_and_readout_is_integer():
    cfg = pr.ModelConfig(frame_size=16, K=4)
    variables = pr.init(jax.random.key(1), cfg, 8)
    video = _video(3, 8, 16, seed=3)
    batch = np.asarray(pr.encode(variables, video, cfg))
    for i in range(3):
        np.testing.assert_array_equal(batch[i], pr.encode(variables, video[i], cfg))
    np.testing.assert_array_equal(batch, np.round(batch))  # sums of +-1 products


def test_scan_encoder_traces_once():
    cfg = pr.ModelConfig(frame_size=16, K=4)
    variables = pr.init(jax.random.key(0), cfg, 8)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(v, x):
        return pr.PixelRNNModel(cfg).apply(v, x, method=pr.PixelRNNModel.encode)

    run(variables, _video(2, 8, 16, seed=1))
    run(variables, _video(2, 8, 16, seed=2))


def _numpy_pixelrnn(x, p, K):
    """Plain NumPy step-by-step PixelRNN (32 bit: sigmoid gate) on (t h w) inputs."""
    def conv(a, w):
        ap = np.pad(a, 2)
        return sum(w[i, j] * ap[i:i + a.shape[0], j:j + a.shape[1]]
                   for i in range(5) for j in range(5))
    outs = []
    for start in range(0, len(x), K):
        h = np.ones_like(x[0])
        for t in range(start, start + K):
            o = conv(x[t], p["w_o"]) + conv(h, p["u_o"])
            f = 1 / (1 + np.exp(-(conv(x[t], p["w_f"]) + conv(h, p["u_f"]) - p["theta"])))
            h = f * h
        outs.append(o)
    return np.stack(outs)


def test_32bit_pixelrnn_matches_numpy_step_by_step():
    cfg = pr.ModelConfig(cnn_layers=0, precision="32bit", frame_size=12, K=4)
    variables = pr.init(jax.random.key(2), cfg, 8)
    x = np.asarray(_video(1, 8, 12, seed=5))[0]
    cell = jax.tree.map(np.asarray, variables["params"]["encoder"]["cell"])
    cell["theta"] = np.float32(0.3)
    variables["params"]["encoder"]["cell"]["theta"] = jnp.float32(0.3)
    assert_close(pr.encode(variables, x, cfg), _numpy_pixelrnn(x, cell, 4), rtol=1e-4)


# ---------------------------------------------------------------- accounting

@pytest.mark.parametrize("layers,params,b1,b32", [(1, 501, 2.75, 88.0), (2, 902, 4.75, 152.0)])
def test_accounting_pixelrnn(layers, params, b1, b32):
    cfg = pr.ModelConfig(cnn_layers=layers)
    assert accounting.onsensor_params(cfg) == params
    assert accounting.feature_bytes_per_pixel(cfg, 1) == b1
    assert accounting.feature_bytes_per_pixel(cfg, 32) == b32
    assert accounting.readout_values_per_16_frames(cfg) == 4096


def test_accounting_two_layer_cnn_alone_is_802():
    cfg = pr.ModelConfig(cnn_layers=2)
    assert accounting.cnn_params(cfg) == 802


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("video,match", [
    (np.zeros((2, 16, 64), np.float32), "rank 3|frames must be"),
    (np.zeros((1, 2, 16, 64, 64), np.float32), "rank 5"),
    (np.zeros((2, 16, 32, 32), np.float32), "must be 64x64"),
    (np.zeros((2, 16, 64, 64), np.uint8), "float normalized"),
    (np.full((2, 16, 64, 64), np.nan, np.float32), "NaN"),
    (np.zeros((2, 12, 64, 64), np.float32), "multiple of K=16"),
])
def test_bad_video_is_named(video, match):
    cfg = pr.ModelConfig()
    with pytest.raises(ValueError, match=match):
        pr.check_video(video, cfg)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        pr.ModelConfig(cell="transformer")
    with pytest.raises(ValueError, match="precision must be"):
        pr.ModelConfig(precision="8bit")
    with pytest.raises(ValueError, match="cnn_layers"):
        pr.ModelConfig(cnn_layers=3)
    with pytest.raises(ValueError, match="decoder must be one of"):
        pr.ModelConfig(decoder="mlp")


def test_plain_decoder_is_the_linear_layer_on_the_readout():
    """decoder=plain: logits = W vec(readout) + b, PyTorch's U(+-1/sqrt(D)) initialisation;
    standardized: the same layer, blind to the readout's gain and offset."""
    from pixelrnn_jax.core.model import Decoder
    readout = jnp.asarray(np.random.default_rng(3).normal(size=(2, 1, 16, 16)), jnp.float32)
    plain = Decoder(pr.ModelConfig(decoder="plain"))
    v = plain.init(jax.random.key(0), readout)
    w, b = v["params"]["dense"]["kernel"], v["params"]["dense"]["bias"]
    assert w.shape == (256, 9) and float(jnp.abs(w).max()) <= 1 / 16
    assert_close(plain.apply(v, readout), readout.reshape(2, -1) @ w + b)
    assert not np.allclose(plain.apply(v, 3 * readout + 5), plain.apply(v, readout))
    std = Decoder(pr.ModelConfig())
    assert_close(std.apply(v, 3 * readout + 5), std.apply(v, readout), rtol=1e-4)
