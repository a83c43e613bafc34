"""Faults at every stage of a live release: API errors, timeouts, dropped connections,
a failing registrar, and SIGKILL. Whatever happens, the paid copy is never deleted
without a verified free copy, and a later healthy run finishes the release once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from dns_lifecycle.admin.load_zones import load_zones
from dns_lifecycle.core.settings import REPO_ROOT
from flows.release import release_due
from models import Cluster, Notification, Ticket, ZoneSnapshot
from tests.http_sink import HttpSink, Reply, SeenRequest
from tests.live_dns.helpers import RELEASE, expired, rrsets_of, run, served, unique, zone_exists
from tests.live_dns.servers import PowerDns

RECORDS = [
    ("A", "@", "192.0.2.20", 300),
    ("TXT", "txt", "a fault-tolerant zone", 300),
    ("MX", "@", "5 mx.example.net.", 300),
]


class Proxy:
    """A PowerDNS API behind a proxy that can fail, hang or hold one kind of request."""

    def __init__(self, server: PowerDns) -> None:
        self.server = server
        self.fault: Callable[[SeenRequest], str | None] = lambda r: None
        self.held = threading.Event()
        self.sink = HttpSink(self._respond)

    def _forward(self, r: SeenRequest) -> httpx.Response:
        url = f"{self.server.api_url}{r.path}" + (f"?{r.raw_query}" if r.raw_query else "")
        headers = {"X-API-Key": r.headers.get("x-api-key", "")}
        if r.body:
            headers["Content-Type"] = "application/json"
        return httpx.request(r.method, url, headers=headers, content=r.body, timeout=10)

    def _respond(self, r: SeenRequest) -> Reply:
        fault = self.fault(r)
        if fault == "500":
            return Reply(500, {"error": "injected server error"})
        if fault == "422":
            return Reply(422, {"error": "injected refusal"})
        if fault == "timeout":
            return Reply(200, {}, delay=30)
        if fault == "drop":
            return Reply(drop=True)
        if fault in ("applied-drop", "applied-hold"):
            self._forward(r)
            if fault == "applied-hold":
                self.held.set()
                return Reply(200, {}, delay=60)
            return Reply(drop=True)
        if fault == "hold":
            self.held.set()
            return Reply(200, {}, delay=60)
        response = self._forward(r)
        return Reply(
            response.status_code,
            response.content,
            headers={"Content-Type": response.headers.get("content-type", "application/json")},
        )


@pytest.fixture
def proxies(live_db, pdns_paid, pdns_free):
    paid, free = Proxy(pdns_paid), Proxy(pdns_free)
    with paid.sink, free.sink:
        with live_db.session() as s:
            s.get(Cluster, "paid-1").options = {"api_url": paid.sink.url}
            s.get(Cluster, "free").options = {"api_url": free.sink.url}
            s.commit()
        yield paid, free


def once(match: Callable[[SeenRequest], bool], fault: str) -> Callable[[SeenRequest], str | None]:
    """``fault`` for the first request that ``match``es, then healthy."""
    fired = {"n": 0}

    def decide(r: SeenRequest) -> str | None:
        if fired["n"] == 0 and match(r):
            fired["n"] += 1
            return fault
        return None

    return decide


WHERE = {
    "paid read": ("paid", lambda r: r.method == "GET" and "/zones/" in r.path),
    "free create": ("free", lambda r: r.method == "POST"),
    "free flush": ("free", lambda r: "cache/flush" in r.path),
    "paid NS rewrite": ("paid", lambda r: r.method == "PATCH"),
    "paid delete": ("paid", lambda r: r.method == "DELETE"),
}
# Every kind of fault where a zone is created or deleted; a server error and a lost
# answer everywhere else.
ALL_FAULTS = ("500", "422", "timeout", "drop", "applied-drop")
CASES = [
    (where, fault)
    for where in WHERE
    for fault in (ALL_FAULTS if where in ("free create", "paid delete") else ("500", "timeout"))
]


def _setup(db, settings):
    zone = f"{unique('fault')}.cn"
    inst = unique("inst")
    expired(db, inst, [{"name": zone, "registrar": "hichina", "records": RECORDS}])
    load_zones(settings, db, "paid-1")
    return zone, inst


def _assert_never_lost(zone, before, pdns_paid, pdns_free):
    """The one invariant: no paid copy is gone unless the free one serves it all."""
    if not zone_exists(pdns_paid, zone):
        assert served(pdns_free, zone, list(before)) == before


def _assert_finished_once(db, inst, zone, before, pdns_paid, pdns_free):
    assert served(pdns_free, zone, list(before)) == before
    assert not zone_exists(pdns_paid, zone)
    with db.session() as s:
        copies = s.execute(
            select(func.count()).select_from(ZoneSnapshot).where(ZoneSnapshot.instance_id == inst)
        ).scalar_one()
        notices = s.execute(
            select(func.count())
            .select_from(Notification)
            .where(Notification.instance_id == inst, Notification.kind == "released")
        ).scalar_one()
    assert copies == 1 and notices == 2  # one zone copy; one email and one SMS


@pytest.mark.parametrize(("where", "fault"), CASES)
def test_an_api_fault_never_loses_the_zone(
    live_db, live_settings, pdns_paid, pdns_free, proxies, where, fault
):
    """One failing call: the invariant holds; a later run finishes (or, for a refused
    create, a ticket asks a person)."""
    zone, inst = _setup(live_db, live_settings)
    before = served(pdns_paid, zone, rrsets_of(zone, RECORDS))
    side, match = WHERE[where]
    proxy = proxies[0] if side == "paid" else proxies[1]
    proxy.fault = once(match, fault)
    # Short enough for the timeouts to be quick, long enough for a busy machine.
    settings = live_settings.model_copy(update={"cluster_timeout_seconds": 1.0})

    run(settings, release_due, instance_ids=[inst])
    _assert_never_lost(zone, before, pdns_paid, pdns_free)
    again = run(settings, release_due, instance_ids=[inst])
    if where == "free create" and fault == "422":
        with live_db.session() as s:
            reasons = [
                t.reason for t in s.execute(select(Ticket)).scalars() if t.instance_id == inst
            ]
        assert reasons == ["free_zone_refused"] and zone_exists(pdns_paid, zone)
        return
    assert not again.failures, again.failures
    _assert_finished_once(live_db, inst, zone, before, pdns_paid, pdns_free)


def test_a_registrar_failure_keeps_the_paid_copy_until_the_switch(
    live_db, live_settings, pdns_paid, pdns_free
):
    """The registrar answers 500: the domain waits, verified, with its paid copy
    serving; once the registrar answers, the release finishes."""
    zone, inst = _setup(live_db, live_settings)
    before = served(pdns_paid, zone, rrsets_of(zone, RECORDS))
    healthy = {"on": False}
    with HttpSink(
        lambda r: (
            Reply(200, {"epp_statuses": []} if r.method == "GET" else {"ok": True})
            if healthy["on"]
            else Reply(500, "down")
        )
    ) as reg:
        settings = live_settings.model_copy(
            update={"registrar_backend": "http", "registrar_url": reg.url}
        )
        report = run(settings, release_due, instance_ids=[inst])
        assert any("HTTP 500" in f for f in report.failures)
        assert zone_exists(pdns_paid, zone)
        assert served(pdns_free, zone, list(before)) == before
        healthy["on"] = True
        run(settings, release_due, instance_ids=[inst])
    _assert_finished_once(live_db, inst, zone, before, pdns_paid, pdns_free)


def _killable_release(tmp_path, live_settings, **config) -> subprocess.Popen:
    """A release run in a process of its own (``crash_worker``), for a test to SIGKILL."""
    settings = live_settings.model_dump(mode="json")
    settings["cluster_api_keys"] = {
        k: v.get_secret_value() for k, v in live_settings.cluster_api_keys.items()
    }
    settings.update(config.pop("settings", {}))
    path = tmp_path / "worker.json"
    path.write_text(
        json.dumps(
            {
                "settings": settings,
                "as_of": RELEASE.isoformat(),
                "batch_size": 100,
                "step": "release",
                **config,
            }
        )
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_worker", str(path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


KILLS = {
    "before the free zone exists": ("free", lambda r: r.method == "POST", "hold"),
    "after the free zone was created": ("free", lambda r: r.method == "POST", "applied-hold"),
    "after the paid NS were rewritten": ("paid", lambda r: r.method == "PATCH", "applied-hold"),
    "after the paid zone was deleted": ("paid", lambda r: r.method == "DELETE", "applied-hold"),
}


@pytest.mark.parametrize("moment", list(KILLS))
def test_sigkill_anywhere_is_finished_by_the_next_run(
    live_db, live_settings, pdns_paid, pdns_free, proxies, tmp_path, moment
):
    """A release process killed with SIGKILL mid-call: the invariant holds, and the next
    run finishes it with one zone copy and one notice."""
    zone, inst = _setup(live_db, live_settings)
    before = served(pdns_paid, zone, rrsets_of(zone, RECORDS))
    side, match, fault = KILLS[moment]
    proxy = proxies[0] if side == "paid" else proxies[1]
    proxy.fault = once(match, fault)
    proc = _killable_release(tmp_path, live_settings)
    try:
        if not proxy.held.wait(60):
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the worker never got there:\n{out!r}\n{err[-3000:]!r}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    time.sleep(0.05)
    _assert_never_lost(zone, before, pdns_paid, pdns_free)
    run(live_settings, release_due, instance_ids=[inst])
    _assert_finished_once(live_db, inst, zone, before, pdns_paid, pdns_free)


def test_a_server_echoing_the_api_key_never_puts_it_in_a_report_or_ticket(
    live_db, live_settings, pdns_paid, pdns_free, proxies
):
    """A refusal whose body repeats the request's key: the key is masked everywhere."""
    zone, inst = _setup(live_db, live_settings)
    free = proxies[1]
    key = pdns_free.api_key

    def echo(r: SeenRequest) -> Reply:
        if r.method == "POST":
            return Reply(422, {"error": f"bad request with X-API-Key {r.headers['x-api-key']}"})
        return free._respond(r)

    free.sink.responder = echo
    report = run(live_settings, release_due, instance_ids=[inst])
    with live_db.session() as s:
        tickets = [t for t in s.execute(select(Ticket)).scalars() if t.instance_id == inst]
    assert tickets and tickets[0].reason == "free_zone_refused"
    texts = report.model_dump_json() + str(tickets[0].details)
    assert "**********" in texts and key not in texts


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = open(f"/proc/{entry}/status").read()  # noqa: SIM115
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        status = open(f"/proc/{pid}/status").read()  # noqa: SIM115
    except OSError:
        return True
    return "\nState:\tZ" in status  # ended, waiting to be reaped


