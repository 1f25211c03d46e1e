"""Recurrent cells and camera baselines against plain NumPy implementations of their equations.

Every model here has no CNN (cnn_layers=0) and tiny planes, so the encoder path under test is
input binarization -> cell scan -> readout; the CNN is the core tests' business.
"""
from __future__ import annotations

import collections
import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pixelrnn_jax as P
from pixelrnn_jax.core import cells, model
from pixelrnn_jax.core.encoder import scan_cell

RNNS = ("srnn", "lstm", "gru", "mgu", "genrnn01", "genrnn11", "pixelrnn")
CAMERAS = ("raw", "difference", "event")
B, K, WINDOWS, SIDE = 2, 3, 2, 8
T = K * WINDOWS


def _cases():
    for name in RNNS + CAMERAS:
        for precision in cells.get_cell_spec(name).precisions:
            yield name, precision


CASES = list(_cases())


def _config(name, precision):
    return P.ModelConfig(cnn_layers=0, cell=name, precision=precision, K=K, frame_size=SIDE,
                         num_classes=3, delta=0.3)


# ------------------------------------------------------------------------------------------
# NumPy reference: the supplement's equations, frame by frame
# ------------------------------------------------------------------------------------------


def np_conv(x, w):
    """5x5 cross-correlation with zero padding 2 over the last two axes."""
    h, wd = x.shape[-2:]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(2, 2), (2, 2)])
    out = np.zeros(x.shape, np.float64)
    for dy in range(5):
        for dx in range(5):
            out += xp[..., dy:dy + h, dx:dx + wd] * w[dy, dx]
    return out


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def sgn(v):
    return np.where(v >= 0, 1.0, -1.0)


def hvs(v):
    return np.where(v > 0, 1.0, 0.0)


def ter(v, delta):
    return np.where(v > delta, 1.0, 0.0) - np.where(v < -delta, 1.0, 0.0)


def np_window(name, binary, p, x, delta, reference="first_frame"):
    """Readouts of one window x (k h w) from the equations; (h w), or (k h w) for cameras."""
    def cv(kernel, v):
        return np_conv(v, p[kernel])

    gate = sgn if binary else sig
    cand = sgn if binary else np.tanh
    # hidden states start at all ones, a camera's reference intensity at the window's first
    # frame (h_{-1} = x_0) or at 0
    h = np.ones(x.shape[1:])
    if name in CAMERAS:
        h = x[0].copy() if reference == "first_frame" else np.zeros(x.shape[1:])
    c = np.ones(x.shape[1:])
    outs = []
    for xt in x:
        if name == "srnn":                                         # S4-S6
            pre = cv("w_h", xt) + cv("u_h", h)
            o, h = pre, cand(pre)
        elif name == "lstm":                                       # S7-S12
            f = gate(cv("w_f", xt) + cv("u_f", h))
            i = gate(cv("w_i", xt) + cv("u_i", h))
            og = gate(cv("w_o", xt) + cv("u_o", h))
            ct = gate(cv("w_c", xt) + cv("u_c", h))
            c = f * c + i * ct
            if binary:
                c = sgn(c)
            h = og * (sgn(c) if binary else sig(c))
            o = h
        elif name == "gru":                                        # S13-S16
            z = gate(cv("w_z", xt) + cv("u_z", h))
            r = gate(cv("w_r", xt) + cv("u_r", h))
            ht = cand(cv("w_h", xt) + cv("u_h", r * h))
            h = (1 - z) * h + z * ht
            h = sgn(h) if binary else h
            o = h
        elif name == "mgu":                                        # S17-S19
            f = gate(cv("w_f", xt) + cv("u_f", h))
            ht = cand(cv("w_h", xt) + cv("u_h", f * h))
            h = (1 - f) * h + f * ht
            h = sgn(h) if binary else h
            o = h
        elif name.startswith("genrnn"):                            # S20-S23
            q = hvs if name == "genrnn01" else sgn
            psi = q if binary else sig
            o = cv("w_o", xt) + cv("u_o", h)
            f = psi(cv("w_f", xt) + cv("u_f", h) + p["b_f"])
            ht = psi(cv("w_h", xt) + cv("u_h", h) + p["b_h"])
            h = (1 - f) * h + f * ht
            if binary and name == "genrnn11":
                h = sgn(h)
        elif name == "pixelrnn":                                   # S25-S27
            o = cv("w_o", xt) + cv("u_o", h)
            h = gate(cv("w_f", xt) + cv("u_f", h) - p["theta"]) * h
        elif name == "raw":                                        # S1
            o = xt
        elif name == "difference":                                 # S2-S3
            o, h = ter(xt - h, delta), xt
        elif name == "event":                                      # S28-S30
            o = ter(xt - h, delta)
            f = (np.abs(xt - h) > delta).astype(float)
            h = f * xt + (1 - f) * h
        outs.append(o)
    return np.stack(outs) if cells.get_cell_spec(name).per_frame else outs[-1]


