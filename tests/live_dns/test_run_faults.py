"""Faults of a whole cluster, against real PowerDNS: a wrong API key or server_id, a
server that stops answering, a locked SQLite database. They fail the run once, in one
line naming the cluster and what to fix, and open no domain's ticket; a later run with
the fault gone finishes every domain."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from dns_lifecycle.channels.clusters import ClusterConfig
from dns_lifecycle.channels.clusters.breaker import NO_ANSWER, Breaker
from dns_lifecycle.channels.clusters.powerdns import PowerDnsCluster
from dns_lifecycle.core.errors import ClusterSwitchedOff, ClusterUnavailable
from dns_lifecycle.core.workers import start_worker
from dns_lifecycle.release import chunks as release_chunks
from dns_lifecycle.release import pool as release_pool
from flows.release import release_due
from models import Cluster, Ticket
from tests.http_sink import Reply, SeenRequest
from tests.live_dns.helpers import rrsets_of, run, served
from tests.live_dns.test_faults import (
    RECORDS,
    _assert_finished_once,
    _setup,
    proxies,  # noqa: F401 (a fixture)
)


def _domains(db, settings, n):
    """``n`` expired instances of one domain each: instance -> (zone, what paid serves)."""
    made = {}
    for _ in range(n):
        zone, inst = _setup(db, settings)
        made[inst] = zone
    return made


def _tickets(db, instances) -> list[str]:
    with db.session() as s:
        return [t.reason for t in s.execute(select(Ticket)).scalars() if t.instance_id in instances]


def _lines(report, text: str) -> list[str]:
    return [f for f in report.failures if text in f]


def _finished(db, settings, made, pdns_paid, pdns_free, before):
    again = run(settings, release_due, instance_ids=list(made))
    assert not again.failures, again.failures
    for inst, zone in made.items():
        _assert_finished_once(db, inst, zone, before[zone], pdns_paid, pdns_free)


def _before(pdns_paid, made):
    return {zone: served(pdns_paid, zone, rrsets_of(zone, RECORDS)) for zone in made.values()}


def test_a_wrong_free_api_key_fails_the_run_once_and_opens_no_ticket(
    live_db, live_settings, pdns_paid, pdns_free
):
    """HTTP 401 from the free server: one line naming the cluster and the setting, no
    ticket; with the key fixed, the next run finishes every domain."""
    made = _domains(live_db, live_settings, 4)
    before = _before(pdns_paid, made)
    keys = dict(live_settings.cluster_api_keys, free=SecretStr("not-the-key"))
    wrong = live_settings.model_copy(update={"cluster_api_keys": keys})

    report = run(wrong, release_due, instance_ids=list(made))

    assert _tickets(live_db, made) == []
    assert len(_lines(report, "cluster free")) == 1, report.failures
    (line,) = _lines(report, "cluster free")
    assert "refused the API key" in line and "DNSL_CLUSTER_API_KEYS" in line
    assert "not-the-key" not in report.model_dump_json()
    _finished(live_db, live_settings, made, pdns_paid, pdns_free, before)


@pytest.mark.parametrize("code", ["paid-1", "free"])
def test_a_wrong_server_id_is_named_as_such_not_as_a_missing_zone(
    live_db, live_settings, pdns_paid, pdns_free, code
):
    """A server_id the API does not know (a 404 for every zone): one line naming the
    cluster's server_id, no paid_zone_missing or free_zone_refused ticket."""
    made = _domains(live_db, live_settings, 3)
    before = _before(pdns_paid, made)
    with live_db.session() as s:
        c = s.get(Cluster, code)
        c.options = {**c.options, "server_id": "no-such-server"}
        s.commit()

    report = run(live_settings, release_due, instance_ids=list(made))

    assert _tickets(live_db, made) == []
    (line,) = _lines(report, f"cluster {code}")
    assert "has no server 'no-such-server'" in line and "server_id" in line, line
    with live_db.session() as s:
        c = s.get(Cluster, code)
        c.options = {**c.options, "server_id": "localhost"}
        s.commit()
    _finished(live_db, live_settings, made, pdns_paid, pdns_free, before)


