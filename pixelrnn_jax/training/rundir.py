"""A run directory: created and checked writable, JSON written atomically, the per-epoch
metrics file kept consistent with the checkpoints, and the identity of the run that owns it.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np

from pixelrnn_jax.training.errors import TrainingError

__all__ = ["prepare", "write_json", "append_metrics", "truncate_metrics", "read_metrics",
           "run_identity", "check_same_run", "format_seconds"]


def prepare(workdir) -> Path:
    """Creates `workdir` and checks that it can be written (one clear line if not)."""
    wd = Path(workdir)
    try:
        wd.mkdir(parents=True, exist_ok=True)
        # one probe per process: the processes of a distributed run check the same folder
        probe = wd / f".write_test-{socket.gethostname()}-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"workdir {wd} is not writable ({e.strerror}); choose another "
                            f"--workdir") from None
    return wd


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, default=_json_default)


def write_json(path, obj) -> Path:
    """Writes JSON through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_json(obj))
    os.replace(tmp, path)
    return path


def append_metrics(path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, default=_json_default) + "\n")


def read_metrics(path) -> list[dict]:
    """The complete records of a metrics file (a half-written last line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def truncate_metrics(path, epoch: int) -> None:
    """Drops the metric records of epochs after the restored checkpoint (a killed run's tail,
    possibly a half-written last line)."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in read_metrics(path) if isinstance(r, dict) and r.get("epoch", 1e9) <= epoch]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
    os.replace(tmp, path)


def run_identity(config: dict, resumable: tuple[str, ...]) -> dict:
    """The settings that make a run this run: `config` without the fields a rerun may
    change (`resumable`) and still continue the same run."""
    d = {k: v for k, v in config.items() if k not in resumable}
    return json.loads(json.dumps(d, default=_json_default))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def check_same_run(saved: dict | None, now: dict, workdir) -> None:
    """Refuses to resume checkpoints of a run with other settings (they would be ignored)."""
    if saved is None or saved == now:
        return
    a, b = _flatten(saved), _flatten(now)
    diff = ", ".join(f"{k}={b.get(k)!r} (checkpoints: {a.get(k)!r})"
                     for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    raise ValueError(f"workdir {workdir} holds checkpoints of a run with other settings: "
                     f"{diff}; rerun with the settings of that run to resume it, or choose "
                     f"another --workdir")


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s"
