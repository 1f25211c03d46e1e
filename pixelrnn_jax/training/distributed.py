"""Many processes, one run: JAX's distributed runtime started from flags or the platform.

    initialize(DistributedConfig(coordinator_address="10.0.0.1:1234", num_processes=2,
                                 process_id=0))
    initialize(DistributedConfig(distributed=True))    # a TPU pod slice, SLURM, Open MPI

After `initialize`, `jax.devices()` lists the devices of every process, so the mesh of
`training.steps.make_mesh` spans them all; each process feeds its rows of a batch
(`Stepper.local_rows`), orbax writes checkpoints from every process, and only process 0
(`is_primary`) writes the run's files. A process that is not part of a distributed run
(the default) is process 0 of 1, and nothing here changes what it does.

The runtime ends a process from native code (a stack trace, no Python exception) when the
coordinator does not answer in time, so the wait is bounded by a watchdog of its own that
ends the process first, with one line.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import sys
import threading
from typing import Callable

import jax
import orbax.checkpoint as ocp

__all__ = ["DistributedConfig", "initialize", "is_primary", "barrier", "primary_first",
           "coordinator_reachable"]


_BARRIERS = itertools.count()


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Where the processes of a run find each other (not part of what a run trains).

    Attributes:
      distributed: Join JAX's distributed runtime; what the next three flags leave unset
        is detected from the platform (Cloud TPU pod slice, SLURM, Open MPI).
      coordinator_address: host:port of process 0, the same for every process (implies
        --distributed).
      num_processes: Processes in the run, the same for every process (0: detected).
      process_id: This process's index, 0 to num_processes - 1 (-1: detected).
      distributed_timeout: Seconds to wait for the coordinator and every process to join;
        then one error line and exit code 2.
      heartbeat_timeout: Seconds without a heartbeat after which a process counts as dead
        and every other process stops.
    """

    distributed: bool = False
    coordinator_address: str | None = None
    num_processes: int = 0
    process_id: int = -1
    distributed_timeout: int = 300
    heartbeat_timeout: int = 100

    def __post_init__(self):
        checks = (("num_processes", self.num_processes >= 0, ">= 0 (0: detected)"),
                  ("process_id", self.process_id >= -1, ">= 0, or -1 (detected)"),
                  ("distributed_timeout", self.distributed_timeout >= 1, ">= 1"),
                  ("heartbeat_timeout", self.heartbeat_timeout >= 1, ">= 1"))
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: it must be "
                                 f"{valid}")
        if self.num_processes and self.process_id >= self.num_processes:
            raise ValueError(f"process_id={self.process_id} is invalid: with "
                             f"num_processes={self.num_processes} it must be at most "
                             f"{self.num_processes - 1}")
        address = self.coordinator_address
        if address is not None and not _split_address(address):
            raise ValueError(f"coordinator_address={address!r} is invalid: it must be "
                             f"host:port, e.g. 10.0.0.1:1234")

    @property
    def enabled(self) -> bool:
        return (self.distributed or self.coordinator_address is not None
                or self.num_processes > 0 or self.process_id >= 0)

    @property
    def explicit(self) -> bool:
        """Everything given: no detection (and the flags override the platform's)."""
        return (self.coordinator_address is not None and self.num_processes > 0
                and self.process_id >= 0)


