"""A SIGKILL of `dns-lifecycle run` mid-release: no process it started outlives it, and
whoever reads its stdout sees the end of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from dns_lifecycle.core.settings import REPO_ROOT
from tests.live_dns.helpers import RELEASE
from tests.live_dns.test_faults import (
    _setup,
    proxies,  # noqa: F401 (a fixture)
)


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent, process group, state) of ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), fields[0]


def _family(pid: int) -> set[int]:
    """The living processes of ``pid``'s process group, and its descendants."""
    stats = {int(e): _stat(int(e)) for e in os.listdir("/proc") if e.isdigit()}
    alive = {p: s for p, s in stats.items() if s is not None and s[2] != "Z"}
    family = {p for p, s in alive.items() if s[1] == pid}
    grown = True
    while grown:
        children = {p for p, s in alive.items() if s[0] in family | {pid}} - family
        family |= children
        grown = bool(children)
    return family - {pid}


def test_sigkill_of_dns_lifecycle_run_ends_its_prefect_api_and_closes_the_pipe(
    live_db,
    live_settings,
    pdns_paid,
    pdns_free,
    proxies,  # noqa: F811
    tmp_path,
):
    """`dns-lifecycle run`, killed with SIGKILL while the release waits for the free
    server: the temporary Prefect API and every other process of its group end with it,
    and the caller's read of its stdout ends."""
    _setup(live_db, live_settings)
    proxies[1].fault = lambda r: "hold" if r.method == "POST" else None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DNSL_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "DATABASE_URL": live_settings.database_url,
            "DNSL_OUTBOX_DIR": str(tmp_path / "outbox"),
            "DNSL_CLUSTER_API_KEYS": json.dumps(
                {k: v.get_secret_value() for k, v in live_settings.cluster_api_keys.items()}
            ),
            "DNSL_CLUSTER_TIMEOUT_SECONDS": "120",
            "DNSL_RELEASE_PROCESSES": "1",
        }
    )
    stderr = open(tmp_path / "stderr.txt", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "dns_lifecycle.admin.cli", "run", "--as-of", RELEASE.isoformat()],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,  # its own process group, as a shell job has
    )
    family: set[int] = set()
    try:
        if not proxies[1].held.wait(240):
            proc.kill()
            proc.wait()
            raise AssertionError(
                "the run never reached the release:\n"
                + (tmp_path / "stderr.txt").read_text()[-3000:]
            )
        family = _family(proc.pid)
        assert family, "the run started no process (its temporary Prefect API)"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        read = threading.Thread(target=proc.stdout.read, daemon=True)  # type: ignore[union-attr]
        read.start()
        read.join(timeout=30)
        assert not read.is_alive(), "a process of the killed run still holds its stdout"
        deadline = time.monotonic() + 30
        while _family(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _family(proc.pid), "a process of the killed run outlived it"
    finally:
        for pid in _family(proc.pid) | family:  # only what this run started
            if _stat(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        stderr.close()
