"""A release day between two local PowerDNS servers, against the servers' own floor.

    python bench/release.py [--zones 2000] [--records 10] [--workers 4] [--processes 0]
                            [--compare N] [--kill-halfway] [--secondaries] [--no-append]

Starts a paid and a free PowerDNS (Debian's pdns-server, SQLite backend) on loopback and
a counting registrar (bench/counting_registrar.py, the plain HTTP registrar API), then
measures, in the same run:

1. the floor: a bare httpx loop on one kept-alive connection that creates the day's
   zones on the free server and deletes them again (the writes a release cannot avoid);
2. the release: N instances expired past their grace period, each with one domain of
   R records loaded on the paid server, released by ``release_due`` with no drain:
   read from paid, zone copy, create on free, flush, verify every record set by DNS,
   switch at the registrar, rewrite the paid apex NS, delete from paid, every stage
   recorded in SQLite.

With ``--compare M`` a day of M zones is released first, then the day of N, each with
fresh servers, registrar and database (the floor is measured on the first day only), and
the bench reports the time per zone at each size and their ratio (target: at most 1.1).
With ``--kill-halfway`` a third day of N zones is released by ``dns-lifecycle run`` in a
process of its own, SIGKILLed once about half its zones are deleted from the paid server,
then run again to completion.

After every day the bench counts from the servers, the registrar and the database: every
zone on the free server once and equal to its source records, none left on the paid
server, each domain's release recorded once, deleted after a verified free copy, one
switch per domain, one released notice per instance. Any violation is printed with its
domains and makes the bench exit 1.

Also measures where the CPU went (the bench's own process with the release processes it
started, each PowerDNS server and the registrar) and the peak RSS (VmHWM) of the bench
and of every process it starts, sampled from /proc. With ``--secondaries`` the free
cluster is a hidden PowerDNS primary whose catalog zone two BIND 9 secondaries consume.
Prints the table and appends it to bench/RESULTS.md (date, load, command). By hand only:
not part of the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procfs import TICK, stat_fields, vm_hwm  # noqa: E402  (bench/, this script's folder)
from sqlalchemy import func, select  # noqa: E402

from dns_lifecycle.channels.clusters.powerdns import rrsets  # noqa: E402
from dns_lifecycle.core.db import Database, upgrade  # noqa: E402
from dns_lifecycle.core.settings import Settings  # noqa: E402
from dns_lifecycle.lifecycle.expiry import zone_content  # noqa: E402
from dns_lifecycle.lifecycle.zonefile import Rr  # noqa: E402
from flows.common import open_run  # noqa: E402
from flows.release import release_due  # noqa: E402
from models import Cluster, Domain, Instance, Notification, Ticket  # noqa: E402
from models.domain_release import DomainRelease  # noqa: E402
from models.zone_snapshot import ZoneSnapshot  # noqa: E402
from tests.factories import make_catalog, make_instance  # noqa: E402
from tests.live_dns.servers import SCHEMA, catalog_cluster, powerdns  # noqa: E402

EXPIRY = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # past: a real run never evaluates the future
RELEASE = EXPIRY + timedelta(days=8)
SOA = "a.misconfigured.dns.server.invalid hostmaster.{} 2026120701 10800 3600 604800 3600"
MB = 1024 * 1024


def zone_records(i: int, n: int) -> list[tuple[str, str, str, int]]:
    kinds = [
        lambda k: ("A", f"h{k}", f"10.{i % 250}.{k % 250}.1", 300),
        lambda k: ("TXT", f"t{k}", f"bench zone {i} record {k}", 600),
        lambda k: ("MX", "@", f"{k} mx{k}.example.net.", 600),
        lambda k: ("AAAA", f"v{k}", f"2001:db8::{i % 65535:x}:{k:x}", 300),
    ]
    return [kinds[k % len(kinds)](k) for k in range(n)]


def floor(server, names: list[str], records: int) -> float:
    """Seconds for a bare loop to create every zone on ``server`` and delete it again."""
    nameservers = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]
    bodies = [
        {
            "name": f"{name}.",
            "kind": "Native",
            "rrsets": rrsets(name, [Rr(*r) for r in zone_records(i, records)], nameservers, 3600),
        }
        for i, name in enumerate(names)
    ]
    base = f"{server.api_url}/api/v1/servers/localhost"
    with httpx.Client(headers={"X-API-Key": server.api_key}, timeout=30) as client:
        started = time.perf_counter()
        for body in bodies:
            client.post(f"{base}/zones", json=body).raise_for_status()
        for name in names:
            client.delete(f"{base}/zones/{name}.").raise_for_status()
        return time.perf_counter() - started


def secondaries_catch_up(cluster, name: str) -> float:
    """Seconds from creating ``name`` in the catalog on the primary until both
    secondaries answer for it."""
    import dns.message
    import dns.query
    import dns.rcode

    body = {
        "name": f"{name}.",
        "kind": "Master",
        "catalog": f"{cluster.catalog}.",
        "rrsets": rrsets(name, [], ["ns1.free.dns-hosting.example"], 3600),
    }
    primary = cluster.primary
    started = time.perf_counter()
    httpx.post(
        f"{primary.api_url}/api/v1/servers/localhost/zones",
        headers={"X-API-Key": primary.api_key},
        json=body,
        timeout=30,
    ).raise_for_status()
    waiting = list(cluster.secondaries)
    while waiting and time.perf_counter() - started < 300:
        q = dns.message.make_query(f"{name}.", "SOA")
        waiting = [
            b
            for b in waiting
            if dns.query.udp(q, b.address, port=b.dns_port, timeout=2).rcode() != dns.rcode.NOERROR
        ]
        time.sleep(0.05)
    return time.perf_counter() - started


# --- the servers' own storage ----------------------------------------------------------

Row = tuple[str, str, str, int, int]  # owner, type, content, TTL, priority, as PowerDNS stores


def backend_rows(name: str, i: int, records: int, nameservers: list[str]) -> set[Row]:
    """The rows of PowerDNS's ``records`` table (SOA left out) for zone ``i`` served with
    apex NS ``nameservers``, as its API stores a zone created by ``load_zones``: names
    without the final dot, an MX's preference in its own column."""
    kept, ns_ttl = zone_content([Rr(*r) for r in zone_records(i, records)])
    rows = set()
    for rrset in rrsets(name, kept, nameservers, ns_ttl):
        for record in rrset["records"]:
            content, prio = record["content"], 0
            if rrset["type"] == "MX":
                preference, content = content.split(" ", 1)
                prio = int(preference)
            if rrset["type"] in ("MX", "NS", "CNAME"):
                content = content.rstrip(".")
            rows.add((rrset["name"].rstrip("."), rrset["type"], content, rrset["ttl"], prio))
    return rows


