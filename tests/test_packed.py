"""Binary inference as bit logic: the packed encoder equals the float path bit for bit."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import pixelrnn_jax as pr
from pixelrnn_jax.core import packed, packed_encoder


def _case(cell: str, layers: int, K: int, seed: int, side: int = 64):
    """Random weights (away from init, so every sign pattern occurs) and a random video."""
    rng = np.random.default_rng(seed)
    cfg = pr.ModelConfig(cell=cell, cnn_layers=layers, K=K, frame_size=side)
    frames = 2 * K if K < 16 else K
    video = rng.standard_normal((2, frames, side, side)).astype(np.float32)
    variables = pr.init(jax.random.key(seed), cfg, frames)
    key = jax.random.key(seed + 1)
    variables = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(key, a.shape, a.dtype),
                             variables)
    return cfg, variables, video


def _assert_packed_equals_float(cell, layers, K, seed):
    cfg, variables, video = _case(cell, layers, K, seed)
    float_path = np.asarray(pr.encode(variables, video, cfg, packed=False))
    bit_logic = np.asarray(pr.encode(variables, video, cfg, packed=True))
    _, counts = np.unique(float_path, return_counts=True)
    assert counts.max() < 0.95 * float_path.size, "a near-constant readout proves nothing"
    np.testing.assert_array_equal(bit_logic, float_path)


@pytest.mark.parametrize("cell,layers,K", [("pixelrnn", 1, 16), ("lstm", 2, 4),
                                           pytest.param("gru", 1, 4, marks=pytest.mark.slow),
                                           ("genrnn01", 2, 16)])
def test_packed_encode_is_bit_exact(cell, layers, K):
    _assert_packed_equals_float(cell, layers, K, seed=layers * 10 + K)


@pytest.mark.slow
@pytest.mark.parametrize("K", [4, 16])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", packed_encoder.PACKED_CELLS)
def test_packed_encode_is_bit_exact_for_every_binary_cell(cell, layers, K):
    for seed in (0, 1):
        _assert_packed_equals_float(cell, layers, K, seed)


def test_pack_round_trip_and_bit_counts():
    rng = np.random.default_rng(0)
    bits = rng.random((3, 70)) < 0.5
    words = packed.pack(jax.numpy.asarray(bits), axis=-1)
    np.testing.assert_array_equal(np.asarray(packed.unpack(words, 70)), bits)


def test_packed_path_is_chosen_only_where_exact():
    cfg = pr.ModelConfig()
    assert packed_encoder.unsupported(cfg) is None
    assert "binary" in packed_encoder.unsupported(pr.ModelConfig(precision="32bit"))
    assert "bit-logic" in packed_encoder.unsupported(pr.ModelConfig(cell="event", cnn_layers=0))
    noisy = pr.ModelConfig(noise_cnn=0.5)
    assert "noise" in packed_encoder.unsupported(noisy, rng=jax.random.key(0))
    assert packed_encoder.unsupported(noisy) is None       # no key: deterministic, exact
    with pytest.raises(ValueError, match="packed=True, but .*not binary"):
        pr.encode(pr.init(jax.random.key(0), pr.ModelConfig(precision="32bit"), 16),
                  np.zeros((1, 16, 64, 64), np.float32), pr.ModelConfig(precision="32bit"),
                  packed=True)


def test_packed_encode_has_the_float_paths_gradient():
    cfg, variables, video = _case("pixelrnn", 1, 4, seed=5, side=16)
    loss = lambda v, packed: jax.numpy.sum(  # noqa: E731
        pr.encode(v, video, cfg, packed=packed) ** 2)
    g_packed = jax.grad(loss)(variables, True)
    g_float = jax.grad(loss)(variables, False)
    for a, b in zip(jax.tree.leaves(g_packed), jax.tree.leaves(g_float)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    assert any(float(np.abs(a).max()) > 0 for a in jax.tree.leaves(g_packed))