def test_sigkill_of_a_run_with_release_processes_ends_them_and_the_next_run_finishes(
    live_db, live_settings, pdns_paid, pdns_free, proxies, tmp_path
):
    """A release run with a worker process, killed with SIGKILL while a zone's creation
    hangs: its release processes end with it, nothing is lost, and the next run
    finishes every zone once."""
    zones = dict(_setup(live_db, live_settings)[::-1] for _ in range(6))  # inst -> zone
    before = {zone: served(pdns_paid, zone, rrsets_of(zone, RECORDS)) for zone in zones.values()}
    # Every creation hangs: whichever process holds the free server's write turn, the
    # other waits on it, and only the end of the run can end it.
    proxies[1].fault = lambda r: "hold" if r.method == "POST" else None
    proc = _killable_release(
        tmp_path,
        live_settings,
        settings={"cluster_timeout_seconds": 30, "release_processes": 2},
        chunk=1,
    )
    try:
        if not proxies[1].held.wait(60):
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the run never got there:\n{out!r}\n{err[-3000:]!r}")
        # Every zone read from paid: the worker process took its chunks, and its
        # threads now wait for a creation's turn.
        reads, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            reads = sum(
                r.method == "GET" and "/zones/" in r.path for r in list(proxies[0].sink.requests)
            )
            if reads >= len(zones):
                break
            time.sleep(0.05)
        assert reads >= len(zones), f"only {reads} zones were read"
        time.sleep(0.5)
        children = _children(proc.pid)
        assert children, "the run started no release process"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in children), "a release process outlived its run"
    for zone in zones.values():
        _assert_never_lost(zone, before[zone], pdns_paid, pdns_free)
    proxies[1].fault = lambda r: None
    run(live_settings, release_due, instance_ids=list(zones))
    for inst, zone in zones.items():
        _assert_finished_once(live_db, inst, zone, before[zone], pdns_paid, pdns_free)


