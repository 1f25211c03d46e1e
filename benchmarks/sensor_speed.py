"""Frames per second of the simulated SCAMP-5 PixelRNN program.

    python benchmarks/sensor_speed.py --json
    python benchmarks/sensor_speed.py --noise=ideal --batch=1

Runs `pixelrnn_jax.scamp5.simulate` on random videos (64 x 64 frames, the chip's geometry)
with random weights and reports simulated frames per second of wall-clock time (videos x
frames per call / seconds per call, compilation excluded; each call draws its noise bank).
The real chip takes about 95 ms per frame (paper Sec. 5.2), i.e. 10.5 frames/s; the target
for the simulation is 10x that, 105 frames/s on 2 CPU cores with noise on.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np
from absl import app, flags

import pixelrnn_jax as pr
from pixelrnn_jax import scamp5

CHIP_SECONDS_PER_FRAME = 0.095

_BATCH = flags.DEFINE_integer("batch", 1, "videos per simulate call")
_FRAMES = flags.DEFINE_integer("frames", 16, "frames per video (a multiple of K=16)")
_CNN_LAYERS = flags.DEFINE_integer("cnn_layers", 1, "in-pixel CNN layers (0, 1 or 2)")
_NOISE = flags.DEFINE_enum("noise", "default", ["default", "ideal"],
                           "default: the calibrated noise model; ideal: every source off")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls after the compiling one")
_JSON = flags.DEFINE_bool("json", False, "print one JSON object instead of text")


def run(batch: int, frames: int, cnn_layers: int, noise_name: str, repeats: int) -> dict:
    config = pr.ModelConfig(cnn_layers=cnn_layers)
    noise = scamp5.NoiseModel() if noise_name == "default" else scamp5.NoiseModel.ideal()
    planes = scamp5.weight_planes(pr.init(jax.random.key(0), config), config)
    video = np.random.default_rng(0).normal(size=(batch, frames, 64, 64)).astype(np.float32)

    def call(i: int):
        return scamp5.simulate(planes, video, config, noise=noise,
                               rng=jax.random.key(i)).block_until_ready()

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
    return {
        "sensor_frames_per_s": round(fps, 1),
        "best_frames_per_s": round(batch * frames / min(times), 1),
        "realtime_factor_vs_chip": round(fps * CHIP_SECONDS_PER_FRAME, 2),
        "seconds_per_call_median": round(per_call, 4),
        "cpu_ms_per_frame_median": round(1e3 * float(np.median(cpu)) / (batch * frames), 3),
        "compile_and_first_call_s": round(compile_s, 2),
        # other processes sharing the CPUs slow the wall clock down
        "load_average_1min": round(os.getloadavg()[0], 2),
        "settings": {
            "batch": batch, "frames": frames, "frame_size": 64, "K": config.K,
            "cnn_layers": cnn_layers, "noise": noise_name,
            "noise_model": dataclasses.asdict(noise),
            "program": dataclasses.asdict(scamp5.ProgramOptions()),
            "repeats": repeats,
            "cpu_count": os.cpu_count(),
            "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None,
            "backend": jax.default_backend(),
            "jax": jax.__version__,
        },
    }


def main(argv):
    del argv
    if _FRAMES.value % 16 or _FRAMES.value < 16:
        raise app.UsageError(f"--frames must be a positive multiple of 16, got {_FRAMES.value}")
    result = run(_BATCH.value, _FRAMES.value, _CNN_LAYERS.value, _NOISE.value, _REPEATS.value)
    if _JSON.value:
        print(json.dumps(result))
        return
    s = result["settings"]
    print(f"simulated SCAMP-5 PixelRNN ({s['cnn_layers']} CNN layer(s), noise {s['noise']}, "
          f"batch {s['batch']} x {s['frames']} frames, {s['cpus_available']} CPUs): "
          f"{result['sensor_frames_per_s']} frames/s median, {result['best_frames_per_s']} best "
          f"({result['realtime_factor_vs_chip']}x the chip's 95 ms per frame); "
          f"{result['cpu_ms_per_frame_median']} CPU ms per frame, load average "
          f"{result['load_average_1min']}")


if __name__ == "__main__":
    app.run(main)
