"""A release day between two local PowerDNS servers, against the servers' own floor.

    python bench/release.py [--zones 2000] [--records 10] [--workers 4] [--processes 0]
                            [--secondaries] [--no-append]

Starts a paid and a free PowerDNS (Debian's pdns-server, SQLite backend) on loopback,
then measures, in the same run:

1. the floor: a bare httpx loop on one kept-alive connection that creates the day's
   zones on the free server and deletes them again (the writes a release cannot avoid);
2. the release: N instances expired past their grace period, each with one domain of
   R records loaded on the paid server, released by ``release_due`` with no drain:
   read from paid, zone copy, create on free, flush, verify every record set by DNS,
   switch, rewrite the paid apex NS, delete from paid, every stage recorded in SQLite.

With ``--secondaries`` the free cluster is a hidden PowerDNS primary whose catalog zone
two BIND 9 secondaries consume: the release verifies on both, waiting for them within the
run, and the bench also measures how long a new zone takes to reach both secondaries.

Also measures where the CPU went: the bench's own process with the release processes it
started, and each PowerDNS server. Prints the table and appends it to bench/RESULTS.md
(date, load, command). By hand only: not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dns_lifecycle.admin.load_zones import load_zones  # noqa: E402
from dns_lifecycle.channels.clusters.powerdns import rrsets  # noqa: E402
from dns_lifecycle.core.db import Database, upgrade  # noqa: E402
from dns_lifecycle.core.settings import Settings  # noqa: E402
from dns_lifecycle.lifecycle.zonefile import Rr  # noqa: E402
from flows.common import open_run  # noqa: E402
from flows.release import release_due  # noqa: E402
from models import Cluster  # noqa: E402
from tests.factories import make_catalog, make_instance  # noqa: E402
from tests.live_dns.servers import catalog_cluster, powerdns  # noqa: E402

EXPIRY = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # past: a real run never evaluates the future
RELEASE = EXPIRY + timedelta(days=8)


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


def cpu_seconds(*servers) -> list[float]:
    """CPU seconds so far of this process with its ended children (the release
    processes, once joined), then of each server."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    tick = os.sysconf("SC_CLK_TCK")

    def of(server) -> float:
        fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    return [own, *(of(s) for s in servers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zones", type=int, default=2000)
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
    folder = Path(tempfile.mkdtemp(prefix="release-bench-"))
    paid = powerdns(folder / "paid")
    cluster = catalog_cluster(folder / "free", "catalog.free.example") if args.secondaries else None
    free = cluster.primary if cluster else powerdns(folder / "free")
    catch_up: list[float] = []
    waiting = 0
    try:
        names = [f"bench-{i:05d}.cn" for i in range(args.zones)]
        floor_cpu = cpu_seconds(paid, free)
        floor_seconds = floor(free, names, args.records)
        floor_cpu = [b - a for a, b in zip(floor_cpu, cpu_seconds(paid, free), strict=True)]

        url = f"sqlite:///{folder / 'bench.db'}"
        settings = Settings(
            database_url=url,
            outbox_dir=folder / "outbox",
            email_backend="memory",
            sms_backend="memory",
            cluster_api_keys={"paid-1": paid.api_key, "free": free.api_key},
            drain_hours=0,
            release_workers=args.workers,
            release_processes=args.processes,
            dns_timeout_seconds=2,
        )
        upgrade(settings)
        db = Database(settings)
        with db.session() as s:
            make_catalog(s)
            for code, server in (("paid-1", paid), ("free", free)):
                c = s.get(Cluster, code)
                c.backend, c.options = "powerdns", {"api_url": server.api_url}
                c.nameserver_addresses = [server.dns_address]
            if cluster:
                c = s.get(Cluster, "free")
                c.nameserver_addresses = cluster.addresses
                c.options = {**c.options, "catalog": cluster.catalog}
            for i, name in enumerate(names):
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
                            "records": zone_records(i, args.records),
                        }
                    ],
                )
            s.commit()
        load_zones(settings, db, "paid-1")

        release_cpu = cpu_seconds(paid, free)
        started = time.perf_counter()
        with open_run(RELEASE, False, None, settings=settings) as ctx:
            report = release_due(ctx)
        release_seconds = time.perf_counter() - started
        release_cpu = [b - a for a, b in zip(release_cpu, cpu_seconds(paid, free), strict=True)]
        released = report.counts.get("instances_released", 0)
        deleted = report.counts.get("paid_zones_deleted", 0)
        assert released == deleted == args.zones, report.counts
        waiting = report.counts.get("domains_waiting_for_secondaries", 0)
        if cluster:
            catch_up = [secondaries_catch_up(cluster, f"probe-{i}.cn") for i in range(5)]
        db.dispose()
    finally:
        paid.stop()
        if cluster:
            cluster.stop()
        else:
            free.stop()
        shutil.rmtree(folder, ignore_errors=True)

    ratio = floor_seconds / release_seconds
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "",
        f"## Release day between two PowerDNS servers ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `python bench/release.py --zones {args.zones} --records {args.records} "
        f"--workers {args.workers} --processes {args.processes}`; "
        f"load average (1/5/15 min) {load_before} before, {load_after} after; "
        f"{os.cpu_count()} cores; PowerDNS "
        "Authoritative with the SQLite backend, one write at a time per server.",
        "",
        "| | zones | seconds | zones/s | CPU s: bench (+ release processes) / paid / free |",
        "|---|---:|---:|---:|---|",
        f"| floor: bare httpx create + delete on one server | {args.zones} | "
        f"{floor_seconds:.1f} | {args.zones / floor_seconds:.0f} | "
        + " / ".join(f"{c:.1f}" for c in floor_cpu)
        + " |",
        f"| release: read, copy, create, flush, verify by DNS, switch, drain, delete "
        f"| {args.zones} | {release_seconds:.1f} | {args.zones / release_seconds:.0f} | "
        + " / ".join(f"{c:.1f}" for c in release_cpu)
        + " |",
        "",
        f"Release / floor: **{ratio:.2f}** of the floor (target: at least 0.5); "
        f"{1000 * release_seconds / args.zones:.1f} ms per zone against "
        f"{1000 * floor_seconds / args.zones:.1f} ms for the floor.",
        "",
    ]
    if cluster:
        lines[1] = lines[1].replace("two PowerDNS servers", "PowerDNS and BIND secondaries")
        lines[3] = lines[3].replace(" --processes", " --secondaries --processes")
        lines += [
            "The free cluster: a hidden primary and two BIND 9 secondaries fed by its "
            f"catalog; domains left waiting for secondaries: {waiting}. A new zone reached "
            "both secondaries in "
            + ", ".join(f"{t:.1f}" for t in catch_up)
            + " s (5 zones created one after the other on the primary).",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as out:
            out.write(text)


if __name__ == "__main__":
    main()