def test_a_hung_free_server_is_switched_off_for_the_rest_of_the_run(
    live_db, live_settings, pdns_paid, pdns_free, monkeypatch
):
    """A stopped (SIGSTOP) free server: after cluster_breaker_timeouts calls in a row
    without an answer, the release (two processes here) calls it no more and says so
    once; once the server answers, the next run finishes."""
    made = _domains(live_db, live_settings, 8)
    before = _before(pdns_paid, made)
    # One domain per chunk, so that two processes share even these few domains.
    monkeypatch.setattr(release_chunks, "CHUNK", 1)
    monkeypatch.setattr(release_pool, "MIN_CHUNKS_PER_PROCESS", 1)
    settings = live_settings.model_copy(
        update={
            "cluster_timeout_seconds": 1.0,
            "cluster_breaker_timeouts": 2,
            "release_processes": 2,
            "release_workers": 2,
        }
    )
    assert pdns_free.process is not None
    os.kill(pdns_free.process.pid, signal.SIGSTOP)
    try:
        report = run(settings, release_due, instance_ids=list(made))
    finally:
        os.kill(pdns_free.process.pid, signal.SIGCONT)

    (timeouts,) = _lines(report, "did not answer in time")
    assert "(2 domains:" in timeouts, report.failures  # the two calls it took, no more
    (off,) = _lines(report, "did not answer 2 calls in a row")
    assert "no more calls went to it in this run" in off and "(6 domains:" in off, off
    assert _tickets(live_db, made) == []
    _finished(live_db, live_settings, made, pdns_paid, pdns_free, before)


def test_a_locked_database_answer_is_tried_again_before_it_counts(
    live_db,
    live_settings,
    pdns_paid,
    pdns_free,
    proxies,  # noqa: F811
):
    """PowerDNS's 500 "database is locked" (another writer on its SQLite database): the
    write is tried again after a back-off, and the release finishes in the same run."""
    made = _domains(live_db, live_settings, 2)
    before = _before(pdns_paid, made)
    free = proxies[1]
    locked = {"left": 3}
    forward = free._respond

    def busy(r: SeenRequest) -> Reply:
        if r.method == "POST" and locked["left"] > 0:
            locked["left"] -= 1
            return Reply(500, {"error": "database is locked"})
        return forward(r)

    free.sink.responder = busy

    report = run(live_settings, release_due, instance_ids=list(made))

    assert locked["left"] == 0
    assert not report.failures, report.failures
    for inst, zone in made.items():
        _assert_finished_once(live_db, inst, zone, before[zone], pdns_paid, pdns_free)


def test_one_outage_of_the_free_server_is_one_line_with_a_count(
    live_db,
    live_settings,
    pdns_paid,
    pdns_free,
    proxies,  # noqa: F811
):
    """Every creation fails the same way: the report has one line for the cause, with
    how many domains it stopped, instead of one line per domain or per batch."""
    made = _domains(live_db, live_settings, 5)
    proxies[1].fault = lambda r: "500" if r.method == "POST" else None
    settings = live_settings.model_copy(update={"batch_size": 2})  # three batches

    report = run(settings, release_due, instance_ids=list(made))

    lines = _lines(report, "injected server error")
    assert len(lines) == 1, report.failures
    assert "answered HTTP 500" in lines[0] and "(5 domains:" in lines[0], lines[0]


def _time_out(jobs, config: ClusterConfig, key: str, breaker: Breaker) -> None:
    """A worker process's calls to a server that does not answer, until its breaker
    opens."""
    cluster = PowerDnsCluster(config, SecretStr(key), 0.5, breaker=breaker)
    for _ in range(breaker.threshold):
        with contextlib.suppress(ClusterUnavailable):
            cluster.read_zone("silent.cn")
    cluster.close()
    jobs.send(breaker.state)


def test_a_breaker_opened_by_one_process_stops_the_calls_of_another(pdns_free):
    """The breaker is shared: once a worker process's calls went unanswered, the run's
    process makes no call to that server, even one it would now answer."""
    config = ClusterConfig(
        code="free",
        kind="free",
        nameservers=("ns1.example.",),
        backend="powerdns",
        options={"api_url": pdns_free.api_url},
    )
    breaker = Breaker(2)
    assert pdns_free.process is not None
    os.kill(pdns_free.process.pid, signal.SIGSTOP)
    try:
        worker = start_worker(
            _time_out, (config, pdns_free.api_key, breaker), name="test-breaker-worker"
        )
        try:
            assert worker.jobs.poll(60), "the worker never finished its calls"
            assert worker.jobs.recv() == NO_ANSWER
        finally:
            worker.stop()
    finally:
        os.kill(pdns_free.process.pid, signal.SIGCONT)
    here = PowerDnsCluster(config, SecretStr(pdns_free.api_key), 5.0, breaker=breaker)
    try:
        with pytest.raises(ClusterSwitchedOff, match="did not answer 2 calls in a row"):
            here.read_zone("silent.cn")
    finally:
        here.close()
