"""Throughput of binary 1-CNN + PixelRNN (batch 32, 16 frames of 64x64, 9 classes).

    python benchmarks/throughput.py --json [--compare-torch] [--models=all]

Prints one JSON line: train_videos_per_s (jitted step: forward, backward, Adam),
encode_frames_per_s (`encode` on the float path) and encode_packed_frames_per_s (the binary
model's bit logic on packed words, bit-exact; with its bit operations per frame and the
fraction of this CPU's integer peak they reach), sensor_frames_per_s (the simulated SCAMP-5
program), compile seconds, JAX version and device, and the peak resident memory of a
process that only runs the train step (`train_peak_rss_mb`) and of one that only encodes
(`encode_peak_rss_mb`). Each figure is the median of --repeats timed runs after a warm-up.

--compare-torch runs every form of the PyTorch peer that works here
(../shared/bench/torch_reference.py --mode=eager|batched|compiled|compiled-batched: same
model, sizes and thread count) in the same invocation, reports each under `torch_modes`, and
gives the ratios against the fastest form per figure: `train_speedup_vs_best_torch`,
`encode_speedup_vs_best_torch` (our fastest exact encode path) and, for the record, the
ratios against the eager form. Each form's ratio is against the JAX figures timed again right
after it (`jax_train_step_ms_beside`, `jax_encode_ms_beside`): a shared machine's speed
drifts by tens of percent within minutes, and the fastest form is the one with the smallest
ratio. --models=all (or a list) adds every Table S4 model's train
step and encode (`benchmarks/model_speed.py`) and how two vmapped sweep members of the
binary LSTM cost against one.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _median_time(fn, repeats):
    import jax
    import numpy as np
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def integer_peak_bit_ops_per_s() -> float | None:
    """This CPU's peak of bitwise vector logic, in bit operations per second: cores x clock
    x 3 vector integer ALU ports (AMD Zen and Intel since Haswell) x the vector width (256
    bits with AVX2, 512 with AVX-512). None where /proc/cpuinfo does not say (not Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    mhz = [float(ln.split(":")[1]) for ln in info.splitlines() if ln.startswith("cpu MHz")]
    flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "").split()
    if not mhz:
        return None
    width = 512 if "avx512f" in flags else 256 if "avx2" in flags else 128
    cores = len(os.sched_getaffinity(0))
    return float(cores * max(mhz) * 1e6 * 3 * width)


