"""Faults a training run survives, and determinism.

Every fault runs the real command line, `experiments/train.py`, as a subprocess on a tiny
run (built-in synthetic gestures at 16x16, 24 videos, no CNN, 3 epochs of 4 steps), then
compares what it left behind with an uninterrupted run of the same command:

  * SIGKILL at random moments (a seeded generator picks them), once while a checkpoint is
    being written, then the same command again: the run ends with the parameters, optimizer
    state, metrics and results of the uninterrupted run, bit for bit (CPU);
  * a truncated or corrupted latest checkpoint: reported, set aside, the previous one used,
    and again the uninterrupted run's final state;
  * a loss that becomes NaN (a corrupted label) or diverges to NaN (a learning rate at the
    float32 limit): exit code 2, one line naming the epoch and step, last checkpoint kept;
  * a full disk (RLIMIT_FSIZE) or a read-only checkpoint folder while saving: exit code 2,
    one line, the earlier checkpoints intact, nothing half-written left as if complete.

All subprocesses share one XLA compilation cache (kept across sessions in pytest's cache
folder), so only the first run of the suite compiles.
Determinism: two uninterrupted runs agree bit for bit; one train step on 8 simulated CPU
devices agrees with 1 device within float tolerance.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "experiments" / "train.py"
TINY = ["--frame_size=16", "--cnn_layers=0", "--K=8", "--num_frames=8", "--batch_size=4",
        "--max_videos=24", "--num_epochs=3", "--seed=0", "--learning_rate=0.01"]
TMP_SUFFIX = ".orbax-checkpoint-tmp"
TIMING = {"videos_per_s", "epoch_seconds", "train_seconds", "train_videos_per_s", "workdir"}
SEED = 20240617  # of the kill moments

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and rlimits need POSIX")

# Runs experiments/train.py with one fault injected at a chosen epoch:
#   bad-label E   the label of one video in step 1 of epoch E is out of range (NaN loss)
#   disk-full E   every write fails (EFBIG, as a full disk) from checkpoint E on
#   read-only E   the checkpoints folder becomes read-only just before checkpoint E
DRIVER = r"""
import os, resource, runpy, signal, sys
fault, at = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[3:]
from pixelrnn_jax import data
from pixelrnn_jax.training import checkpoints as checkpoint
if fault == "bad-label":
    clean = data.batches
    def batches(split, batch_size, *, train, epoch=0, **kw):
        for step, b in enumerate(clean(split, batch_size, train=train, epoch=epoch, **kw)):
            if train and epoch == at and step == 1:
                b["label"][0] = 99
            yield b
    data.batches = batches
else:
    save = checkpoint.CheckpointStore.save
    def failing_save(self, step, tree, meta):
        if step == at and fault == "disk-full":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        if step == at and fault == "read-only":
            os.chmod(self.directory, 0o555)
        return save(self, step, tree, meta)
    checkpoint.CheckpointStore.save = failing_save
runpy.run_path(sys.argv[0], run_name="__main__")
"""


# One step of training on a mesh of 1 and of 8 simulated CPU devices (the batch sharded).
EIGHT_DEVICES = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from pixelrnn_jax import ModelConfig, init
from pixelrnn_jax.training import Stepper, make_mesh, make_optimizer
from pixelrnn_jax.training.steps import classification_loss
assert len(jax.devices()) == 8, jax.devices()
cfg = ModelConfig(frame_size=16, K=4, num_classes=3, cnn_layers=0)
rng = np.random.default_rng(0)
batches = [{"video": rng.standard_normal((8, 4, 16, 16)).astype(np.float32),
            "label": rng.integers(0, 3, 8).astype(np.int32)} for _ in range(2)]
params0 = init(jax.random.key(0), cfg, 4)["params"]
out = {}
for n in (1, 8):
    stepper = Stepper(classification_loss(cfg), None, make_optimizer(1e-2),
                      mesh=make_mesh(jax.devices()[:n]))
    params = stepper.replicate(jax.tree.map(jnp.copy, params0))
    opt = stepper.replicate(stepper.tx.init(params0))
    losses = []
    for i, b in enumerate(batches):
        params, opt, m = stepper.train(params, opt, b, jax.random.key(i))
        losses.append(float(m["loss"]))
    leaves = [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(params)]
    out[n] = {"losses": losses, "params": leaves,
              "devices": len(params["decoder"]["dense"]["kernel"].sharding.device_set)}
print("RESULT", json.dumps(out))
"""


