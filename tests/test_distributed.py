"""Training over several processes: JAX's distributed runtime through the real command line.

`experiments/train.py` runs as 2 processes on 127.0.0.1 (`--coordinator_address`,
`--num_processes`, `--process_id`), each with 2 simulated CPU devices and the gloo CPU
collectives, on a tiny run (built-in synthetic gestures at 16x16, 24 videos, 4 steps an
epoch, the SRNN cell: the quickest of the cells to compile), and what they leave behind is
compared with 1 process of 4 devices:

  * one process killed inside epoch 2: the other stops by itself within the heartbeat
    timeout (no hang), and the same command again resumes after epoch 1 and completes;
  * that run equals 1 process x 4 devices epoch by epoch: parameters and optimizer state
    allclose (the gradient is summed in another order), the same accuracies, losses
    allclose; process 0 alone wrote the metrics, results and weights, every process its
    part of the checkpoints, and each fed only its 2 rows of the global batch of 4;
  * its checkpoint resumes with 1 process and continues as the 1-process run;
  * a coordinator that never comes up: one line on stderr, exit code 2, within the
    timeout;
  * a vmapped sweep splits its members over the devices and steps as without a mesh;
  * the killed and resumed run equals an uninterrupted 2-process run bit for bit.

Every subprocess shares one XLA compilation cache (pytest's cache folder, as in
test_reliability.py) and one synthetic dataset folder (built by the first run), and the
independent runs start together. On CPU only process 0 reads and writes that cache (the
other processes' cache keys differ), so every 2-process start compiles once.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "experiments" / "train.py"
TINY = ["--frame_size=16", "--cnn_layers=0", "--K=8", "--num_frames=8", "--batch_size=4",
        "--max_videos=24", "--seed=0", "--learning_rate=0.01", "--cell=srnn"]
# the 2-process run: a dead process is noticed after 5 s without its heartbeat
TWO = ("--num_epochs=2", "--heartbeat_timeout=5")
TIMING = {"videos_per_s", "epoch_seconds", "train_seconds", "train_videos_per_s", "workdir"}
RUN_TIMEOUT = 300

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL needs POSIX")

# experiments/train.py, started once a file `ready` exists and held inside step S of epoch E
# (a marker file says it got there), so that a kill lands mid-epoch
HOLD = r"""
import pathlib, runpy, sys, time
E, S, marker, ready = int(sys.argv[1]), int(sys.argv[2]), *map(pathlib.Path, sys.argv[3:5])
sys.argv = sys.argv[5:]
from pixelrnn_jax import cli, data, training   # imported while another run builds the data
while not ready.exists():
    time.sleep(0.05)
clean = data.batches
def batches(split, batch_size, *, train, epoch=0, **kw):
    for i, b in enumerate(clean(split, batch_size, train=train, epoch=epoch, **kw)):
        if train and epoch == E and i == S:
            marker.write_text("held")
            time.sleep(600)
        yield b
data.batches = batches
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# A sweep of 4 members on 4 simulated devices: the members split over the devices, one step
# equal to the same vmapped step without a mesh.
SWEEP = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from pixelrnn_jax import ModelConfig
from pixelrnn_jax.training import TrainConfig, init_members, make_mesh, sweep_stepper
assert len(jax.devices()) == 4, jax.devices()
cfg = ModelConfig(frame_size=16, K=4, num_classes=3, cnn_layers=0)
config = TrainConfig(model=cfg, num_frames=4, batch_size=4)
members, tx, params, opt_state = init_members(config, [0, 1], [1e-2, 3e-3])
rng = np.random.default_rng(0)
batch = {"video": rng.standard_normal((4, 4, 16, 16)).astype(np.float32),
         "label": rng.integers(0, 3, 4).astype(np.int32)}
start = jax.tree.map(np.asarray, (params, opt_state))
out = {}
for name, mesh in (("none", None), ("mesh", make_mesh())):
    stepper = sweep_stepper(config, tx, len(members), mesh)
    p, s = stepper.place(jax.tree.map(jnp.asarray, start))
    p, s, m = stepper.train(p, s, batch, jax.random.key(1))
    kernel = p["decoder"]["dense"]["kernel"]
    out[name] = {"loss": np.asarray(m["loss"]).tolist(),
                 "params": [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(p)],
                 "split": getattr(stepper, "split_members", False),
                 "shard_rows": [int(sh.data.shape[0]) for sh in kernel.addressable_shards]}
