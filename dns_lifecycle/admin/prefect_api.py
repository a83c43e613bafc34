"""Prefect's temporary API for one command, as a child process that dies with it.

With no ``PREFECT_API_URL``, Prefect starts a temporary API itself the first time a
flow needs one (``prefect.server.api.server.SubprocessASGIServer``: ``python -m uvicorn
--factory prefect.server.api.server:create_app`` in a child process, stopped by an
``atexit`` hook). A SIGKILL of the command runs no ``atexit`` hook: that child went on
running, holding the caller's stdout, and a caller reading it to its end hung.

``temporary_api`` starts the same server the same way, but the child asks the kernel
to kill it when its parent dies (Linux's ``PR_SET_DEATHSIG``, set in the child before
it runs the server), reads no stdin and writes no stdout; then it points Prefect at it.
With ``PREFECT_API_URL`` set (a real server, or the tests' harness) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import httpx

from dns_lifecycle.core.errors import LifecycleError

# prctl(2): the signal this process gets when the thread that started it ends.
_PR_SET_DEATHSIG = 1
# uvicorn's exit status when its port was taken meanwhile: another port is tried.
_PORT_TAKEN = 3


@contextmanager
def temporary_api() -> Iterator[None]:
    """Run the block against a temporary Prefect API that ends with this process,
    unless an API is configured; see the module docstring."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        yield
        return
    patience = float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    process, url = _start(patience)
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield
            finally:
                _send_what_is_queued()
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _send_what_is_queued() -> None:
    """Hand the API the logs and events Prefect still holds, while it is there: stopped
    first, it leaves Prefect's background senders printing "Error logging to API" as
    the command ends."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with suppress(Exception):  # best effort: what is lost is the run's own log lines
            worker.drain_all(timeout=5)


def _start(patience: float) -> tuple[subprocess.Popen[bytes], str]:
    """The server's process and its API URL, once it answers."""
    deadline = time.monotonic() + patience
    while True:
        port = _free_port()
        process = subprocess.Popen(
            _command(port),
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=_dies_with(os.getpid()),  # noqa: PLW1509 (set before any exec)
        )
        url = f"http://127.0.0.1:{port}/api"
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                code = process.poll()
                if code is not None:
                    break
                with suppress(httpx.TransportError):
                    if client.get(f"{url}/health").status_code == 200:
                        return process, url
                time.sleep(0.1)
        if process.poll() == _PORT_TAKEN and time.monotonic() < deadline:
            continue
        process.kill()
        process.wait()
        raise LifecycleError(
            f"Prefect's temporary API did not start within {patience:g} s (exit status "
            f"{process.returncode}): raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, "
            "or set PREFECT_API_URL to a running Prefect server"
        )


def _command(port: int) -> list[str]:
    import prefect

    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(prefect.__module_path__.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def _environment() -> dict[str, str]:
    """The environment Prefect gives its own temporary server."""
    from prefect.settings import get_current_settings

    return {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dies_with(parent: int) -> Callable[[], None] | None:
    """What the child runs before the server: have the kernel SIGKILL it when
    ``parent`` ends (the death signal follows the thread that started the child: this
    one, the command's main thread, which lives as long as the command)."""
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here: between fork and exec the child should only make the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        prctl(_PR_SET_DEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nothing will tell
            os._exit(1)

    return arm