def np_encode(name, binary, params, video, delta, reference="first_frame"):
    """The encoder of a cnn_layers=0 model in NumPy: (b t h w) -> readouts."""
    spec = cells.get_cell_spec(name)
    x = np.asarray(video, np.float64)
    if binary and spec.binarize_input:
        x = sgn(x)
    p = {}
    for k, v in params.items():
        v = np.asarray(v, np.float64)
        p[k] = sgn(v) if (binary and k in spec.kernels) else v
    out = [[np_window(name, binary, p, x[i, j * K:(j + 1) * K], delta, reference)
            for j in range(x.shape[1] // K)] for i in range(x.shape[0])]
    out = np.asarray(out)
    return out.reshape(out.shape[0], -1, *out.shape[-2:])


# ------------------------------------------------------------------------------------------
# Shared, compiled-once models
# ------------------------------------------------------------------------------------------


BINARY_RNNS = [(n, "1bit") for n in RNNS if n != "pixelrnn"]  # PixelRNN: the core's tests
TRACES = collections.Counter()


def _variables(cfg):
    """Random variables of the right structure, without compiling `init`: latent kernels
    (at 32 bit scaled so sums stay moderate) and nonzero scalars, so every term bites."""
    shapes = jax.eval_shape(lambda: model.PixelRNNModel(cfg).init(
        jax.random.key(0), jnp.zeros((1, T, SIDE, SIDE))))
    leaves, tree = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    scale = 0.5 if cfg.binary else 0.3
    return jax.tree.unflatten(tree, [scale * jax.random.normal(k, leaf.shape)
                                     for k, leaf in zip(keys, leaves)])


@functools.lru_cache(maxsize=None)
def _compiled(name, precision, with_grad=False):
    """(config, variables, run) where run(variables, video) -> (readout, cell gradients).

    `run` is jitted once per case and fails if traced again. `with_grad` (binary RNNs) also
    returns the gradient of sum(sin(readout)) to the latent cell parameters (else None):
    a separate program, as the gated cells' gradients take long to compile.
    """
    cfg = _config(name, precision)
    with_grad = with_grad and (name, precision) in BINARY_RNNS

    def encode(variables, video):
        return model.PixelRNNModel(cfg).apply(variables, video,
                                              method=model.PixelRNNModel.encode)

    # chex.assert_max_traces keys its counter by the function's code, shared by every case
    # here, so the traces are counted per case instead
    @jax.jit
    def run(variables, video):
        TRACES[name, precision, with_grad] += 1
        assert TRACES[name, precision, with_grad] == 1, f"{name} {precision} traced again"
        if not with_grad:
            return encode(variables, video), None
        loss = lambda v: (jnp.sum(jnp.sin(encode(v, video))), encode(v, video))  # noqa: E731
        grads, out = jax.grad(loss, has_aux=True)(variables)
        return out, grads["params"]["encoder"]["cell"]

    return cfg, _variables(cfg), run


def _video(seed, side=SIDE):
    return jax.random.normal(jax.random.key(seed), (B, T, side, side), jnp.float32)


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,precision", CASES)
def test_cell_matches_numpy_equations(name, precision):
    cfg, variables, run = _compiled(name, precision)
    spec = cells.get_cell_spec(name)
    cell_params = variables["params"].get("encoder", {}).get("cell", {})
    for seed in (2, 3):   # the second call must reuse the first trace
        video = _video(seed)
        got, _ = run(variables, video)
        want = np_encode(name, cfg.binary, cell_params, video, cfg.delta)
        frames = T if spec.per_frame else WINDOWS
        chex.assert_shape(got, (B, frames, SIDE, SIDE))
        tol = 0 if cfg.binary else 2e-5
        np.testing.assert_allclose(np.asarray(got), want, rtol=tol, atol=tol,
                                   err_msg=f"{name} {precision} differs from its equations")
    assert TRACES[name, precision, False] == 1


@pytest.mark.parametrize("name,precision", CASES)
def test_readout_values(name, precision):
    cfg, variables, run = _compiled(name, precision)
    out, _ = run(variables, _video(4))
    chex.assert_tree_all_finite(out)
    values = set(np.unique(np.asarray(out)).tolist())
    if name in ("lstm", "gru", "mgu") and cfg.binary:
        assert values <= {-1.0, 1.0}
    if name in ("difference", "event"):
        assert values <= {-1.0, 0.0, 1.0}
    if name == "raw":
        np.testing.assert_array_equal(out, _video(4))


# the LSTM's and GRU's gradient programs take 30-50 s to compile: behind `slow`; MGU's
# shares their gates
@pytest.mark.parametrize("name,precision", [
    pytest.param(n, p, marks=pytest.mark.slow) if n in ("lstm", "gru") else (n, p)
    for n, p in BINARY_RNNS])
def test_surrogate_gradient_reaches_every_parameter(name, precision):
    _, variables, run = _compiled(name, precision, with_grad=True)
    _, grads = run(variables, _video(5))
    spec = cells.get_cell_spec(name)
    assert set(grads) == set(spec.kernels + spec.scalars)
    for k, g in grads.items():
        assert np.isfinite(np.asarray(g)).all(), (name, k)
        assert float(jnp.abs(g).sum()) > 0, f"{name} {precision}: no gradient to {k}"


@pytest.mark.parametrize("name", ["raw", "event", "difference", "gru"])
def test_classify_and_frame_logits(name):
    """RAW and the event camera score every frame (N = h w inputs) and classify with the mean
    of the frame logits; the difference camera and the RNNs decode all readouts at once."""
    spec = cells.get_cell_spec(name)
    cfg = _config(name, spec.precisions[0])
    variables = _variables(cfg)
    video = _video(8)
    kernel = variables["params"]["decoder"]["dense"]["kernel"]
    readout = T if spec.per_frame else WINDOWS
    n_in = SIDE * SIDE * (1 if spec.frame_decoder else readout)
    assert kernel.shape == (n_in, cfg.num_classes)
    logits = P.classify(variables, video, cfg)
    chex.assert_shape(logits, (B, cfg.num_classes))
    chex.assert_shape(P.classify(variables, video[0], cfg), (cfg.num_classes,))
    if spec.frame_decoder:
        per_frame = model.frame_logits(variables, video, cfg)
        chex.assert_shape(per_frame, (B, T, cfg.num_classes))
        np.testing.assert_allclose(per_frame.mean(axis=1), logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(P.decode(variables, P.encode(variables, video, cfg), cfg),
                                   logits, rtol=1e-5, atol=1e-5)
    else:
        with pytest.raises(ValueError, match="no per-frame logits"):
            model.frame_logits(variables, video, cfg)


@pytest.mark.parametrize("name", RNNS)
def test_one_scan_step_per_trace(name):
    """The recurrence is a lax.scan: tracing a K=6 window calls `step` a bounded number of
    times (the scan body, plus the readout of cells that read h_t), not once per frame."""
    calls = []
    spec = cells.get_cell_spec(name)

    def counting_step(*args):
        calls.append(1)
        return spec.step(*args)

    counted = dataclasses.replace(spec, step=counting_step)
    cfg = _config(name, "1bit").replace(K=6)
    p = {k: jnp.ones((5, 5)) for k in spec.kernels} | {k: jnp.zeros(()) for k in spec.scalars}
    jaxpr = jax.make_jaxpr(lambda x: scan_cell(counted, p, x, cfg.context, cfg.K))(
        jnp.ones((12, 1, 8, 8)))
    assert len(calls) <= 2
    assert "scan" in str(jaxpr)


@pytest.mark.parametrize("name", RNNS)
def test_every_noise_site_is_used(name):
    """Noise-aware training adds noise at the sites a cell lists in `gate_sites` and at the
    readout "o"; each must change the cell's step (or its readout)."""
    spec = cells.get_cell_spec(name)
    cfg = _config(name, "32bit")
    ctx = cfg.context
    keys = jax.random.split(jax.random.key(9), len(spec.kernels) + 2)
    p = {k: 0.3 * jax.random.normal(key, (5, 5)) for k, key in zip(spec.kernels, keys)}
    p |= {k: jnp.asarray(0.1) for k in spec.scalars}
    x = jax.random.normal(keys[-2], (1, 1, SIDE, SIDE))
    terms_t = jax.tree.map(lambda a: a[:, 0], spec.frame_terms(p, x, ctx))
    state = spec.init_state(p, (1, SIDE, SIDE), ctx, terms_t)
    noise = jax.random.normal(keys[-1], (1, SIDE, SIDE))
    # the step reports the pre-activation of exactly the sites it declares
    assert sorted(spec.step(p, state, terms_t, None, ctx)[1]) == sorted(spec.gate_sites)
    for site in spec.noise_sites:
        fn = spec.output if site == "o" else (lambda *a: spec.step(*a)[0])
        clean = jax.tree.leaves(fn(p, state, terms_t, None, ctx))
        noisy = jax.tree.leaves(fn(p, state, terms_t, {site: noise}, ctx))
        assert any(not np.allclose(a, b) for a, b in zip(clean, noisy)), (name, site)


@pytest.mark.parametrize("name", CAMERAS)
def test_cameras_declare_no_gate_site(name):
    spec = cells.get_cell_spec(name)
    ctx = _config(name, spec.precisions[0]).context
    x = jnp.zeros((1, 1, SIDE, SIDE))
    terms_t = jax.tree.map(lambda a: a[:, 0], spec.frame_terms({}, x, ctx))
    state = spec.init_state({}, (1, SIDE, SIDE), ctx, terms_t)
    assert spec.gate_sites == () and spec.step({}, state, terms_t, None, ctx)[1] == {}


def test_genrnn_regimes_agree_at_32bit_and_differ_binary():
    x = _video(6)
    a32, b32 = (_compiled(n, "32bit") for n in ("genrnn01", "genrnn11"))
    np.testing.assert_array_equal(a32[2](a32[1], x)[0], b32[2](a32[1], x)[0])
    a1, b1 = (_compiled(n, "1bit") for n in ("genrnn01", "genrnn11"))
    assert not np.array_equal(a1[2](a1[1], x)[0], b1[2](a1[1], x)[0])


def test_cameras_see_intensities_not_signs():
    """A change smaller than delta gives no difference-camera output after the first frame."""
    cfg, variables, run = _compiled("difference", "1bit")
    base = _video(7)[:, :1]
    video = base + 0.1 * jnp.arange(T, dtype=jnp.float32)[None, :, None, None] / T
    out = np.asarray(run(variables, video)[0]).reshape(B, WINDOWS, K, SIDE, SIDE)
    assert not out[:, :, 1:].any()


@pytest.mark.parametrize("name", ["difference", "event"])
def test_camera_reference_first_frame_or_zero(name):
    """The paper's cameras start from the first frame's reference (frame 0 emits nothing);
    camera_reference="zero" starts from 0 (frame 0 reports each pixel's polarity)."""
    video = _video(8)
    for reference in ("first_frame", "zero"):
        cfg = _config(name, "1bit").replace(camera_reference=reference)
        variables = _variables(cfg)
        got = np.asarray(P.encode(variables, video, cfg))
        np.testing.assert_array_equal(got, np_encode(name, True, {}, video, cfg.delta,
                                                     reference))
        first = got.reshape(B, WINDOWS, K, SIDE, SIDE)[:, :, 0]
        assert (not first.any()) if reference == "first_frame" else first.any()
    with pytest.raises(ValueError, match="camera_reference must be one of"):
        _config(name, "1bit").replace(camera_reference="last")


@pytest.mark.parametrize("kwargs,match", [
    (dict(cell="raw", precision="1bit", cnn_layers=0), "exists only at precision"),
    (dict(cell="difference", precision="32bit", cnn_layers=0), "exists only at precision"),
    (dict(cell="event", cnn_layers=1), "set cnn_layers=0"),
    (dict(cell="lsmt"), "unknown cell"),
])
def test_bad_configs_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.ModelConfig(**kwargs)


def test_registry_lists_every_baseline():
    assert set(RNNS + CAMERAS) <= set(cells.CELLS)
    for name in RNNS:
        assert cells.get_cell_spec(name).uses_cnn
    for name in CAMERAS:
        spec = cells.get_cell_spec(name)
        assert spec.per_frame and not spec.uses_cnn and not spec.kernels
    assert [n for n in cells.CELLS if cells.get_cell_spec(n).frame_accuracy] == ["raw"]


@pytest.mark.parametrize("name", ["pixelrnn", "genrnn11"])
def test_readout_input_term_is_computed_at_the_readout_frame_only(name):
    """w_o * x_t enters only the readout: `output_terms` sees the readout frame's planes
    alone, and the readout equals the one from every frame's terms (the intermediates
    path)."""
    spec = cells.get_cell_spec(name)
    seen = []

    def counting_output_terms(p, x, ctx):
        seen.append(x.shape)
        return spec.output_terms(p, x, ctx)

    counted = dataclasses.replace(spec, output_terms=counting_output_terms)
    cfg = _config(name, "1bit").replace(K=4)
    keys = jax.random.split(jax.random.key(3), len(spec.kernels) + 1)
    p = {k: jnp.sign(jax.random.normal(key, (5, 5))) for k, key in zip(spec.kernels, keys)}
    p |= {k: jnp.asarray(0.1) for k in spec.scalars}
    x = jnp.sign(jax.random.normal(keys[-1], (8, 2, 8, 8)))
    fast = scan_cell(counted, p, x, cfg.context, cfg.K)
    assert seen == [(4, 8, 8)]     # 2 windows x 2 videos, one frame each
    full, _ = scan_cell(spec, p, x, cfg.context, cfg.K, intermediates=True)
    np.testing.assert_array_equal(fast, full)
