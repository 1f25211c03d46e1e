"""Train-step and encode time of every Table S4 model, and how sweep members scale under vmap.

Used by `python benchmarks/throughput.py --models=all` (keys: the ablation's row names at a
precision, e.g. `1cnn_lstm@1bit`, `2cnn_pixelrnn@32bit`, `event_camera@1bit`), or alone:

    python benchmarks/model_speed.py --models=1cnn_pixelrnn@1bit,1cnn_lstm@1bit --json

Every model sees the same batch (32 videos of 16 frames of 64x64; RAW its own 256x256
frames) and the same jitted step as training (`training.steps.train_step`). Every model is
compiled and run once first; then `rounds` rounds each time `repeats` calls of every model in
turn, and a figure is the median of a model's calls over all rounds: on a shared machine whose
speed drifts by 20-50 % within minutes, every model sees the same drift, so the ratios
between models compare like with like.
"""
from __future__ import annotations

import argparse
import json
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import pixelrnn_jax as pr
from pixelrnn_jax.paper import table_s4
from pixelrnn_jax.training.steps import classification_loss, make_optimizer, train_step

__all__ = ["row_configs", "interleaved_seconds", "measure_models", "vmap_scaling"]


def row_configs() -> dict:
    """{"<row>@<precision>": ModelConfig} of every trainable Table S4 model."""
    return {f"{key}@{prec}": cfg.replace(precision=prec)
            for key, _, cfg in table_s4.table_rows() for prec in table_s4.row_precisions(cfg)}


def _seconds(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def _batch(cfg, batch: int, frames: int):
    rng = np.random.default_rng(0)
    video = jnp.asarray(rng.standard_normal((batch, frames, cfg.frame_size, cfg.frame_size)),
                        jnp.float32)
    return {"video": video, "label": jnp.asarray(np.arange(batch) % cfg.num_classes, jnp.int32)}


def _timed_calls(cfg, batch: int, frames: int, members: int | None = None) -> dict:
    """{"train_step_ms": fn, "encode_ms": fn} of one model, each compiled and run once; with
    `members`, the step of that many sweep members vmapped together (the sweep's step)."""
    b = _batch(cfg, batch, frames)
    params = pr.init(jax.random.key(0), cfg, frames)["params"]
    tx = make_optimizer(1e-3)
    step = partial(train_step, loss_fn=classification_loss(cfg), tx=tx)
    opt_state = tx.init(params)
    key = jax.random.key(1)
    if members is not None:
        params, opt_state = jax.tree.map(lambda a: jnp.stack([a] * members), (params, opt_state))
        step = jax.vmap(step, in_axes=(0, 0, None, 0))
        key = jax.random.split(key, members)
    train = jax.jit(step)
    calls = {"train_step_ms": lambda: train(params, opt_state, b, key)}
    if members is None:
        variables = {"params": params}
        calls["encode_ms"] = lambda: pr.encode(variables, b["video"], cfg)
    for fn in calls.values():
        jax.block_until_ready(fn())
    return calls


def interleaved_seconds(calls: dict, repeats: int, rounds: int) -> dict:
    """{name: {figure: median seconds}} of `calls` ({name: {figure: fn}}, each compiled)
    timed in `rounds` rounds that each take `repeats` calls of every function in turn:
    every function sees the same load of a shared machine, so the ratios between them hold
    where single figures drift."""
    times = {name: {fig: [] for fig in figs} for name, figs in calls.items()}
    for _ in range(rounds):
        for name, figs in calls.items():
            for fig, fn in figs.items():
                times[name][fig] += _seconds(fn, repeats)
    return {name: {fig: float(np.median(t)) for fig, t in figs.items()}
            for name, figs in times.items()}


def _interleaved(calls: dict, repeats: int, rounds: int) -> dict:
    """`interleaved_seconds` in milliseconds, rounded."""
    return {name: {fig: round(1e3 * t, 2) for fig, t in figs.items()}
            for name, figs in interleaved_seconds(calls, repeats, rounds).items()}


def measure_models(names, batch: int = 32, frames: int = 16, repeats: int = 3,
                   rounds: int = 3) -> dict:
    """Every model of `names`, compiled first, then timed in interleaved rounds."""
    configs = row_configs()
    unknown = sorted(set(names) - set(configs))
    if unknown:
        raise SystemExit(f"error: unknown models {unknown}; choose from {sorted(configs)}")
    return _interleaved({n: _timed_calls(configs[n], batch, frames) for n in names},
                        repeats, rounds)


def vmap_scaling(name: str = "1cnn_lstm@1bit", members: int = 2, batch: int = 32,
                 frames: int = 16, repeats: int = 3, rounds: int = 3) -> dict:
    """The train step of `members` members together against `members` x one member, timed
    in interleaved rounds."""
    cfg = row_configs()[name]
    ms = _interleaved({"one": _timed_calls(cfg, batch, frames),
                       "together": _timed_calls(cfg, batch, frames, members)}, repeats, rounds)
    one, together = ms["one"]["train_step_ms"], ms["together"]["train_step_ms"]
    return {"model": name, "members": members, "one_member_ms": one,
            "together_ms": together, "together_over_members_x_one": round(
                together / (members * one), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="all", help="comma-separated names or 'all'")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per model per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the models")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = list(row_configs()) if args.models == "all" else args.models.split(",")
    out = {"models": measure_models(names, args.batch, 16, args.repeats, args.rounds)}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
