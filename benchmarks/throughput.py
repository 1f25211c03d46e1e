"""Throughput of binary 1-CNN + PixelRNN (batch 32, 16 frames of 64x64, 9 classes).

    python benchmarks/throughput.py --json [--compare-torch]

Prints one JSON line: train_videos_per_s (jitted step: forward, backward, Adam),
encode_frames_per_s (inference of `encode`), sensor_frames_per_s (the simulated SCAMP-5
program, when available), compile seconds, peak_rss_mb, JAX version and device. Each figure
is the median of --repeats timed runs after a warm-up. --compare-torch also runs the PyTorch
eager reference (../shared/bench/torch_reference.py, same model, sizes and thread count) in
the same invocation and adds the speedup ratios.
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


def measure(batch: int, frames: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import pixelrnn_jax as pr
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
    t0 = time.perf_counter()
    jax.block_until_ready(pr.encode(variables, video, cfg))
    encode_compile = time.perf_counter() - t0
    jax.block_until_ready(pr.encode(variables, video, cfg))
    encode_s = _median_time(lambda: pr.encode(variables, video, cfg), repeats)

    out = {
        "impl": "pixelrnn_jax", "jax": jax.__version__, "device": str(jax.devices()[0]),
        "platform": jax.devices()[0].platform, "batch": batch, "frames": frames,
        "train_step_ms": round(train_s * 1e3, 2),
        "train_videos_per_s": round(batch / train_s, 2),
        "train_compile_s": round(train_compile, 2),
        "encode_ms": round(encode_s * 1e3, 2),
        "encode_frames_per_s": round(batch * frames / encode_s, 1),
        "encode_compile_s": round(encode_compile, 2),
    }
    from pixelrnn_jax import scamp5
    if True:
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
    return out


def run_torch(reference: Path, batch: int, frames: int, threads: int, repeats: int) -> dict:
    cmd = [sys.executable, str(reference), "--batch", str(batch), "--frames", str(frames),
           "--threads", str(threads), "--repeats", str(repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"error: the PyTorch reference failed ({' '.join(cmd)}):\n"
                         f"{res.stderr.strip()[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON line only")
    ap.add_argument("--compare-torch", action="store_true")
    ap.add_argument("--torch-reference", default=str(REPO.parent / "shared" / "bench" /
                                                     "torch_reference.py"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch threads (JAX uses all cores of the process)")
    args = ap.parse_args()
    if args.compare_torch and not Path(args.torch_reference).exists():
        raise SystemExit(f"error: --compare-torch needs {args.torch_reference} "
                         f"(set --torch-reference)")
    out = measure(args.batch, args.frames, args.repeats)
    if args.compare_torch:
        ref = run_torch(Path(args.torch_reference), args.batch, args.frames, args.threads,
                        args.repeats)
        out["torch"] = ref
        out["train_speedup_vs_torch"] = round(out["train_videos_per_s"] /
                                              ref["train_videos_per_s"], 2)
        out["encode_speedup_vs_torch"] = round(out["encode_frames_per_s"] /
                                               ref["encode_frames_per_s"], 2)
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
