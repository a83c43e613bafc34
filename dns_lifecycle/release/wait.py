"""A release waits within its run for the free cluster's secondaries (rule 6).

A zone created on a hidden primary reaches the public secondaries a few seconds later,
by zone transfer. A verification that finds a secondary behind (``behind``) is not a
failure: its domain is set aside (a ``Waiting`` outcome) while the rest of its chunk
goes on, and once the chunk is done, only the domains set aside are asked again, with
back-off, for up to ``verify_wait_seconds``; those whose secondaries caught up are
verified again and go on, the others wait for the next run. No transaction is open while waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dns_lifecycle.channels.clusters import ClusterConfig
from dns_lifecycle.channels.clusters.catchup import behind, delays
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.release.report import SharedReport
from dns_lifecycle.store import release as store
from dns_lifecycle.store import release_outcomes as outcomes

WAITING = "domains_waiting_for_secondaries"


class Secondaries:
    """The secondaries of a run (of one of its processes) that stayed behind for a whole
    wait: no later chunk waits for them again in this run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given_up: set[str] = set()

    def given_up(self) -> set[str]:
        with self._lock:
            return set(self._given_up)

    def give_up(self, addresses: set[str]) -> None:
        with self._lock:
            self._given_up |= addresses


def still_copying(
    w: store.DomainWork, free: ClusterConfig, timeout: float
) -> outcomes.Waiting | None:
    """``w`` set aside when a public server of ``free`` does not serve its zone yet, or an
    older version of it; None when they all serve the same version (a difference then is
    the zone's)."""
    lagging = behind(w.name, list(free.nameserver_addresses), timeout)
    if not lagging:
        return None
    first = next(iter(lagging.items()))
    message = f"waiting for the secondaries of {free.code}: {first[0]} {first[1]}"
    return outcomes.waiting(w, message, lagging)


def catch_up(
    free: ClusterConfig,
    secondaries: Secondaries,
    settings: Settings,
    report: SharedReport,
    waiting: list[store.DomainWork],
    lagging: dict[int, set[str]],
    sleep: Callable[[float], None] = time.sleep,
) -> list[store.DomainWork]:
    """Ask again, with back-off, whether the servers of ``free`` serve the zones of
    ``waiting`` (``lagging``: domain id -> the addresses behind); returns the domains
    whose servers all caught up, to be verified again. The others are counted as
    waiting for secondaries in ``report``."""
    timeout = settings.dns_timeout_seconds
    pending = {w.domain_id: w for w in waiting}
    caught: list[store.DomainWork] = []
    for delay in delays(settings.verify_wait_seconds):
        # A secondary that stayed behind for a whole wait is not waited for again in
        # this run: a server that is down would otherwise cost every chunk the wait.
        given_up = secondaries.given_up()
        if all(lagging[i] <= given_up for i in pending):
            break
        sleep(delay)
        silent: set[str] = set()  # asked once per round, not once per domain
        for i, w in list(pending.items()):
            now_behind = behind(w.name, list(free.nameserver_addresses), timeout, silent)
            if now_behind:
                lagging[i] = set(now_behind)
            else:
                caught.append(pending.pop(i))
        if not pending:
            break
    else:
        secondaries.give_up(set().union(*(lagging[i] for i in pending)))
    report.add(WAITING, len(pending))
    return caught
