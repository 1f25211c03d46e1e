"""Weight planes: layout, export -> import round trips (npz and PGM), and clean errors."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import shared_file
from test_scamp5 import SMALL_INCREMENT, TWO_LAYERS, _random_binary_model, _video

import pixelrnn_jax as pr
from pixelrnn_jax import authors_files
from pixelrnn_jax.sensor.scamp5 import (
    NoiseModel,
    WeightPlanes,
    export_weight_planes,
    import_weight_planes,
    layout,
    simulate,
    weight_planes,
)
from pixelrnn_jax.sensor.scamp5.planes import from_official, to_official

CFG = TWO_LAYERS  # shares compiled programs with test_scamp5


@pytest.fixture(scope="module")
def variables():
    return _random_binary_model(CFG, 4)


def _sign(x):
    return np.where(np.asarray(x) >= 0, 1, -1)


def _assert_same(a: WeightPlanes, b: WeightPlanes):
    assert a.cnn_layers == b.cnn_layers
    for x, y in zip(a.cnn + a.cnn_threshold + (a.cell, a.theta),
                    b.cnn + b.cnn_threshold + (b.cell, b.theta)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y)


def test_planes_hold_each_blocks_kernel(variables):
    wp = weight_planes(variables, CFG)
    enc = variables["params"]["encoder"]
    s = CFG.plane_size
    assert wp.cnn[0].shape == (25, 4 * s, 4 * s) and wp.cnn[0].dtype == jnp.int8
    stack = np.asarray(wp.cnn[1])
    kern = _sign(enc["cnn_1"]["kernel"])
    for t, (dy, dx) in enumerate(layout.TAPS):
        for by in range(4):
            for bx in range(4):
                block = stack[t, by * s:(by + 1) * s, bx * s:(bx + 1) * s]
                assert np.all(block == kern[by + 4 * bx, dy, dx])
    cell = np.asarray(wp.cell)
    for name, (by, bx) in layout.CELL_BLOCKS.items():
        expected = _sign(enc["cell"][name])[tuple(np.array(layout.TAPS).T)]
        assert np.array_equal(cell[:, by * s, bx * s], expected)
    outer = np.ones((4, 4), bool)
    outer[1:3, 1:3] = False
    assert np.all(cell[:, ::s, ::s][:, outer] == 0)
    # the header / text-format order: bottom kernel row first
    assert layout.TAPS[:2] == ((4, 0), (4, 1)) and layout.TAPS[-1] == (0, 4)


@pytest.mark.parametrize("fmt", ["npz", "pgm", "header"])
def test_export_import_round_trip(variables, tmp_path, fmt):
    wp = weight_planes(variables, CFG)
    written = export_weight_planes(variables, tmp_path, CFG)
    assert sorted(p.name for p in written) == ["cell.pgm", "cnn_0.pgm", "cnn_1.pgm",
                                               "weight_planes.npz", "weights.h"]
    back = import_weight_planes(tmp_path, fmt=fmt, block=CFG.plane_size)
    _assert_same(back, wp)
    kernels = back.kernels()
    enc = variables["params"]["encoder"]
    for i in range(CFG.cnn_layers):
        assert np.array_equal(kernels[f"cnn_{i}"], _sign(enc[f"cnn_{i}"]["kernel"]))
    for name in layout.CELL_BLOCKS:
        assert np.array_equal(kernels[name], _sign(enc["cell"][name]))
    # the deployed weights give the same readout as the latent ones
    video = _video(CFG, 2, 8, seed=9)
    np.testing.assert_array_equal(pr.encode(back.to_variables(), video, CFG),
                                  pr.encode(variables, video, CFG))
    if fmt == "npz":
        ideal = NoiseModel.ideal()
        np.testing.assert_array_equal(
            simulate(back, video, CFG, noise=ideal, options=SMALL_INCREMENT),
            simulate(variables, video, CFG, noise=ideal, options=SMALL_INCREMENT))


def test_header_slots_are_the_blocks(variables, tmp_path):
    """The C++ header's kernel slot n holds block (n // 4, n % 4) in the planes' tap order."""
    wp = weight_planes(variables, CFG)
    ow = to_official(wp)
    s = CFG.plane_size
    for name, stack in (("conv1", wp.cnn[0]), ("conv2", wp.cnn[1])):
        groups = authors_files.conv_to_groups(getattr(ow, name))
        vals = np.asarray(stack)[:, ::s, ::s]
        for n, group in enumerate(groups):
            assert group == list(vals[:, n // 4, n % 4])
    vals = np.asarray(wp.cell)[:, ::s, ::s]
    for name, slot in authors_files.HIDDEN_SLOTS.items():
        assert layout.CELL_BLOCKS[name] == divmod(slot, 4)
        want = list(vals[:, slot // 4, slot % 4])
        assert authors_files.kernel_to_values(getattr(ow, name)) == want
    _assert_same(from_official(ow, s), wp)


def test_authors_weights_on_the_noise_free_program():
    """The authors' lip-reading weights on their noise-free reference video: the simulated
    chip reproduces their o_t to the stored precision."""
    ref = dict(np.load(shared_file("tulips_reference_sample.npz")))
    ow = authors_files.load_weights_text(shared_file("official_weights/lip_iw10.txt"))
    cfg = pr.ModelConfig(frame_size=64, K=16, cnn_layers=ow.cnn_layers)
    video = np.where(ref["binarized"], 1.0, -1.0).astype(np.float32)  # (1, 16, 64, 64)
    video = np.concatenate([video, video])                             # batch 2, as elsewhere
    out = simulate(from_official(ow), video, cfg, noise=NoiseModel.ideal(saturation=None))
    stored = ref["ft_ot"][:, -1, 64:128].astype(np.float32)           # o_t of the last frame
    coded = np.floor(np.clip(np.asarray(out[:1, 0]) * 10 + 127, 0, 255))
    np.testing.assert_array_equal(coded, stored)


def test_chip_sized_mosaic(tmp_path):
    cfg = pr.ModelConfig()
    export_weight_planes(_random_binary_model(cfg, 3), tmp_path, cfg)
    header = (tmp_path / "cnn_0.pgm").read_bytes()[:600].decode("latin-1")
    assert "\n1280 1280\n255\n" in header and "threshold: 1.0\n" in header
    assert import_weight_planes(tmp_path / "weight_planes.npz").cell.shape == (25, 256, 256)


def test_import_errors(variables, tmp_path):
    with pytest.raises(FileNotFoundError, match="export_weight_planes"):
        import_weight_planes(tmp_path / "missing")
    with pytest.raises(ValueError, match="config"):
        export_weight_planes(variables, tmp_path)
    export_weight_planes(variables, tmp_path, CFG)
    with pytest.raises(ValueError, match="fmt"):
        import_weight_planes(tmp_path, fmt="txt")
    with pytest.raises(ValueError, match="block"):
        import_weight_planes(tmp_path, fmt="header")
    # a PGM with a level that is no weight
    pgm = tmp_path / "cnn_0.pgm"
    data = bytearray(pgm.read_bytes())
    data[-1] = 7
    pgm.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="levels"):
        import_weight_planes(tmp_path, fmt="pgm")
    # planes that are not constant over a block
    with np.load(tmp_path / "weight_planes.npz") as z:
        arrays = dict(z)
    arrays["cnn_1"][3, 5, 5] *= -1
    np.savez(tmp_path / "weight_planes.npz", **arrays)
    with pytest.raises(ValueError, match="constant"):
        import_weight_planes(tmp_path)
    export_weight_planes(variables, tmp_path, CFG)
    (tmp_path / "cell.pgm").unlink()
    with pytest.raises(FileNotFoundError, match="cell.pgm"):
        import_weight_planes(tmp_path, fmt="pgm")