def preload(folder: Path, names: list[str], records: int, nameservers: list[str]) -> None:
    """Write every zone into a PowerDNS SQLite backend before its server starts: the
    API takes 3-8 ms a zone, this a few seconds for 20,000."""
    folder.mkdir(parents=True, exist_ok=True)
    assert SCHEMA is not None
    with sqlite3.connect(folder / "pdns.sqlite3") as conn:
        conn.executescript(SCHEMA.read_text())
        for i, name in enumerate(names):
            cur = conn.execute(
                "INSERT INTO domains (name, master, type, account) VALUES (?, '', 'NATIVE', '')",
                (name,),
            )
            rows = [
                *backend_rows(name, i, records, nameservers),
                (name, "SOA", SOA.format(name), 3600, 0),
            ]
            conn.executemany(
                "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled, auth)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, 1)",
                [(cur.lastrowid, *row) for row in rows],
            )


def stored_zones(server) -> dict[str, set[Row]]:
    """Every zone in ``server``'s SQLite backend with its enabled rows, SOA left out."""
    zones: dict[str, set[Row]] = {}
    conn = sqlite3.connect(f"file:{server.folder / 'pdns.sqlite3'}?mode=ro", uri=True)
    try:
        for (name,) in conn.execute("SELECT name FROM domains"):
            zones[name] = set()
        for zone, *row in conn.execute(
            "SELECT d.name, r.name, r.type, r.content, r.ttl, r.prio FROM records r "
            "JOIN domains d ON d.id = r.domain_id WHERE r.type != 'SOA' AND r.disabled = 0"
        ):
            zones[zone].add(tuple(row))  # type: ignore[arg-type]
    finally:
        conn.close()
    return zones