def measure(batch: int, frames: int, repeats: int) -> tuple[dict, dict]:
    """(figures, {"train": fn, "encode": fn}): the compiled train step and fastest exact
    encode, to time again beside each PyTorch form (`compare_torch`)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from model_speed import interleaved_seconds

    import pixelrnn_jax as pr
    from pixelrnn_jax import scamp5
    from pixelrnn_jax.core import packed_encoder
    from pixelrnn_jax.training.steps import classification_loss, make_optimizer, train_step

    cfg = pr.ModelConfig(cnn_layers=1, cell="pixelrnn", precision="1bit", num_classes=9)
    rng = np.random.default_rng(0)
    video = jnp.asarray(rng.standard_normal((batch, frames, 64, 64)), jnp.float32)
    label = jnp.asarray(np.arange(batch) % 9, jnp.int32)
    params = pr.init(jax.random.key(0), cfg, frames)["params"]
    tx = make_optimizer(1e-3)
    opt_state = tx.init(params)
    step = jax.jit(partial(train_step, loss_fn=classification_loss(cfg), tx=tx))
    batch_d = {"video": video, "label": label}
    key = jax.random.key(1)

    t0 = time.perf_counter()
    jax.block_until_ready(step(params, opt_state, batch_d, key))
    train_compile = time.perf_counter() - t0
    jax.block_until_ready(step(params, opt_state, batch_d, key))
    train_s = _median_time(lambda: step(params, opt_state, batch_d, key), repeats)

    variables = {"params": params}
    encoders = {"float": partial(pr.encode, variables, video, cfg, packed=False),
                "packed": partial(pr.encode, variables, video, cfg, packed=True)}
    encode_compile = {}
    for name, fn in encoders.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        encode_compile[name] = time.perf_counter() - t0
        jax.block_until_ready(fn())
    # the two paths alternate, call by call: their ratio holds while the machine's speed drifts
    encode_s = {name: t["encode"] for name, t in interleaved_seconds(
        {name: {"encode": fn} for name, fn in encoders.items()}, 1, max(repeats, 5)).items()}
    bit_ops = packed_encoder.bit_ops_per_frame(params, video.shape, cfg)
    packed_fps = batch * frames / encode_s["packed"]
    peak = integer_peak_bit_ops_per_s()

    out = {
        "impl": "pixelrnn_jax", "jax": jax.__version__, "device": str(jax.devices()[0]),
        "platform": jax.devices()[0].platform, "batch": batch, "frames": frames,
        "train_step_ms": round(train_s * 1e3, 2),
        "train_videos_per_s": round(batch / train_s, 2),
        "train_compile_s": round(train_compile, 2),
        "encode_ms": round(encode_s["float"] * 1e3, 2),
        "encode_frames_per_s": round(batch * frames / encode_s["float"], 1),
        "encode_compile_s": round(encode_compile["float"], 2),
        "encode_packed_ms": round(encode_s["packed"] * 1e3, 2),
        "encode_packed_frames_per_s": round(packed_fps, 1),
        "encode_packed_compile_s": round(encode_compile["packed"], 2),
        "packed_speedup_vs_float": round(encode_s["float"] / encode_s["packed"], 2),
        "packed_bit_ops_per_frame": round(bit_ops),
        "cpu_integer_peak_bit_ops_per_s": peak,
        "packed_fraction_of_integer_peak": (round(bit_ops * packed_fps / peak, 4)
                                            if peak else None),
    }
    # the chip-mode train step (ModelConfig.sensor="chip": the chip program's forward pass
    # and its calibrated noise), same batch, as a ratio to the ideal step
    if frames % 16 == 0:
        chip = cfg.replace(sensor="chip")
        chip_params = pr.init(jax.random.key(0), chip, frames)["params"]
        chip_step = jax.jit(partial(train_step, loss_fn=classification_loss(chip), tx=tx))
        chip_state = tx.init(chip_params)
        jax.block_until_ready(chip_step(chip_params, chip_state, batch_d, key))
        # the two steps alternate, call by call, for a ratio that holds while speed drifts
        t = interleaved_seconds(
            {"chip": {"step": lambda: chip_step(chip_params, chip_state, batch_d, key)},
             "ideal": {"step": lambda: step(params, opt_state, batch_d, key)}},
            1, max(repeats, 5))
        chip_s, ideal_s = t["chip"]["step"], t["ideal"]["step"]
        out["train_step_chip_ms"] = round(chip_s * 1e3, 2)
        out["train_step_ideal_beside_chip_ms"] = round(ideal_s * 1e3, 2)
        out["chip_train_step_vs_ideal"] = round(chip_s / ideal_s, 2)
    noise = scamp5.NoiseModel()
    sim = lambda: scamp5.simulate(variables, video, cfg, noise=noise,  # noqa: E731
                                  rng=jax.random.key(2))
    t0 = time.perf_counter()
    jax.block_until_ready(sim())
    out["sensor_compile_s"] = round(time.perf_counter() - t0, 2)
    sensor_s = _median_time(sim, repeats)
    out["sensor_frames_per_s"] = round(batch * frames / sensor_s, 1)
    out["sensor_noise"] = "on"
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    fastest = "packed" if encode_s["packed"] < encode_s["float"] else "float"
    return out, {"train": lambda: step(params, opt_state, batch_d, key),
                 "encode": encoders[fastest]}


TORCH_MODES = ("eager", "batched", "compiled", "compiled-batched")


def run_torch(reference: Path, mode: str, batch: int, frames: int, threads: int,
              repeats: int) -> dict:
    """One form of the PyTorch peer in a subprocess: its JSON, or {"error": ...} when the
    form does not run here (e.g. torch.compile without a C++ toolchain)."""
    cmd = [sys.executable, str(reference), "--batch", str(batch), "--frames", str(frames),
           "--threads", str(threads), "--repeats", str(repeats), "--mode", mode]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        last = (res.stderr.strip().splitlines() or ["failed"])[-1]
        return {"mode": mode, "error": last[-300:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def peak_rss(part: str, batch: int, frames: int) -> float:
    """Peak resident memory (MB) of a fresh process that only runs `part` (train or
    encode): what that step needs, apart from everything else this benchmark holds."""
    # VmHWM, not getrusage: a child's ru_maxrss starts from the forking parent's
    res = subprocess.run([sys.executable, __file__, f"--probe={part}", f"--batch={batch}",
                          f"--frames={frames}"], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"error: the {part} memory probe failed:\n{res.stderr[-2000:]}")
    return round(float(res.stdout.strip().splitlines()[-1]), 1)


def rss_probe(part: str, batch: int, frames: int) -> None:
    """Runs only the train step or only `encode` of the benchmark's model, twice."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import pixelrnn_jax as pr
    from pixelrnn_jax.training.steps import classification_loss, make_optimizer, train_step

    cfg = pr.ModelConfig()
    video = jnp.asarray(np.random.default_rng(0).standard_normal((batch, frames, 64, 64)),
                        jnp.float32)
    params = pr.init(jax.random.key(0), cfg, frames)["params"]
    if part == "train":
        tx = make_optimizer(1e-3)
        step = jax.jit(partial(train_step, loss_fn=classification_loss(cfg), tx=tx))
        b = {"video": video, "label": jnp.asarray(np.arange(batch) % 9, jnp.int32)}
        opt_state = tx.init(params)
        for _ in range(2):
            jax.block_until_ready(step(params, opt_state, b, jax.random.key(1)))
    elif part == "encode":
        for _ in range(2):
            jax.block_until_ready(pr.encode({"params": params}, video, cfg))
    else:
        raise SystemExit(f"unknown part {part!r}")


