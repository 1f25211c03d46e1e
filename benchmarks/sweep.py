"""8 seeds trained together under `vmap` against 8 separate runs, in one invocation.

    python benchmarks/sweep.py --json

Prints member-videos/s (videos x members per second) of one jitted step for all members
(`pixelrnn_jax.training.sweeps`: the train step vmapped over members) and of the
single-model step run once per member.
"""
from __future__ import annotations

import argparse
import json
import time
from functools import partial


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from pixelrnn_jax import ModelConfig
    from pixelrnn_jax.training import TrainConfig, init_members, train_step
    from pixelrnn_jax.training.steps import classification_loss

    cfg = ModelConfig()
    config = TrainConfig(model=cfg)
    members, tx, params, opt_state = init_members(config, range(args.members), [1e-2])
    rng = np.random.default_rng(0)
    batch = {"video": jnp.asarray(rng.standard_normal((args.batch, 16, 64, 64)), jnp.float32),
             "label": jnp.asarray(np.arange(args.batch) % 9, jnp.int32)}
    keys = jax.random.split(jax.random.key(0), args.members)
    step = partial(train_step, loss_fn=classification_loss(cfg), tx=tx)
    together = jax.jit(jax.vmap(step, in_axes=(0, 0, None, 0)))
    single = jax.jit(step)
    one = jax.tree.map(lambda a: a[0], (params, opt_state))

    def run_together():
        return together(params, opt_state, batch, keys)

    def run_separately():
        out = None
        for i in range(args.members):
            p, o = jax.tree.map(lambda a: a[i], (params, opt_state))
            out = single(p, o, batch, keys[i])
        return out

    def timed(fn):
        jax.block_until_ready(fn())
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    del one
    t_together, t_sep = timed(run_together), timed(run_separately)
    n = args.members * args.batch
    out = {"members": args.members, "batch": args.batch,
           "together_member_videos_per_s": round(n / t_together, 1),
           "separate_member_videos_per_s": round(n / t_sep, 1),
           "speedup_together": round(t_sep / t_together, 2),
           "device": str(jax.devices()[0])}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