def _split_address(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def coordinator_reachable(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    parts = _split_address(address)
    if parts is None:
        return False
    try:
        with socket.create_connection(parts, timeout=timeout):
            return True
    except OSError:
        return False


def _exit_with(message: str) -> None:
    """Ends the process from any thread: sys.exit in a thread ends only that thread, and the
    main thread is blocked in the runtime's native code."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    os._exit(2)


def _timeout_message(config: DistributedConfig, address: str | None) -> str:
    seconds = config.distributed_timeout
    n = config.num_processes or "all"
    me = f"process {config.process_id}" if config.process_id >= 0 else "this process"
    if address is None:
        return (f"{me} did not join the distributed runtime within {seconds:g} s (the "
                f"platform's coordinator and processes were not found); give "
                f"--coordinator_address, --num_processes and --process_id, or raise "
                f"--distributed_timeout")
    if config.process_id != 0 and not coordinator_reachable(address):
        return (f"no coordinator answered at {address} within {seconds:g} s ({me} of {n}); "
                f"start process 0 with the same --coordinator_address (it is the "
                f"coordinator), check the host and port are reachable from here, or raise "
                f"--distributed_timeout")
    return (f"the coordinator at {address} is up but not every one of {n} processes joined "
            f"within {seconds:g} s; start every process (--process_id 0 to "
            f"{config.num_processes - 1 if config.num_processes else 'N-1'}) with the same "
            f"--coordinator_address and --num_processes, or raise --distributed_timeout")


def initialize(config: DistributedConfig,
               on_timeout: Callable[[str], None] = _exit_with) -> bool:
    """Starts JAX's distributed runtime when `config` asks for it; True when it did.

    Must run before anything touches a JAX device. Flags that are given are used as they
    are (all three given: no detection); the rest come from the platform. If the
    coordinator and every process have not joined within `config.distributed_timeout`
    seconds, `on_timeout(message)` is called from a watchdog thread; it must end the
    process (the default writes `error: message` to stderr and exits with code 2).
    """
    if not config.enabled:
        return False
    if jax.config.jax_cpu_collectives_implementation is None:
        # collectives between processes on CPU (simulated devices, tests)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address = config.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    fired = threading.Event()

    def expire():
        fired.set()
        on_timeout(_timeout_message(config, address))

    watchdog = threading.Timer(config.distributed_timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator_address=config.coordinator_address,
            num_processes=config.num_processes or None,
            process_id=None if config.process_id < 0 else config.process_id,
            cluster_detection_method="deactivate" if config.explicit else None,
            # the runtime's own limit is later than the watchdog's: it aborts natively
            initialization_timeout=config.distributed_timeout + 60,
            heartbeat_timeout_seconds=config.heartbeat_timeout)
    except (ValueError, TypeError) as e:
        # what the platform did not provide (no cluster detected)
        raise ValueError(f"cannot start the distributed runtime: {e} Nothing was detected "
                         f"from the platform (TPU pod slice, SLURM, Open MPI); give "
                         f"--coordinator_address, --num_processes and --process_id") from None
    except RuntimeError as e:
        raise ValueError(f"cannot start the distributed runtime: "
                         f"{str(e).splitlines()[0]}") from None
    finally:
        watchdog.cancel()
    if fired.is_set():   # on_timeout returned instead of ending the process
        raise RuntimeError("distributed initialization timed out")
    return True


def is_primary() -> bool:
    """Whether this process writes the run's files (metrics, results, weights): process 0."""
    return jax.process_index() == 0


def barrier(name: str, timeout_s: float = 6 * 3600) -> None:
    """Every process waits here for the others, up to `timeout_s` (nothing with one
    process). Through the coordinator's key-value store, not a collective: a collective's
    first rendezvous gives up after seconds, and a process may wait here for minutes (a
    dataset being prepared, a program compiling elsewhere). Every process must pass the
    same barriers in the same order."""
    if jax.process_count() > 1:
        sync = ocp.multihost.get_barrier_sync_fn()
        sync(key=f"pixelrnn-{name}-{next(_BARRIERS)}", timeout_ms=int(timeout_s * 1000))


def primary_first(fn: Callable, name: str):
    """fn() on process 0, then on the others: what writes a shared cache (a dataset built
    on first use) is written once, and read by the rest after it is complete."""
    if jax.process_count() == 1:
        return fn()
    if is_primary():
        out = fn()
        barrier(name)
    else:
        barrier(name)
        out = fn()
    barrier(f"{name}-everywhere")   # what comes next may be a collective
    return out
