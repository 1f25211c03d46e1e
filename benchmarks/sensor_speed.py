"""Frames per second of the simulated SCAMP-5 programs.

    python benchmarks/sensor_speed.py --json                   # every program, noise on
    python benchmarks/sensor_speed.py --programs=chip --noise=ideal --batch=4

Runs `pixelrnn_jax.scamp5.simulate` on random videos (64 x 64 frames, the chip's geometry)
with random weights and reports simulated frames per second of wall-clock time (videos x
frames per call / seconds per call, compilation excluded) for the paper's program and the
chip program on the register-level machine ("ideal", "chip") and the chip program's fast
emulation ("chip_fast"), on the shipped calibration (`--noise=default`, temporal noise on)
or with every error off. The real chip takes about 95 ms per frame (paper Sec. 5.2), i.e.
10.5 frames/s; the target for the machine programs is 10x that, 105 frames/s with noise on.
"""
from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import app, flags

import pixelrnn_jax as pr
from pixelrnn_jax import authors_files, scamp5

CHIP_SECONDS_PER_FRAME = 0.095

_PROGRAMS = flags.DEFINE_list("programs", ["ideal", "chip", "chip_fast"], "programs to time")
_BATCH = flags.DEFINE_integer("batch", 1, "videos per simulate call")
_FRAMES = flags.DEFINE_integer("frames", 16, "frames per video (a multiple of K=16)")
_NOISE = flags.DEFINE_enum("noise", "default", ["default", "ideal"],
                           "default: the shipped calibration; ideal: every source off")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls after the compiling one")
_JSON = flags.DEFINE_bool("json", False, "print one JSON object instead of text")


def _inputs(program: str, batch: int, frames: int):
    rng = np.random.default_rng(0)
    if program == "ideal":
        config = pr.ModelConfig(cnn_layers=1)
        weights = scamp5.weight_planes(pr.init(jax.random.key(0), config), config)
        video = rng.normal(size=(batch, frames, 64, 64)).astype(np.float32)
        return weights, video, config
    pm = lambda *s: np.where(rng.random(s) < 0.5, -1.0, 1.0)  # noqa: E731
    weights = authors_files.OfficialWeights(conv1=pm(16, 5, 5), thresh1=1.0, w_f=pm(5, 5),
                                            u_f=pm(5, 5), w_o=pm(5, 5), u_o=pm(5, 5))
    return weights, rng.integers(0, 256, (batch, frames, 64, 64)).astype(np.uint8), None


def run(program: str, batch: int, frames: int, noise_name: str, repeats: int) -> dict:
    noise = scamp5.NoiseModel() if noise_name == "default" else scamp5.NoiseModel.ideal()
    weights, video, config = _inputs(program, batch, frames)

    def call(i: int):
        return np.asarray(scamp5.simulate(weights, video, config, program=program, noise=noise,
                                          rng=jax.random.key(i)))

    start = time.perf_counter()
    call(0)
    compile_s = time.perf_counter() - start
    times, cpu = [], []
    for i in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call(i + 1)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    per_call = float(np.median(times))
    fps = batch * frames / per_call
    return {"program": program, "sensor_frames_per_s": round(fps, 1),
            "best_frames_per_s": round(batch * frames / min(times), 1),
            "realtime_factor_vs_chip": round(fps * CHIP_SECONDS_PER_FRAME, 2),
            "seconds_per_call_median": round(per_call, 4),
            "cpu_ms_per_frame_median": round(1e3 * float(np.median(cpu)) / (batch * frames), 3),
            "compile_and_first_call_s": round(compile_s, 2)}


def main(argv):
    del argv
    if _FRAMES.value % 16 or _FRAMES.value < 16:
        raise app.UsageError(f"--frames must be a positive multiple of 16, got {_FRAMES.value}")
    unknown = sorted(set(_PROGRAMS.value) - set(scamp5.PROGRAMS))
    if unknown:
        raise app.UsageError(f"unknown --programs {unknown}: choose from {list(scamp5.PROGRAMS)}")
    rows = [run(p, _BATCH.value, _FRAMES.value, _NOISE.value, _REPEATS.value)
            for p in _PROGRAMS.value]
    settings = {"batch": _BATCH.value, "frames": _FRAMES.value, "noise": _NOISE.value,
                "noise_chip": scamp5.NoiseModel().chip if _NOISE.value == "default" else "ideal",
                "repeats": _REPEATS.value, "cpu_count": os.cpu_count(),
                "cpus_available": len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity") else None,
                # other processes sharing the CPUs slow the wall clock down
                "load_average_1min": round(os.getloadavg()[0], 2),
                "backend": jax.default_backend(), "jax": jax.__version__}
    if _JSON.value:
        print(json.dumps({"programs": rows, "settings": settings}))
        return
    for r in rows:
        print(f"{r['program']:10s} {r['sensor_frames_per_s']:8.1f} frames/s median, "
              f"{r['best_frames_per_s']:8.1f} best ({r['realtime_factor_vs_chip']}x the chip's "
              f"95 ms per frame), {r['cpu_ms_per_frame_median']} CPU ms per frame")
    print(f"noise {settings['noise']}, batch {settings['batch']} x {settings['frames']} frames, "
          f"{settings['cpus_available']} CPUs, load average {settings['load_average_1min']}")


if __name__ == "__main__":
    app.run(main)
