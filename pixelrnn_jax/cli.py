"""The experiment scripts' command line: flags generated from the config dataclasses,
flagfiles found beside the script, and one-line errors.

    FLAGS = cli.define_config_flags(TrainConfig)     # --cell, --K, ..., --batch_size, ...
    config = cli.config_from_flags(TrainConfig)

Every field of a config (and of the configs it nests: TrainConfig.model's ModelConfig) is a
flag of the same name, with the field's default and the description its class docstring
gives under "Attributes:", so a default is written once, in the dataclass.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import types
import typing
from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging

from pixelrnn_jax.training import DistributedConfig, TrainingError, distributed

__all__ = ["fail", "define_config_flags", "config_from_flags", "expand_flagfiles",
           "parse_flags", "setup_logging", "user_errors", "run", "start_distributed",
           "USER_ERRORS"]

FLAGS = flags.FLAGS
# the errors a user's input can cause; a script reports them in one line
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, TrainingError)


def fail(message: str, code: int = 2):
    """Prints a one-line error and exits (never a traceback for a user's mistake)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _fail_from_any_thread(message: str):
    """`fail` where sys.exit cannot end the process (a watchdog thread)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(2)


def start_distributed(config: DistributedConfig) -> bool:
    """Joins the distributed runtime that `config` (the --distributed flags) describes;
    nothing for a run of one process. A coordinator or processes that do not answer within
    --distributed_timeout end the process with one line and exit code 2."""
    with user_errors():
        return distributed.initialize(config, on_timeout=_fail_from_any_thread)


@contextlib.contextmanager
def user_errors(prefix: str = ""):
    """Turns a user's mistake (bad value, missing file, a run that cannot go on) into one
    line on stderr and exit code 2."""
    try:
        yield
    except USER_ERRORS as e:
        fail(f"{prefix}{e}")


# ------------------------------------------------------------------ flags from configs


def field_descriptions(cls) -> dict[str, str]:
    """{field: description} from the "Attributes:" section of a dataclass's docstring."""
    doc = cls.__doc__ or ""
    out, name = {}, None
    in_section = False
    for line in doc.splitlines():
        if line.strip() == "Attributes:":
            in_section = True
            continue
        if not in_section:
            continue
        if not line.strip():
            name = None
            continue
        m = re.match(r"^\s{2,}(\w+):\s*(.*)$", line)
        if m and m.group(1) in {f.name for f in dataclasses.fields(cls)}:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name is not None:
            out[name] += " " + line.strip()
    return out


def _flag_type(hint):
    """(base type, optional) of a field's type hint: int, float, str, bool, or X | None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


def _fields(cls):
    """(field, type hint) of a dataclass, nested dataclass fields expanded in place."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _fields(hint)
        else:
            yield cls, f, hint


def define_config_flags(cls, exclude=(), flag_values=FLAGS):
    """Defines one flag per field of the dataclass `cls` (nested configs flattened), except
    the fields in `exclude`, as key flags of the calling script (`--helpshort` lists them).
    A field without a description is an error: every flag says what it does."""
    caller = sys._getframe(1).f_globals.get("__name__")
    module = sys.argv[0] if caller == "__main__" else caller
    for owner, f, hint in _fields(cls):
        if f.name in exclude or f.name in flag_values:
            continue
        base, optional = _flag_type(hint)
        if base not in _DEFINE:
            raise TypeError(f"{owner.__name__}.{f.name}: no flag for type {hint}")
        help_text = field_descriptions(owner).get(f.name)
        if not help_text:
            raise ValueError(f"{owner.__name__}.{f.name} has no description under "
                             f"'Attributes:' in its docstring")
        _DEFINE[base](f.name, f.default, help_text, flag_values=flag_values,
                      module_name=module)
    return flag_values


def config_from_flags(cls, flag_values=FLAGS, **overrides):
    """An instance of `cls` from the parsed flags (nested configs built the same way); a
    field without a flag keeps its default, `overrides` replace values."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = config_from_flags(hints[f.name], flag_values, **overrides)
        elif f.name in overrides:
            kwargs[f.name] = overrides[f.name]
        elif f.name in flag_values:
            kwargs[f.name] = flag_values[f.name].value
    return cls(**kwargs)


# ---------------------------------------------------------------------------- flagfiles


def _find_flagfile(name: str, script_dir: Path, including: Path | None) -> Path:
    path = Path(name).expanduser()
    candidates = [path]
    if not path.is_absolute() and path.parent == Path("."):
        candidates.append(script_dir / path.name)
        if including is not None:
            candidates.append(including.parent / path.name)
    for c in candidates:
        if c.is_file():
            return c
    known = sorted(p.name for p in script_dir.glob("*.flags"))
    where = " or ".join(dict.fromkeys(str(c.parent) for c in candidates))
    listing = f"the flagfiles in {script_dir} are: {', '.join(known)}" if known else \
        f"there are no flagfiles in {script_dir}"
    raise FileNotFoundError(f"flagfile {name!r} not found in {where}; {listing}")


def expand_flagfiles(args: list[str], script_dir, including: Path | None = None,
                     seen: tuple = ()) -> list[str]:
    """Replaces every --flagfile=F (also "--flagfile F") by the flags F holds, nested
    flagfiles included. A bare name F not found in the working directory is looked up
    beside the script (and beside the flagfile that names it). Lines of a flagfile: one flag
    each; blank lines and lines starting with # or // are comments (absl's format)."""
    script_dir = Path(script_dir)
    out, i = [], 0
    while i < len(args):
        a = args[i]
        name = None
        if a.startswith("--flagfile="):
            name = a.split("=", 1)[1]
        elif a in ("--flagfile", "-flagfile") and i + 1 < len(args):
            name, i = args[i + 1], i + 1
        elif a.startswith("-flagfile="):
            name = a.split("=", 1)[1]
        if name is None:
            out.append(a)
        else:
            path = _find_flagfile(name, script_dir, including).resolve()
            if path in seen:
                raise ValueError(f"flagfile {path} includes itself (through "
                                 f"{' -> '.join(str(p) for p in seen)})")
            lines = [ln.strip() for ln in path.read_text().splitlines()]
            inner = [ln for ln in lines if ln and not ln.startswith(("#", "//"))]
            out += expand_flagfiles(inner, script_dir, path, seen + (path,))
        i += 1
    return out


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with flagfiles looked up beside the script, a bad flag or value
    reported in one line (exit code 2), and positional arguments refused."""
    script_dir = Path(argv[0]).resolve().parent
    try:
        args = expand_flagfiles(argv[1:], script_dir)
        rest = FLAGS([argv[0]] + args)
    except flags.Error as e:
        fail(f"{e} (see --helpfull)")
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    if len(rest) > 1:
        fail(f"unexpected arguments {rest[1:]}; all options are --flags")
    return rest


def setup_logging():
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger("pixelrnn_jax").setLevel(logging.INFO)
    # orbax logs every save at INFO through absl's logger
    for noisy in ("absl", "orbax", "jax._src", "tensorflow_datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("jax").setLevel(logging.WARNING)


def run(main, argv: list[str] | None = None):
    """`app.run(main)` with `parse_flags`, the logging of the scripts, and user errors as
    one line."""
    def wrapped(args):
        setup_logging()
        with user_errors():
            return main(args)
    app.run(wrapped, argv=argv, flags_parser=parse_flags)
