"""Worker processes (``core/workers.py``) as a run's process starts them."""

from __future__ import annotations

import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def echo(jobs: Connection) -> None:
    """A worker target: answer each job with itself, until ``None``."""
    while (job := jobs.recv()) is not None:
        jobs.send(job)


def test_a_worker_does_not_import_the_main_module_again(tmp_path: Path) -> None:
    """A run's main module is Prefect's command (seconds of imports): a spawned worker
    starts from its target's own module instead."""
    main = tmp_path / "run.py"
    main.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "if __name__ != '__main__':\n"
        "    print('main module imported again in', __name__, flush=True)\n"
        "from dns_lifecycle.core.workers import start_worker\n"
        "from tests.test_workers import echo\n"
        "if __name__ == '__main__':\n"
        "    worker = start_worker(echo, (), 'echo')\n"
        "    worker.jobs.send('ping')\n"
        "    print(worker.jobs.recv(), flush=True)\n"
        "    worker.stop()\n"
    )
    done = subprocess.run(
        [sys.executable, str(main)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ping\n"


def test_a_turn_whose_holder_never_gives_it_back_is_waited_for_only_so_long():
    """A process killed while it held a shared turn never releases it: the others wait
    ``patience`` and go on without it, and leave the lock as it was."""
    import time

    from dns_lifecycle.core.workers import CONTEXT, shared_turn

    lock = CONTEXT.Lock()
    with shared_turn(lock):  # free: taken, and given back after the block
        pass
    assert lock.acquire(timeout=0)  # now held, as by a process that died holding it
    started = time.monotonic()
    with shared_turn(lock, patience=0.2):
        waited = time.monotonic() - started
    assert 0.2 <= waited < 2
    assert not lock.acquire(timeout=0)  # not released by a block that did not take it


def test_a_turn_waited_out_once_is_not_waited_for_again():
    """Once a process has waited a turn out, its later blocks go on at once: a dead
    holder would otherwise cost each of its writes the whole patience."""
    import time

    from dns_lifecycle.core.workers import CONTEXT, shared_turn

    lock = CONTEXT.Lock()
    assert lock.acquire(timeout=0)  # held, as by a process that died holding it
    with shared_turn(lock, patience=0.2):
        pass
    started = time.monotonic()
    for _ in range(5):
        with shared_turn(lock, patience=0.2):
            pass
    assert time.monotonic() - started < 0.2