def _cluster_whose_turn_is_held(turn_timeout: float):
    """A PowerDNS cluster (on a port where nothing answers) whose shared write turn
    another process took and never gave back."""
    from multiprocessing import get_context

    from pydantic import SecretStr

    from dns_lifecycle.channels.clusters import ClusterConfig
    from dns_lifecycle.channels.clusters.powerdns import PowerDnsCluster

    lock = get_context("spawn").Lock()
    lock.acquire()  # the holder is gone
    config = ClusterConfig(
        code="free",
        kind="free",
        nameservers=("ns1.example.",),
        options={"api_url": "http://127.0.0.1:9"},
    )
    cluster = PowerDnsCluster(config, SecretStr("k"), 1.0, lock)
    cluster._turn_timeout = turn_timeout
    return cluster


def test_a_write_turn_never_given_back_fails_the_call_instead_of_hanging_the_run():
    """A process of the run that died mid-write keeps the server's shared write lock:
    the others' writes give up after their wait, as for a server that does not answer."""
    from dns_lifecycle.core.errors import ClusterUnavailable

    cluster = _cluster_whose_turn_is_held(0.2)
    with pytest.raises(ClusterUnavailable, match="no turn to DELETE zone gone.cn"):
        cluster.delete_zone("gone.cn")
    cluster.close()


def test_a_cache_flush_and_a_read_do_not_wait_for_the_write_turn():
    """Only what writes the server's database takes the write turn, the run's bottleneck:
    with the turn held elsewhere, a flush or a read goes straight to the server."""
    from dns_lifecycle.core.errors import ClusterUnavailable

    cluster = _cluster_whose_turn_is_held(30)
    for call in (lambda: cluster.flush("here.cn"), lambda: cluster.read_zone("here.cn")):
        with pytest.raises(ClusterUnavailable, match="could not be reached"):
            call()
    cluster.close()
