"""Worker processes that end with the run's process.

A worker is spawned (fork is unsafe beside threads) with two pipes: ``jobs``, for the
work and its results both ways, and a lifeline whose writing end only the run's process
holds. A thread in the worker waits on the lifeline and ends the worker the moment it
closes, SIGKILL of the run's process included: no worker goes on calling out (sending
mail, writing to a DNS server) for a run that is gone, so only what was in flight can
be done twice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

# The start method of every worker, and of the locks they share.
CONTEXT = multiprocessing.get_context("spawn")


@dataclass
class Worker:
    process: BaseProcess
    jobs: Connection
    lifeline: Connection

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.stop()

    def stop(self, timeout: float = 5) -> None:
        """Ask the worker to end (``None`` on its jobs pipe), wait, then make sure."""
        with contextlib.suppress(OSError, ValueError):
            self.jobs.send(None)
        self.process.join(timeout=timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=timeout)
        self.jobs.close()
        self.lifeline.close()


# How long a process waits for a turn that processes share before going on without it.
TURN_PATIENCE = 5.0

# The turns this process has waited out: their holder is taken to be dead, and they are
# not waited for again. (A dead holder never gives a turn back: waiting each time would
# cost every later write of the process its patience, and stall the run for minutes.)
_WAITED_OUT: weakref.WeakSet[Any] = weakref.WeakSet()


@contextlib.contextmanager
def shared_turn(lock: Any | None, patience: float = TURN_PATIENCE) -> Iterator[None]:
    """Hold ``lock`` (shared by processes, for a database that takes one writer at a
    time) for the block; None: there is no turn to take. A process killed while holding
    it never gives it back, so after ``patience`` seconds the block runs without it, as
    does every later block of this process: the turn only spares the database's own wait
    for a busy writer, which then keeps the writes apart."""
    taken = None
    if lock is not None and lock not in _WAITED_OUT:
        if lock.acquire(timeout=patience):
            taken = lock
        else:
            _WAITED_OUT.add(lock)
    try:
        yield
    finally:
        if taken is not None:
            taken.release()


def process_count(setting: int) -> int:
    """How many processes a ``*_processes`` setting asks for (0: one per core)."""
    return setting or os.cpu_count() or 1


def start_worker(target: Callable[..., None], args: tuple[Any, ...], name: str) -> Worker:
    """Start ``target(jobs, *args)`` in a worker process tied to this one's life."""
    jobs, their_jobs = CONTEXT.Pipe()
    their_lifeline, lifeline = CONTEXT.Pipe(duplex=False)
    process = CONTEXT.Process(
        target=_run, args=(target, their_jobs, their_lifeline, args), name=name, daemon=True
    )
    with _main_module_not_rerun():
        process.start()
    their_jobs.close()
    their_lifeline.close()
    return Worker(process, jobs, lifeline)


@contextlib.contextmanager
def _main_module_not_rerun() -> Iterator[None]:
    """Spawn a worker without importing the run's main module again in it.

    A spawned process imports the parent's ``__main__`` before its target, so that a
    target defined there can be found. Every worker target lives in an importable module,
    and a run's main module is a Prefect command or a script that loads all of Prefect:
    seconds of CPU per worker, taken from the run it is there to speed up. Spawning reads
    ``sys.modules["__main__"]`` only while it starts the process.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _run(
    target: Callable[..., None], jobs: Connection, lifeline: Connection, args: tuple[Any, ...]
) -> None:
    threading.Thread(target=_end_with_parent, args=(lifeline,), daemon=True).start()
    target(jobs, *args)


def _end_with_parent(lifeline: Connection) -> None:
    """Wait on the pipe only the run's process writes to; when it closes, end now."""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os._exit(1)  # not sys.exit: no cleanup that could call out once more