def listed_zones(server) -> list[str]:
    """The zones ``server``'s API lists, names without the final dot."""
    r = httpx.get(
        f"{server.api_url}/api/v1/servers/localhost/zones",
        headers={"X-API-Key": server.api_key},
        timeout=60,
    )
    r.raise_for_status()
    return [z["name"].rstrip(".") for z in r.json()]


# --- processes --------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, int, str, float] | None:
    """(parent, process group, state, CPU seconds) of ``pid``; None when it is gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    return int(fields[1]), int(fields[2]), fields[0], cpu


def living() -> dict[int, tuple[int, int, str, float]]:
    stats = {int(e): proc_stat(int(e)) for e in os.listdir("/proc") if e.isdigit()}
    return {p: s for p, s in stats.items() if s is not None and s[2] != "Z"}


def family(pid: int) -> set[int]:
    """The living descendants of ``pid`` and the members of its process group."""
    alive = living()
    found = {p for p, s in alive.items() if s[1] == pid} - {pid}
    grown = True
    while grown:
        children = {p for p, s in alive.items() if s[0] in found | {pid}} - found - {pid}
        found |= children
        grown = bool(children)
    return found


def kind_of(pid: int) -> str:
    """What a process the bench started is, by its command line."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    if raw == Path("/proc/self/cmdline").read_bytes():
        return "fork"
    cmd = raw.replace(b"\0", b" ").decode()
    if "spawn_main" in cmd:
        return "release"
    if "resource_tracker" in cmd:
        return "tracker"
    if "dns_lifecycle.admin.cli" in cmd:
        return "run"
    if "prefect" in cmd or "uvicorn" in cmd:
        return "prefect"
    return "other"


class Peaks:
    """Samples, every 0.2 s, the VmHWM of every process below the bench except the
    servers: a process's peak is its last sample (VmHWM only grows), so a process that
    grows in its last 0.2 s is under-counted by that much. The bench's own peak is
    reset first (``clear_refs``), so it is the release's, not the seed's."""

    def __init__(self, skip: set[int]) -> None:
        self.skip = skip
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        for pid in family(os.getpid()) - self.skip:
            kind, hwm = kind_of(pid), vm_hwm(pid)
            # A child forked but not yet running its program shows this process's pages.
            if hwm is not None and kind not in ("gone", "fork"):
                self.peaks[pid] = (kind, max(hwm, self.peaks.get(pid, ("", 0))[1]))

    def stop(self) -> dict[str, tuple[int, float]]:
        """kind -> (processes seen, largest peak in MB); "bench" is this process."""
        self._stop.set()
        self._thread.join()
        by_kind: dict[str, tuple[int, float]] = {"bench": (1, (vm_hwm(os.getpid()) or 0) / MB)}
        for kind, hwm in self.peaks.values():
            n, top = by_kind.get(kind, (0, 0.0))
            by_kind[kind] = (n + 1, max(top, hwm / MB))
        return by_kind


# --- a day's stack: registrar, servers, database ----------------------------------------