# ------------------------------------------------------------------------------ plumbing


@pytest.fixture(scope="module")
def cli(request, tmp_path_factory):
    """Environment of the subprocesses: CPU, one device, a synthetic-data folder and one
    XLA compilation cache, kept in pytest's cache folder across sessions (bounded, LRU) so
    that reruns of the suite compile nothing. Starts the 8-device check in the background
    (it compiles while the reference run does)."""
    env = subprocess_env(request, tmp_path_factory)
    eight = subprocess.Popen(
        [sys.executable, "-c", EIGHT_DEVICES],
        env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    yield {"env": env, "data_dir": str(tmp_path_factory.mktemp("tfds")), "eight": eight}
    if eight.poll() is None:
        eight.kill()
        eight.communicate()


def _args(cli, workdir, *extra, driver=None):
    head = [sys.executable, str(TRAIN)] if driver is None else \
        [sys.executable, "-c", DRIVER, *driver, str(TRAIN)]
    return [*head, f"--data_dir={cli['data_dir']}", f"--workdir={workdir}", *TINY, *extra]


def _start(cli, args, log: Path, prefix=()):
    out = open(log, "w")
    proc = subprocess.Popen([*prefix, *args], env=cli["env"], stdout=out,
                            stderr=subprocess.STDOUT, cwd=REPO)
    proc.log, proc.logfile = log, out
    return proc


def _finish(proc, timeout=300):
    try:
        rc = proc.wait(timeout)
    finally:
        proc.logfile.close()
    return rc, proc.log.read_text()


def _run(cli, args, log: Path, prefix=()):
    """Runs to the end; output through a pipe (a full-disk fault must not hit the log)."""
    proc = subprocess.run([*prefix, *args], env=cli["env"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, cwd=REPO)
    log.write_text(proc.stdout)
    return proc.returncode, proc.stdout


def _kill(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    return _finish(proc)


def _error_line(output: str) -> str:
    """The one-line error of the command line (the last line on stderr)."""
    assert "Traceback" not in output, output[-3000:]
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), output[-3000:]
    return lines[-1]


def _complete_steps(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def _tmp_dirs(workdir: Path) -> list[str]:
    d = workdir / "checkpoints"
    try:
        return [e.name for e in os.scandir(d) if TMP_SUFFIX in e.name]
    except FileNotFoundError:
        return []


def _step_state(workdir: Path, step: int):
    import logging

    import jax
    import orbax.checkpoint as ocp

    logging.getLogger("absl").setLevel(logging.WARNING)
    with ocp.StandardCheckpointer() as ckpt:
        tree = ckpt.restore(workdir / "checkpoints" / str(step) / "state")
    meta = json.loads((workdir / "checkpoints" / str(step) / "meta" / "metadata").read_text())
    return jax.tree.map(np.asarray, tree), {k: v for k, v in meta.items() if k not in TIMING}


def _records(workdir: Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k not in TIMING} for ln in lines]


def _results(workdir: Path) -> dict:
    r = json.loads((workdir / "results.json").read_text())
    return {k: v for k, v in r.items() if k not in TIMING}


def _assert_same_tree(a, b, where):
    import jax

    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, where
    for x, y in zip(la, lb):
        assert x.dtype == y.dtype and np.array_equal(x, y), f"{where}: differs"


def _assert_same_step(wd_a: Path, wd_b: Path, step: int):
    (ta, ma), (tb, mb) = _step_state(wd_a, step), _step_state(wd_b, step)
    _assert_same_tree(ta, tb, f"checkpoint {step}")
    assert ma == mb


def _assert_same_run(run: Path, reference: Path):
    """Final state, every kept checkpoint, metrics and results: bit for bit."""
    assert _complete_steps(run) == _complete_steps(reference) == [1, 2, 3]
    for step in _complete_steps(reference):
        _assert_same_step(run, reference, step)
    assert _records(run) == _records(reference)
    assert _results(run) == _results(reference)
    assert _tmp_dirs(run) == []


@pytest.fixture(scope="module")
def reference(cli, tmp_path_factory):
    wd = tmp_path_factory.mktemp("reference")
    rc, out = _run(cli, _args(cli, wd), wd.parent / "reference.log")
    assert rc == 0, out[-3000:]
    return wd


# ----------------------------------------------------------------------------- faults


def _wait_for(proc, condition, poll=0.005):
    while proc.poll() is None and not condition():
        time.sleep(poll)


# 70 s; test_distributed kills a run mid-epoch and resumes it bit for bit by default
@pytest.mark.slow
def test_sigkill_at_random_moments_then_same_command_is_bit_exact(cli, reference, tmp_path):
    rng = random.Random(SEED)
    wd = tmp_path / "run"
    args = _args(cli, wd)

    # 1. inside the write of checkpoint 2 or 3 (orbax's temporary folder for it is there), at
    #    a random instant of it; up to three tries on a fresh workdir
    step = rng.choice([2, 3])
    for attempt in range(3):
        shutil.rmtree(wd, ignore_errors=True)
        proc = _start(cli, args, tmp_path / f"kill-in-write-{attempt}.log")
        _wait_for(proc, lambda: f"{step}{TMP_SUFFIX}" in _tmp_dirs(wd), poll=0.0005)
        time.sleep(rng.uniform(0.0, 0.01))
        _kill(proc)
        if f"{step}{TMP_SUFFIX}" in _tmp_dirs(wd):  # cut short: the step is still temporary
            break
    else:
        pytest.fail(f"no kill landed inside the write of checkpoint {step} in three tries")
    assert _complete_steps(wd) == list(range(1, step))

    # 2. at a random moment after the run has resumed (compile, epochs, saves, final
    #    evaluation, export)
    log = tmp_path / "kill-after-resume.log"
    t0 = time.monotonic()
    proc = _start(cli, args, log)
    _wait_for(proc, lambda: "resuming from" in log.read_text())
    startup = time.monotonic() - t0
    assert f"after epoch {step - 1}" in log.read_text()
    time.sleep(rng.uniform(0.0, 1.0))
    _kill(proc)

    # 3. at a random moment from the start (imports and data loading included)
    proc = _start(cli, args, tmp_path / "kill-from-start.log")
    time.sleep(rng.uniform(0.0, startup + 1.0))
    _kill(proc)

    # 4. the same command to the end
    rc, out = _run(cli, args, tmp_path / "final.log")
    assert rc == 0, out[-3000:]
    _assert_same_run(wd, reference)


def test_truncated_latest_checkpoint_is_reported_and_the_previous_one_used(
        cli, reference, tmp_path):
    """The command line on a truncated step; the other kinds of damage are checked on the
    store itself (test_checkpoint_store_detects_damage)."""
    wd = tmp_path / "run"
    shutil.copytree(reference, wd)
    data = sorted((wd / "checkpoints" / "3" / "state" / "d").iterdir())[0]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    rc, out = _run(cli, _args(cli, wd), tmp_path / "resume.log")
    assert rc == 0, out[-3000:]
    assert "checkpoint 3 in" in out and "is unreadable" in out and "using the previous" in out
    assert "resuming from" in out and "after epoch 2" in out
    aside = list((wd / "checkpoints.unreadable").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith("3-")
    _assert_same_run(wd, reference)


@pytest.mark.parametrize("damage", ["truncate-data", "flip-byte", "empty-data",
                                    "garbage-meta", "truncate-manifest", "missing-state"])
def test_checkpoint_store_detects_damage(tmp_path, damage, caplog):
    """Each damage of the newest step: detected, reported, set aside, the previous used, and
    the step can be written again."""
    import jax.numpy as jnp

    from pixelrnn_jax.training import CheckpointStore

    def tree(k):
        return {"w": jnp.full((8, 8), float(k)), "b": {"c": jnp.arange(k, k + 3.0)}}

    store = CheckpointStore(tmp_path / "ck", keep=3)
    for k in (1, 2, 3):
        store.save(k, tree(k), {"epoch": k})
    step = tmp_path / "ck" / "3"
    data = sorted((step / "state" / "d").iterdir())[0]
    if damage == "truncate-data":
        data.write_bytes(data.read_bytes()[:10])
    elif damage == "flip-byte":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "empty-data":
        data.write_bytes(b"")
    elif damage == "garbage-meta":
        (step / "meta" / "metadata").write_text("{not json")
    elif damage == "truncate-manifest":
        m = step / "state" / "manifest.ocdbt"
        m.write_bytes(m.read_bytes()[:20])
    else:
        shutil.rmtree(step / "state")
    with caplog.at_level("WARNING", logger="pixelrnn_jax"):
        restored = CheckpointStore(tmp_path / "ck", keep=3).restore_latest(tree(0))
    assert restored is not None
    got, meta = restored
    assert meta == {"epoch": 2}
    np.testing.assert_array_equal(got["w"], tree(2)["w"])
    assert any("checkpoint 3" in r.message and "unreadable" in r.message
               and "moved to" in r.message for r in caplog.records)
    store = CheckpointStore(tmp_path / "ck", keep=3)
    assert store.steps() == [1, 2]
    store.save(3, tree(30), {"epoch": 3})  # the resumed run writes step 3 again
    got, meta = store.restore_latest(tree(0))
    assert meta == {"epoch": 3} and float(got["w"][0, 0]) == 30.0


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_checkpoint(cli, reference,
                                                                      tmp_path):
    wd = tmp_path / "run"
    rc, out = _run(cli, _args(cli, wd, driver=("bad-label", "2")), tmp_path / "nan.log")
    assert rc == 2
    line = _error_line(out)
    assert "non-finite loss or gradient at epoch 2, step 1" in line and "loss=nan" in line
    assert "last good checkpoint (epoch 1)" in line and str(wd / "checkpoints") in line
    assert _complete_steps(wd) == [1] and _tmp_dirs(wd) == []
    _assert_same_step(wd, reference, 1)
    assert _records(wd) == _records(reference)[:1]


def test_diverging_learning_rate_stops_with_epoch_and_step(cli, tmp_path):
    wd = tmp_path / "run"
    rc, out = _run(cli, _args(cli, wd, "--learning_rate=3e38"), tmp_path / "div.log")
    assert rc == 2
    line = _error_line(out)
    assert "non-finite loss or gradient at epoch 1, step 1" in line
    assert "no checkpoint was written" in line and "lower --learning_rate" in line
    assert _complete_steps(wd) == []


def test_full_disk_while_saving(cli, reference, tmp_path):
    wd = tmp_path / "run"
    rc, out = _run(cli, _args(cli, wd, driver=("disk-full", "2")), tmp_path / "full.log")
    assert rc == 2
    line = _error_line(out)
    assert "could not write checkpoint 2" in line and "File too large" in line
    assert "free disk space" in line and "earlier checkpoints are intact" in line
    # nothing half-written looks complete: step 2 is neither final nor left temporary
    assert _complete_steps(wd) == [1] and _tmp_dirs(wd) == []
    _assert_same_step(wd, reference, 1)


def _unprivileged():
    """A command prefix that takes root's permission override away (chmod binds root only
    without CAP_DAC_OVERRIDE); None when that is not possible here."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return (setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--")


def test_read_only_checkpoints_while_saving(cli, reference, tmp_path):
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: a read-only folder does not bind root")
    wd = tmp_path / "run"
    try:
        rc, out = _run(cli, _args(cli, wd, driver=("read-only", "2")), tmp_path / "ro.log",
                       prefix=prefix)
        assert rc == 2
        line = _error_line(out)
        assert "could not write checkpoint 2" in line and "Permission denied" in line
        assert "choose another --workdir" in line
        assert _complete_steps(wd) == [1] and _tmp_dirs(wd) == []
        _assert_same_step(wd, reference, 1)
    finally:
        if (wd / "checkpoints").exists():
            (wd / "checkpoints").chmod(0o755)


# ------------------------------------------------------------------------ determinism


def test_two_runs_with_same_flags_and_seed_are_identical(cli, reference, tmp_path):
    wd = tmp_path / "again"
    rc, out = _run(cli, _args(cli, wd), tmp_path / "again.log")
    assert rc == 0, out[-3000:]
    _assert_same_run(wd, reference)


def test_eight_simulated_devices_agree_with_one(cli):
    out, err = cli["eight"].communicate(timeout=300)
    assert cli["eight"].returncode == 0, err[-3000:]
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    one, eight = res["1"], res["8"]
    assert one["devices"] == 1 and eight["devices"] == 8
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    for a, b in zip(eight["params"], one["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