print("RESULT", json.dumps(out))
"""


# ------------------------------------------------------------------------------ plumbing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def env(request, tmp_path_factory):
    base = subprocess_env(request, tmp_path_factory)
    for proxy in [k for k in base if "_proxy" in k.lower()]:
        del base[proxy]   # the runtime's gRPC on 127.0.0.1 must not go through a proxy
    return {"base": base, "data_dir": str(tmp_path_factory.mktemp("tfds")),
            "root": tmp_path_factory.mktemp("distributed")}


class Run:
    """One command line as `processes` processes of `devices` simulated devices each."""

    def __init__(self, env, name, workdir, processes, devices, *extra, hold=None, port=None):
        self.name, self.workdir, self.procs = name, Path(workdir), []
        self.port = port or _free_port()
        self.started = time.monotonic()
        for pid in range(processes):
            dist = [] if processes == 1 else [
                f"--coordinator_address=127.0.0.1:{self.port}", f"--num_processes={processes}",
                f"--process_id={pid}", "--distributed_timeout=120"]
            head = [sys.executable, str(TRAIN)] if hold is None else \
                [sys.executable, "-c", HOLD, *map(str, hold), str(self.marker(pid)),
                 str(self.ready), str(TRAIN)]
            args = [*head, f"--data_dir={env['data_dir']}", f"--workdir={workdir}", *TINY,
                    *dist, *extra]
            log = env["root"] / f"{name}-{pid}.log"
            out = open(log, "w")
            p = subprocess.Popen(args, env=dict(env["base"], XLA_FLAGS=(
                f"--xla_force_host_platform_device_count={devices}")), stdout=out,
                stderr=subprocess.STDOUT, cwd=REPO)
            p.log, p.logfile = log, out
            self.procs.append(p)

    @property
    def ready(self) -> Path:
        return self.workdir.parent / f"{self.workdir.name}.ready"

    def marker(self, pid) -> Path:
        return self.workdir.parent / f"{self.workdir.name}.held-{pid}"

    def wait(self, timeout=RUN_TIMEOUT) -> list[tuple[int, str]]:
        out = []
        for p in self.procs:
            try:
                rc = p.wait(max(1.0, timeout - (time.monotonic() - self.started)))
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"{self.name}: no end within {timeout} s:\n"
                            + p.log.read_text()[-3000:])
            finally:
                p.logfile.close()
            out.append((rc, p.log.read_text()))
        self.seconds = time.monotonic() - self.started
        return out

    def finish(self) -> list[str]:
        results = self.wait()
        for rc, log in results:
            assert rc == 0, f"{self.name}:\n{log[-3000:]}"
        return [log for _, log in results]

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()


def _step_state(workdir: Path, step: int):
    """A checkpoint's arrays on this process's one device (whatever mesh wrote them)."""
    import logging

    import jax
    import orbax.checkpoint as ocp

    logging.getLogger("absl").setLevel(logging.ERROR)
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    path = workdir / "checkpoints" / str(step) / "state"
    with ocp.StandardCheckpointer() as ckpt:
        meta = ckpt.metadata(path)
        meta = getattr(meta, "item_metadata", meta)
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
                              meta)
        tree = ckpt.restore(path, target)
    info = json.loads((workdir / "checkpoints" / str(step) / "meta" / "metadata").read_text())
    return jax.tree.map(np.asarray, tree), {k: v for k, v in info.items() if k not in TIMING}


def _records(workdir: Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k not in TIMING} for ln in lines]


def _results(workdir: Path) -> dict:
    r = json.loads((workdir / "results.json").read_text())
    return {k: v for k, v in r.items() if k not in TIMING | {"devices"}}


def _complete_steps(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def _assert_close_trees(a, b, where, exact=False):
    import jax

    (_, ta), (lb, tb) = jax.tree.flatten(a), jax.tree.flatten(b)
    assert ta == tb, where
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], lb):
        name = f"{where} {jax.tree_util.keystr(path)}"
        if exact:
            assert x.dtype == y.dtype and np.array_equal(x, y), f"{name}: differs"
        else:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6, err_msg=name)


def _assert_close_records(a: list[dict], b: list[dict]):
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b):
        for k in ra:
            if k.endswith("accuracy") or k == "epoch":
                assert ra[k] == rb[k], (k, ra, rb)
            else:
                np.testing.assert_allclose(ra[k], rb[k], rtol=1e-5, err_msg=k)


def _assert_close_results(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for k in a:
        if k.endswith("_loss"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, err_msg=k)
        else:
            assert a[k] == b[k], k


class Timed:
    """A subprocess whose end is timed (by a thread that waits for it)."""

    def __init__(self, args, env):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self):
        self.out, self.err = self.proc.communicate()
        self.seconds = time.monotonic() - self.started

    def result(self, timeout=RUN_TIMEOUT):
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.proc.kill()
            pytest.fail(f"{self.proc.args[:3]}: no end within {timeout} s")
        return self.proc.returncode, self.out, self.err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()


def _wait_until(condition, procs, what, timeout=RUN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            assert p.poll() is None, f"{what}:\n" + p.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def runs(env):
    """Started together: the coordinator-less process, the sweep check, 1 process x 4
    devices for 3 epochs, and 2 processes x 2 devices that go on once that one has built the
    dataset and are held inside step 3 of epoch 2."""
    root = env["root"]
    orphan = Timed([sys.executable, str(TRAIN), f"--data_dir={env['data_dir']}",
                    f"--workdir={root / 'orphan'}", *TINY, "--num_epochs=1",
                    f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2",
                    "--process_id=1", "--distributed_timeout=3"], env["base"])
    sweep = Timed([sys.executable, "-c", SWEEP],
                  dict(env["base"], XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    one = Run(env, "one-x4", root / "one", 1, 4, "--num_epochs=3")
    out = {"env": env, "orphan": orphan, "sweep": sweep, "one": one, "done": set()}
    try:
        out["held"] = held = Run(env, "held", root / "two", 2, 2, *TWO, hold=(2, 3))
        # the dataset is built by `one` (it logs its devices once the data is loaded)
        _wait_until(lambda: "devices: " in one.procs[0].log.read_text(), one.procs,
                    "loaded the dataset")
        held.ready.write_text("ready")
        yield out
    finally:
        for r in (one, out.get("held"), out.get("resumed"), orphan, sweep):
            if r is not None:
                r.kill()


def _done(runs, key):
    """The run `key` of `runs`, finished and checked to have ended well (once)."""
    run = runs[key]
    if key not in runs["done"]:
        run.logs = run.finish()
        runs["done"].add(key)
    return run


@pytest.fixture(scope="module")
def two(runs):
    """The 2-process run: process 1 killed inside epoch 2, then the same command again."""
    held = runs["held"]
    _wait_until(lambda: all(held.marker(pid).exists() for pid in (0, 1)), held.procs,
                "reached step 3 of epoch 2")
    before = {"steps": _complete_steps(held.workdir), "records": len(_records(held.workdir))}
    os.kill(held.procs[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    (rc0, log0), _ = held.wait()
    survivor = {"rc": rc0, "log": log0, "seconds": time.monotonic() - killed}
    after = {"steps": _complete_steps(held.workdir), "records": len(_records(held.workdir))}
    runs["resumed"] = resumed = Run(runs["env"], "resumed", held.workdir, 2, 2, *TWO,
                                    port=held.port)
    resumed.logs = resumed.finish()
    resumed.before, resumed.after, resumed.survivor = before, after, survivor
    return resumed


# ----------------------------------------------------------------------------- tests


def test_process_killed_mid_epoch_then_same_command_resumes(two):
    assert two.before == {"steps": [1], "records": 1}   # killed inside epoch 2
    survivor = two.survivor
    # the survivor stops by itself, on the runtime's missed heartbeats: no hang
    assert survivor["rc"] != 0 and survivor["seconds"] < 60, survivor["log"][-3000:]
    assert "another task died" in survivor["log"], survivor["log"][-3000:]
    assert two.after == {"steps": [1], "records": 1}
    for log in two.logs:
        assert "resuming from" in log and "after epoch 1" in log
    assert _complete_steps(two.workdir) == [1, 2]
    assert [r["epoch"] for r in _records(two.workdir)] == [1, 2]
    assert json.loads((two.workdir / "results.json").read_text())["epochs"] == 2


def test_two_processes_of_two_devices_equal_one_process_of_four(runs, two):
    one = _done(runs, "one")
    for step in (1, 2):
        (ta, ma), (tb, mb) = _step_state(two.workdir, step), _step_state(one.workdir, step)
        _assert_close_trees(ta, tb, f"checkpoint {step}")
        assert ma["epoch"] == mb["epoch"] == step
        assert ma["best_epoch"] == mb["best_epoch"]
        assert ma["best_val_accuracy"] == mb["best_val_accuracy"]
    # process 0 alone wrote the metrics (one record an epoch), results and weights
    _assert_close_records(_records(two.workdir), _records(one.workdir)[:2])
    results = json.loads((two.workdir / "results.json").read_text())
    assert results["devices"] == {"count": 4, "platform": "cpu", "processes": 2}
    assert (two.workdir / "best_params.msgpack").exists()
    assert (two.workdir / "sensor_weights").is_dir()
    assert not list(two.workdir.glob(".write_test*"))
    # every process wrote its part of the checkpoint and fed its 2 rows of each batch
    state = two.workdir / "checkpoints" / "2" / "state"
    assert (state / "ocdbt.process_0").exists() and (state / "ocdbt.process_1").exists()
    for pid, log in enumerate(two.logs):
        rows = f"{2 * pid}-{2 * pid + 1}"
        assert f"global batch 4; process {pid} of 2 feeds rows {rows}" in log


def test_checkpoint_of_two_processes_resumes_with_one(runs, two, tmp_path):
    one = _done(runs, "one")
    wd = tmp_path / "continued"
    shutil.copytree(two.workdir, wd)
    [log] = Run(runs["env"], "continued", wd, 1, 4, "--num_epochs=3").finish()
    assert "after epoch 2" in log
    assert _complete_steps(wd) == [1, 2, 3]
    (ta, ma), (tb, mb) = _step_state(wd, 3), _step_state(one.workdir, 3)
    _assert_close_trees(ta, tb, "checkpoint 3")
    assert ma["best_epoch"] == mb["best_epoch"]
    _assert_close_records(_records(wd), _records(one.workdir))
    _assert_close_results(_results(wd), _results(one.workdir))


def test_coordinator_that_never_comes_up_gives_one_line_in_time(runs):
    orphan = runs["orphan"]
    rc, _, err = orphan.result()
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no coordinator answered at "
                                                   "127.0.0.1:"), err[-3000:]
    assert "within 3 s" in lines[0] and "start process 0" in lines[0]
    # 3 s of waiting after the imports, not the runtime's default of minutes
    assert orphan.seconds < 60, orphan.seconds


def test_sweep_splits_its_members_over_the_devices(runs):
    rc, out, err = runs["sweep"].result()
    assert rc == 0, err[-3000:]
    res = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
    alone, split = res["none"], res["mesh"]
    assert split["split"] and split["shard_rows"] == [1, 1, 1, 1]
    np.testing.assert_allclose(split["loss"], alone["loss"], rtol=1e-5, atol=1e-6)
    for a, b in zip(split["params"], alone["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_killed_and_resumed_equals_uninterrupted_bit_for_bit(runs, two, tmp_path):
    wd = tmp_path / "uninterrupted"
    Run(runs["env"], "uninterrupted", wd, 2, 2, *TWO).finish()
    assert _complete_steps(wd) == _complete_steps(two.workdir) == [1, 2]
    for step in (1, 2):
        (ta, ma), (tb, mb) = _step_state(two.workdir, step), _step_state(wd, step)
        _assert_close_trees(ta, tb, f"checkpoint {step}", exact=True)
        assert ma == mb
    assert _records(two.workdir) == _records(wd)
    assert _results(two.workdir) == _results(wd)