class Stack:
    """A counting registrar, a paid PowerDNS preloaded with the day's zones, a free one
    (or a catalog cluster) and a migrated SQLite database with the day's instances."""

    def __init__(self, args, zones: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="release-bench-"))
        self.names = [f"bench-{i:05d}.cn" for i in range(zones)]
        self.records = args.records
        self.registrar = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "counting_registrar.py")],
            stdout=subprocess.PIPE,
        )
        assert self.registrar.stdout is not None
        self.registrar_url = f"http://127.0.0.1:{int(self.registrar.stdout.readline())}"
        self.cluster = (
            catalog_cluster(self.folder / "free", "catalog.free.example")
            if args.secondaries
            else None
        )
        self.free = self.cluster.primary if self.cluster else powerdns(self.folder / "free")
        self.paid = None
        self.fields: dict[str, Any] = {
            "database_url": f"sqlite:///{self.folder / 'bench.db'}",
            "outbox_dir": self.folder / "outbox",
            "email_backend": "file",
            "sms_backend": "file",
            "drain_hours": 0,
            "release_workers": args.workers,
            "release_processes": args.processes,
            "dns_timeout_seconds": 2,
            "registrar_backend": "http",
            "registrar_url": self.registrar_url,
        }
        self.settings = Settings(**self.fields)
        upgrade(self.settings)
        self.db = Database(self.settings)
        started = time.perf_counter()
        self._seed()
        self.seed_seconds = time.perf_counter() - started
        started = time.perf_counter()
        preload(self.folder / "paid", self.names, self.records, self.paid_ns)
        self.paid = powerdns(self.folder / "paid")
        self.load_seconds = time.perf_counter() - started
        self._point_clusters()

    def _seed(self) -> None:
        with self.db.session() as s:
            make_catalog(s)
            self.paid_ns = list(s.get(Cluster, "paid-1").nameservers)
            self.free_ns = list(s.get(Cluster, "free").nameservers)
            for i, name in enumerate(self.names):
                make_instance(
                    s,
                    f"inst-{i:05d}",
                    account=f"acct-{i:05d}",
                    expires_at=EXPIRY,
                    state="expired",
                    domains=[
                        {
                            "name": name,
                            "registrar": "hichina",
                            "records": zone_records(i, self.records),
                        }
                    ],
                )
            s.commit()

    def _point_clusters(self) -> None:
        keys = {"paid-1": self.paid.api_key, "free": self.free.api_key}
        self.fields["cluster_api_keys"] = keys
        self.settings = Settings(**self.fields)
        with self.db.session() as s:
            for code, server in (("paid-1", self.paid), ("free", self.free)):
                c = s.get(Cluster, code)
                c.backend, c.options = "powerdns", {"api_url": server.api_url}
                c.nameserver_addresses = [server.dns_address]
            if self.cluster:
                c = s.get(Cluster, "free")
                c.nameserver_addresses = self.cluster.addresses
                c.options = {**c.options, "catalog": self.cluster.catalog}
            s.commit()

    def servers(self) -> list:
        return [self.paid, self.free]

    def server_pids(self) -> set[int]:
        pids = {self.registrar.pid, self.free.process.pid, self.paid.process.pid}
        if self.cluster:
            pids |= {b.process.pid for b in self.cluster.secondaries}
        return pids

    def cpu(self) -> list[float]:
        """CPU seconds so far of this process with its ended children (the release
        processes, once joined), then of the paid server, the free one, the registrar."""
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        pids = [self.paid.process.pid, self.free.process.pid, self.registrar.pid]
        return [own, *((proc_stat(p) or (0, 0, "", 0.0))[3] for p in pids)]

    def env(self) -> dict[str, str]:
        """The settings as ``dns-lifecycle`` reads them from the environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DNSL_"))}
        env["PYTHONPATH"] = str(ROOT)
        env["PREFECT_HOME"] = str(self.folder / "prefect")
        env["DATABASE_URL"] = self.fields["database_url"]
        for name, value in self.fields.items():
            if name != "database_url":
                text = json.dumps(value) if isinstance(value, dict) else str(value)
                env[f"DNSL_{name.upper()}"] = text
        return env

    def stop(self) -> None:
        self.db.dispose()
        for server in (self.paid, *(self.cluster.secondaries if self.cluster else [])):
            if server is not None:
                server.stop()
        self.free.stop()
        self.registrar.kill()
        self.registrar.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- what the servers, the registrar and the database hold after a day ------------------


@dataclass
class Audit:
    counts: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def check(self, what: str, bad: list[str], count: str) -> None:
        """``count`` printed; ``bad`` (domains or instances) a violation of ``what``."""
        self.counts.append(count)
        if bad:
            shown = ", ".join(sorted(bad)[:20]) + (" ..." if len(bad) > 20 else "")
            self.violations.append(f"{what}: {len(bad)}: {shown}")


def audit(stack: Stack, delivered: bool) -> Audit:
    """Count from the servers, the registrar and the database what the day left."""
    out = Audit()
    names, n = stack.names, len(stack.names)
    expected = set(names)
    listed = listed_zones(stack.free)
    doubled = [z for z, k in Counter(listed).items() if k > 1]
    stored = stored_zones(stack.free)
    differ = [
        name
        for i, name in enumerate(names)
        if name in stored and stored[name] != backend_rows(name, i, stack.records, stack.free_ns)
    ]
    missing = sorted(expected - set(listed))
    extra = sorted(set(listed) - expected)
    out.check("free server: missing", missing, f"free server: {len(set(listed))} of {n} zones")
    out.check("free server: listed twice", doubled, f"listed twice: {len(doubled)}")
    out.check("free server: not ours", extra, f"others: {len(extra)}")
    out.check("free server: differ from source", differ, f"differing from source: {len(differ)}")

    left = listed_zones(stack.paid)
    with stack.db.session() as s:
        releases = {
            name: r
            for name, r in s.execute(
                select(Domain.name, DomainRelease).join(
                    DomainRelease, DomainRelease.domain_id == Domain.id, isouter=True
                )
            ).all()
        }
        snapshots = Counter(
            dict(
                s.execute(
                    select(ZoneSnapshot.domain_name, func.count()).group_by(
                        ZoneSnapshot.domain_name
                    )
                ).all()
            )
        )
        states = dict(s.execute(select(Instance.id, Instance.state)).all())
        tickets = list(s.execute(select(Ticket.instance_id, Ticket.reason)).all())
        notices = list(
            s.execute(
                select(Notification.instance_id, Notification.channel, Notification.state).where(
                    Notification.kind == "released"
                )
            ).all()
        )
    kept = [f"{z} ({(r := releases.get(z)) and (r.blocked or r.error)})" for z in left]
    out.check("paid server: zones left", kept, f"left on the paid server: {len(left)}")

    rows = [r for r in releases.values() if r is not None]
    twice = [k for k, c in Counter(r.domain_id for r in rows).items() if c > 1]
    out.check("release recorded twice", [str(k) for k in twice], f"release rows: {len(rows)}")
    unfinished = [
        f"{name} ({r.stage if r else 'no release'})"
        for name, r in releases.items()
        if r is None or r.stage != "deleted" or r.blocked
    ]
    out.check("not released to the end", unfinished, f"stage deleted: {n - len(unfinished)}")
    early = [
        name
        for name, r in releases.items()
        if r is not None
        and r.stage == "deleted"
        and (r.verified_at is None or r.deleted_at is None or r.deleted_at < r.verified_at)
    ]
    out.check(
        "paid copy deleted before a verified free copy",
        early,
        f"deleted after a verified free copy: {n - len(early) - len(unfinished)}",
    )
    copies = [f"{name} ({snapshots[name]})" for name in names if snapshots[name] != 1]
    out.check("zone copies not exactly one", copies, f"zone copies: {sum(snapshots.values())}")
    out.check(
        "instances not released",
        [i for i, state in states.items() if state != "released"],
        f"instances released: {sum(1 for x in states.values() if x == 'released')}",
    )
    out.check("tickets", [f"{i} {reason}" for i, reason in tickets], f"tickets: {len(tickets)}")

    switched = httpx.get(f"{stack.registrar_url}/counts", timeout=30).json()
    per_domain = Counter(switched["switches"])
    wrong = [f"{name} ({per_domain[name]})" for name in names if per_domain[name] != 1]
    out.check(
        "registrar switches not exactly one",
        wrong + sorted(set(per_domain) - expected),
        f"registrar switches: {sum(per_domain.values())} (lock reads {switched['lock_reads']})",
    )

    per_instance = Counter((i, channel) for i, channel, _ in notices)
    instances = {f"inst-{i:05d}" for i in range(n)}
    told = {i for i, _ in per_instance}
    repeated = [f"{i} {c} ({k})" for (i, c), k in per_instance.items() if k != 1]
    out.check(
        "released notices: none", sorted(instances - told), f"released notices: {len(notices)}"
    )
    out.check("released notices: more than one", repeated, f"repeated: {len(repeated)}")
    if delivered:
        unsent = [f"{i} {c} {state}" for i, c, state in notices if state != "sent"]
        files = len(list((stack.folder / "outbox" / "email").glob("*.eml")))
        out.check("released notices not sent", unsent, f"sent {len(notices) - len(unsent)}")
        out.counts.append(f"email files in the outbox: {files}")
    return out


# --- a day --------------------------------------------------------------------------------


@dataclass
class Day:
    zones: int
    seed_seconds: float
    load_seconds: float
    seconds: float = 0.0
    cpu: list[float] = field(default_factory=list)  # bench + release / paid / free / registrar
    rss: dict[str, tuple[int, float]] = field(default_factory=dict)
    floor_seconds: float | None = None
    floor_cpu: list[float] = field(default_factory=list)
    waiting: int = 0
    catch_up: list[float] = field(default_factory=list)
    kill: dict[str, Any] = field(default_factory=dict)
    audit: Audit = field(default_factory=Audit)

    @property
    def ms(self) -> float:
        return 1000 * self.seconds / self.zones


def released_day(args, zones: int, with_floor: bool) -> Day:
    """A day of ``zones`` released by ``release_due`` in this process, measured."""
    stack = Stack(args, zones)
    try:
        day = Day(zones, stack.seed_seconds, stack.load_seconds)
        if with_floor:
            before = stack.cpu()
            day.floor_seconds = floor(stack.free, [f"floor-{n}" for n in stack.names], args.records)
            day.floor_cpu = [b - a for a, b in zip(before, stack.cpu(), strict=True)]
        print(
            f"{zones} zones: seeded in {day.seed_seconds:.0f} s, loaded in "
            f"{day.load_seconds:.1f} s; releasing",
            file=sys.stderr,
            flush=True,
        )
        peaks = Peaks(stack.server_pids())
        before = stack.cpu()
        started = time.perf_counter()
        with open_run(RELEASE, False, None, settings=stack.settings) as ctx:
            report = release_due(ctx)
        day.seconds = time.perf_counter() - started
        day.cpu = [b - a for a, b in zip(before, stack.cpu(), strict=True)]
        day.rss = peaks.stop()
        day.waiting = report.counts.get("domains_waiting_for_secondaries", 0)
        if stack.cluster:
            day.catch_up = [secondaries_catch_up(stack.cluster, f"probe-{i}.cn") for i in range(5)]
        day.audit = audit(stack, delivered=False)
        return day
    finally:
        stack.stop()


def deleted_so_far(stack: Stack) -> int:
    path = stack.fields["database_url"].removeprefix("sqlite:///")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(
            "SELECT count(*) FROM domain_release WHERE stage = 'deleted'"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def cli_run(stack: Stack, log) -> subprocess.Popen:
    """``dns-lifecycle run`` for the release day, its own process group as a shell job."""
    return subprocess.Popen(
        [sys.executable, "-m", "dns_lifecycle.admin.cli", "run", "--as-of", RELEASE.isoformat()],
        cwd=ROOT,
        env=stack.env(),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def killed_day(args, zones: int) -> Day:
    """A day of ``zones`` released by ``dns-lifecycle run``, SIGKILLed at half, run again."""
    stack = Stack(args, zones)
    log = open(stack.folder / "run.log", "ab")  # noqa: SIM115
    try:
        day = Day(zones, stack.seed_seconds, stack.load_seconds)
        print(
            f"{zones} zones (kill): seeded in {day.seed_seconds:.0f} s; running",
            file=sys.stderr,
            flush=True,
        )
        peaks = Peaks(stack.server_pids())
        started = time.perf_counter()
        proc = cli_run(stack, log)
        while (done := deleted_so_far(stack)) < zones // 2 and proc.poll() is None:
            time.sleep(0.2)
        if proc.poll() is not None:
            day.audit.violations.append(f"the run ended (code {proc.returncode}) at {done} deleted")
        seen = family(proc.pid)
        kinds = Counter(kind_of(p) for p in seen)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_after = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while (left := (seen | family(proc.pid)) & set(living())) and time.monotonic() < deadline:
            time.sleep(0.1)
        at_kill = deleted_so_far(stack)
        if left:
            day.audit.violations.append(
                f"processes of the killed run still running 30 s later: {sorted(left)} "
                f"({', '.join(kind_of(p) for p in left)})"
            )
            for pid in left:  # only what this run started
                os.kill(pid, signal.SIGKILL)
        started = time.perf_counter()
        rerun = cli_run(stack, log)
        code = rerun.wait()
        day.seconds = time.perf_counter() - started
        day.rss = peaks.stop()
        if code != 0:
            day.audit.violations.append(f"the second run exited {code} (see its log)")
        day.kill = {
            "killed_after": killed_after,
            "deleted_at_kill": at_kill,
            "processes": dict(kinds),
            "left": len(left),
            "rerun_seconds": day.seconds,
            "rerun_code": code,
        }
        audited = audit(stack, delivered=True)
        day.audit.counts += audited.counts
        day.audit.violations += audited.violations
        if day.audit.violations:
            log.flush()
            print((stack.folder / "run.log").read_text()[-4000:], file=sys.stderr)
        return day
    finally:
        log.close()
        stack.stop()


# --- the table ------------------------------------------------------------------------------


def rss_text(rss: dict[str, tuple[int, float]]) -> str:
    order = ["bench", "run", "release", "prefect", "tracker", "other"]
    return "; ".join(
        f"{kind} {rss[kind][1]:.0f}" + (f" (max of {rss[kind][0]})" if rss[kind][0] > 1 else "")
        for kind in order
        if kind in rss
    )


def table(args, days: list[Day], kill: Day | None, load_before: str, load_after: str) -> str:
    command = (
        f"python bench/release.py --zones {args.zones} --records {args.records} "
        f"--workers {args.workers} --processes {args.processes}"
        + (f" --compare {args.compare}" if args.compare else "")
        + (" --kill-halfway" if args.kill_halfway else "")
        + (" --secondaries" if args.secondaries else "")
    )
    first = days[0]
    lines = [
        "",
        f"## Release day between two PowerDNS servers ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `{command}`; load average (1/5/15 min) {load_before} before, {load_after} "
        f"after; {os.cpu_count()} cores; PowerDNS Authoritative with the SQLite backend, one "
        "write at a time per server; the counting HTTP registrar (an external registrar: "
        "each switch recorded before and after its call).",
        "",
        "| | zones | seconds | zones/s | ms per zone | CPU ms per zone: bench + release "
        "processes / paid / free / registrar | peak RSS MB |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    if first.floor_seconds is not None:
        lines.append(
            f"| floor: bare httpx create + delete on one server | {first.zones} | "
            f"{first.floor_seconds:.1f} | {first.zones / first.floor_seconds:.0f} | "
            f"{1000 * first.floor_seconds / first.zones:.1f} | "
            + " / ".join(f"{1000 * c / first.zones:.1f}" for c in first.floor_cpu)
            + " | |"
        )
    for d in days:
        lines.append(
            f"| release: read, copy, create, flush, verify by DNS, switch, drain, delete "
            f"| {d.zones} | {d.seconds:.1f} | {d.zones / d.seconds:.0f} | {d.ms:.1f} | "
            + " / ".join(f"{1000 * c / d.zones:.1f}" for c in d.cpu)
            + f" | {rss_text(d.rss)} |"
        )
    lines.append("")
    if first.floor_seconds is not None:
        lines.append(
            f"Release / floor at {first.zones} zones: "
            f"**{first.floor_seconds / first.seconds:.2f}** (target: at least 0.5)."
        )
    if len(days) > 1:
        small, large = days
        lines.append(
            f"Time per zone at {large.zones} / at {small.zones}: **{large.ms / small.ms:.2f}** "
            "(target: at most 1.1); CPU per zone of the bench and its release processes: "
            f"{large.cpu[0] / large.zones / (small.cpu[0] / small.zones):.2f}."
        )
    lines.append(
        "Seeding (make_instance, SQLite) and loading the paid server (its SQLite backend "
        "written before it starts), seconds: "
        + ", ".join(f"{d.seed_seconds:.0f} and {d.load_seconds:.1f} at {d.zones}" for d in days)
        + ". Peak RSS: VmHWM sampled every 0.2 s from /proc (the bench's own reset before "
        "the release); release = the release processes."
    )
    lines.append("")
    if kill is not None:
        k = kill.kill
        seen = ", ".join(f"{n} {kind}" for kind, n in k["processes"].items())
        lines += [
            f"Killed halfway: `dns-lifecycle run` of {kill.zones} zones, SIGKILL after "
            f"{k['killed_after']:.0f} s with {k['deleted_at_kill']} paid copies deleted "
            f"(its processes then: {seen}); "
            f"{k['left']} of them still running 30 s after the kill. Run again: "
            f"{k['rerun_seconds']:.0f} s, exit code {k['rerun_code']}; peak RSS MB "
            f"{rss_text(kill.rss)}.",
            "",
        ]
    for d in [*days, *([kill] if kill else [])]:
        what = "after the kill and the second run" if d is kill else "after the release"
        lines.append(f"- {d.zones} zones, {what}: " + "; ".join(d.audit.counts) + ".")
        lines += [f"  - **VIOLATION** {v}" for v in d.audit.violations]
    lines.append("")
    if args.secondaries:
        d = days[-1]
        lines[1] = lines[1].replace("two PowerDNS servers", "PowerDNS and BIND secondaries")
        lines += [
            "The free cluster: a hidden primary and two BIND 9 secondaries fed by its "
            f"catalog; domains left waiting for secondaries: {d.waiting}. A new zone reached "
            "both secondaries in "
            + ", ".join(f"{t:.1f}" for t in d.catch_up)
            + " s (5 zones created one after the other on the primary).",
            "",
        ]
    return "\n".join(lines)


def said(day: Day) -> Day:
    """``day`` once it is done, its figures on stderr (a long run's first days survive
    its interruption)."""
    print(
        f"day of {day.zones}: {day.seconds:.1f} s ({day.ms:.1f} ms per zone), CPU s "
        + " / ".join(f"{c:.1f}" for c in day.cpu)
        + f", peak RSS MB {rss_text(day.rss)}, {json.dumps(day.kill)}; "
        + "; ".join(day.audit.counts + day.audit.violations),
        file=sys.stderr,
        flush=True,
    )
    return day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zones", type=int, default=2000)
    parser.add_argument(
        "--compare", type=int, default=0, metavar="M", help="release a day of M zones first"
    )
    parser.add_argument(
        "--kill-halfway",
        action="store_true",
        help="then a day of --zones by `dns-lifecycle run`, SIGKILLed at half, run again",
    )
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="DNSL_RELEASE_WORKERS")
    parser.add_argument(
        "--processes", type=int, default=0, help="DNSL_RELEASE_PROCESSES (0: one per core)"
    )
    parser.add_argument(
        "--secondaries",
        action="store_true",
        help="free cluster: a hidden primary and two BIND 9 secondaries fed by its catalog",
    )
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sizes = [args.compare, args.zones] if args.compare else [args.zones]
    days = [said(released_day(args, n, with_floor=i == 0)) for i, n in enumerate(sizes)]
    kill = said(killed_day(args, args.zones)) if args.kill_halfway else None
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = table(args, days, kill, load_before, load_after)
    print(text)
    if not args.no_append:
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as out:
            out.write(text)
    if any(d.audit.violations for d in [*days, *([kill] if kill else [])]):
        sys.exit(1)


if __name__ == "__main__":
    main()
