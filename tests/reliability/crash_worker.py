"""One lifecycle step in a process of its own, so that a test can SIGKILL it mid-way.

    python -m tests.reliability.crash_worker CONFIG.json

CONFIG holds ``settings`` (Settings fields), ``as_of``, ``batch_size``, ``step``
(``reminders``, ``auto_renew`` or ``release``) and, for ``auto_renew``, ``hang_in_batch``
and ``marker``: the worker writes the marker and hangs inside the transaction of that
batch, after its orders, balances and notices are written and before the commit. The
other steps hang on a server the test controls (an SMTP reply, a registrar answer).
For ``release``, ``chunk`` (optional) sets the domains per chunk and lets a pool of
release processes start from one chunk per process, so that a few domains use it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dns_lifecycle.core.settings import Settings
from dns_lifecycle.release import chunks as release_chunks
from dns_lifecycle.release import pool as release_pool
from flows import auto_renew as auto_renew_module
from flows.auto_renew import renew_due
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.release import release_due
from flows.reminders import plan_reminders


def _write_whole(marker: Path, text: str) -> None:
    # The test waits for the marker to exist, then reads it: renamed into place, it
    # never exists half-written.
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text(text)
    partial.rename(marker)


def _hang_in_batch(batch: int, marker: Path) -> None:
    original = auto_renew_module.auto_renew_batch
    calls = {"n": 0}

    def hanging(session, instance_ids, **kwargs):
        outcome = original(session, instance_ids, **kwargs)
        calls["n"] += 1
        if calls["n"] == batch:
            session.flush()
            _write_whole(marker, json.dumps(sorted(instance_ids)))
            time.sleep(600)  # the test kills the process here
        return outcome

    auto_renew_module.auto_renew_batch = hanging


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    settings = Settings(**config["settings"])
    step = config["step"]
    if step == "auto_renew":
        _hang_in_batch(config["hang_in_batch"], Path(config["marker"]))
    if "chunk" in config:
        release_chunks.CHUNK = config["chunk"]
        release_pool.MIN_CHUNKS_PER_PROCESS = 1
    with open_run(config["as_of"], False, config["batch_size"], settings=settings) as ctx:
        if step == "reminders":
            plan_reminders(ctx)
        elif step == "auto_renew":
            renew_due(ctx)
        elif step == "release":
            release_due(ctx)
        else:
            raise SystemExit(f"unknown step {step!r}")
        deliver_pending(ctx)
    print("finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
