"""Shared plumbing of the absl experiment scripts: flag parsing with one-line errors."""
from __future__ import annotations

import logging
import sys

from absl import flags


def fail(message: str, code: int = 2):
    """Prints a one-line error and exits (never a traceback for a user's mistake)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def parse_flags(argv):
    """absl flag parsing that reports a bad flag or value in one line and exits with 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{e} (see --helpfull)")


def setup_logging():
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger("pixelrnn_jax").setLevel(logging.INFO)
    # orbax logs every save at INFO through absl's logger
    for noisy in ("absl", "orbax", "jax._src", "tensorflow_datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("jax").setLevel(logging.WARNING)