def _beside(m: dict, repeats, jax_calls) -> dict:
    """One run of a PyTorch form with the JAX figures timed right after it, and the ratios."""
    jax_train = _median_time(jax_calls["train"], repeats) * 1e3
    jax_encode = _median_time(jax_calls["encode"], repeats) * 1e3
    return dict(m, jax_train_step_ms_beside=round(jax_train, 2),
                jax_encode_ms_beside=round(jax_encode, 2),
                train_speedup=round(m["train_step_ms"] / jax_train, 2),
                encode_speedup=round(m["encode_ms"] / jax_encode, 2))


def compare_torch(out: dict, reference: Path, batch, frames, threads, repeats,
                  jax_calls: dict, rounds: int = 1) -> dict:
    """Every PyTorch form, `rounds` times, each run followed at once by the JAX train step
    and fastest encode timed again (`jax_calls`): on a shared machine whose speed drifts by
    tens of percent within minutes, each form is compared with the JAX figures measured
    beside it, and a form's ratio is the median over its rounds (its figures: the round of
    that median). The headline ratios are against the form that comes out fastest relative
    to JAX (the smallest ratio), not the fastest in absolute terms."""
    runs = {mode: [] for mode in TORCH_MODES}
    for _ in range(rounds):
        for mode in TORCH_MODES:
            m = run_torch(reference, mode, batch, frames, threads, repeats)
            runs[mode].append(m if "error" in m else
                              _beside(m, repeats, jax_calls))
    modes = []
    for mode, tries in runs.items():
        ok = [m for m in tries if "error" not in m]
        if not ok:
            modes.append(tries[0])
            continue
        by_train = sorted(ok, key=lambda m: m["train_speedup"])
        m = dict(by_train[(len(ok) - 1) // 2])
        m["encode_speedup"] = sorted(r["encode_speedup"] for r in ok)[(len(ok) - 1) // 2]
        m["rounds"] = len(ok)
        modes.append(m)
    ok = [m for m in modes if "error" not in m]
    if not ok:
        raise SystemExit(f"error: no form of the PyTorch peer ran: {modes}")
    best_train = min(ok, key=lambda m: m["train_speedup"])
    best_encode = min(ok, key=lambda m: m["encode_speedup"])
    eager = next((m for m in ok if m.get("mode") == "eager"), None)
    out["torch_modes"] = modes
    out["torch_best_train_mode"] = best_train["mode"]
    out["torch_best_encode_mode"] = best_encode["mode"]
    out["train_speedup_vs_best_torch"] = best_train["train_speedup"]
    out["encode_speedup_vs_best_torch"] = best_encode["encode_speedup"]
    if eager is not None:
        out["train_speedup_vs_torch_eager"] = eager["train_speedup"]
        out["encode_speedup_vs_torch_eager"] = eager["encode_speedup"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON line only")
    ap.add_argument("--compare-torch", action="store_true")
    ap.add_argument("--torch-reference", default=str(REPO.parent / "shared" / "bench" /
                                                     "torch_reference.py"))
    ap.add_argument("--models", default="", help="'all' or row@precision names "
                    "(benchmarks/model_speed.py) to time as well")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--torch-rounds", type=int, default=3,
                    help="runs of every PyTorch form, each beside the JAX figures")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch threads (JAX uses all cores of the process)")
    ap.add_argument("--no-rss", action="store_true", help="skip the memory probes")
    ap.add_argument("--probe", choices=("train", "encode"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        rss_probe(args.probe, args.batch, args.frames)
        print(next(int(ln.split()[1]) for ln in open("/proc/self/status")
                   if ln.startswith("VmHWM")) / 1024)
        return
    if args.compare_torch and not Path(args.torch_reference).exists():
        raise SystemExit(f"error: --compare-torch needs {args.torch_reference} "
                         f"(set --torch-reference)")
    out, jax_calls = measure(args.batch, args.frames, args.repeats)
    if not args.no_rss:
        out["train_peak_rss_mb"] = peak_rss("train", args.batch, args.frames)
        out["encode_peak_rss_mb"] = peak_rss("encode", args.batch, args.frames)
    if args.models:
        from model_speed import measure_models, row_configs, vmap_scaling
        names = list(row_configs()) if args.models == "all" else args.models.split(",")
        out["models"] = measure_models(names, args.batch, args.frames, max(1, args.repeats // 2))
        out["vmap_scaling"] = vmap_scaling("1cnn_lstm@1bit", 2, args.batch, args.frames,
                                           max(1, args.repeats // 2))
    if args.compare_torch:
        compare_torch(out, Path(args.torch_reference), args.batch, args.frames, args.threads,
                      args.repeats, jax_calls, args.torch_rounds)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
