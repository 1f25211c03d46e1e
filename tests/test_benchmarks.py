"""The benchmarks' bookkeeping: which figures are compared with which, without timing
anything that matters (the figures themselves live in benchmarks/, never in tests)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import model_speed  # noqa: E402
import throughput  # noqa: E402

# A stand-in for the PyTorch peer: each form's figures from a table, `compiled` fails as
# torch.compile does without a C++ toolchain.
FAKE_PEER = r"""
import json, sys
mode = sys.argv[sys.argv.index("--mode") + 1]
if mode == "compiled":
    sys.exit("RuntimeError: no C++ compiler")
train, encode = {"eager": (400.0, 100.0), "batched": (900.0, 300.0),
                 "compiled-batched": (300.0, 250.0)}[mode]
print(json.dumps({"mode": mode, "train_step_ms": train, "encode_ms": encode,
                  "train_videos_per_s": 32e3 / train, "encode_frames_per_s": 512e3 / encode}))
"""


def test_each_torch_form_is_compared_with_the_jax_figures_timed_beside_it(tmp_path, monkeypatch):
    peer = tmp_path / "torch_reference.py"
    peer.write_text(FAKE_PEER)
    # the JAX figures drift: 100 ms beside eager, 200 beside batched, 50 beside compiled-batched
    beside = iter([0.100, 0.010, 0.200, 0.020, 0.050, 0.005])
    monkeypatch.setattr(throughput, "_median_time", lambda fn, repeats: next(beside))
    out = {"train_step_ms": 1.0, "train_videos_per_s": 1.0, "encode_frames_per_s": 1.0}
    throughput.compare_torch(out, peer, 32, 16, 2, 1, {"train": None, "encode": None})
    modes = {m["mode"]: m for m in out["torch_modes"]}
    assert "no C++ compiler" in modes["compiled"]["error"]
    assert modes["eager"]["jax_train_step_ms_beside"] == 100.0
    assert modes["eager"]["train_speedup"] == 4.0 and modes["eager"]["encode_speedup"] == 10.0
    assert modes["batched"]["train_speedup"] == 4.5 and modes["batched"]["encode_speedup"] == 15.0
    assert modes["compiled-batched"]["train_speedup"] == 6.0
    # fastest relative to JAX: eager for both, though compiled-batched trains fastest in
    # absolute terms (timed while the machine was faster)
    assert out["torch_best_train_mode"] == out["torch_best_encode_mode"] == "eager"
    assert out["train_speedup_vs_best_torch"] == 4.0
    assert out["encode_speedup_vs_best_torch"] == 10.0
    assert out["train_speedup_vs_torch_eager"] == 4.0


def test_no_torch_form_that_runs_is_one_line(tmp_path):
    peer = tmp_path / "torch_reference.py"
    peer.write_text("import sys; sys.exit('ImportError: No module named torch')")
    out = {"train_step_ms": 1.0, "train_videos_per_s": 1.0, "encode_frames_per_s": 1.0}
    with pytest.raises(SystemExit, match="no form of the PyTorch peer ran"):
        throughput.compare_torch(out, peer, 32, 16, 2, 1, {"train": None, "encode": None})


def test_models_are_timed_in_interleaved_rounds(monkeypatch):
    calls = []
    clock = iter(range(1000))
    monkeypatch.setattr(model_speed.time, "perf_counter", lambda: float(next(clock)))
    fns = {name: {"train_step_ms": (lambda n=name: calls.append(n))} for name in "ab"}
    ms = model_speed._interleaved(fns, repeats=2, rounds=3)
    assert calls == ["a", "a", "b", "b"] * 3
    assert json.dumps(ms) == json.dumps({"a": {"train_step_ms": 1000.0},
                                         "b": {"train_step_ms": 1000.0}})


def test_a_forms_ratio_is_the_median_over_its_rounds(tmp_path, monkeypatch):
    peer = tmp_path / "torch_reference.py"
    peer.write_text(FAKE_PEER)
    # eager beside 100, 400, 200 ms of JAX training over three rounds: ratios 4, 1, 2
    train = {"eager": iter([0.100, 0.400, 0.200])}
    state = {}

    def fake_run(reference, mode, *args):
        state["mode"] = mode
        return throughput.__dict__["_real_run_torch"](reference, mode, *args)

    def fake_time(fn, repeats):
        return next(train["eager"]) if state["mode"] == "eager" and fn == "train" else 0.1

    monkeypatch.setitem(throughput.__dict__, "_real_run_torch", throughput.run_torch)
    monkeypatch.setattr(throughput, "run_torch", fake_run)
    monkeypatch.setattr(throughput, "_median_time", fake_time)
    out = {"train_step_ms": 1.0, "train_videos_per_s": 1.0, "encode_frames_per_s": 1.0}
    throughput.compare_torch(out, peer, 32, 16, 2, 1, {"train": "train", "encode": "encode"},
                             rounds=3)
    eager = next(m for m in out["torch_modes"] if m["mode"] == "eager")
    assert eager["rounds"] == 3 and eager["train_speedup"] == 2.0
    assert eager["jax_train_step_ms_beside"] == 200.0
