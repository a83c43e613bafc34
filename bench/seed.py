"""The seed against the database's own speed: ``seed_fleet`` next to the same rows
written by the plainest client there is, in the same run. By hand, never in CI:

    .venv/bin/python bench/seed.py                          # 1M instances, SQLite and PostgreSQL
    .venv/bin/python bench/seed.py --instances 100000 --backend sqlite

SQLite (a migrated file per measurement, copied from one template):

1. ``seed_fleet`` into file A, timed as a whole (generating the rows and writing them).
2. The floor: the same rows, read back from A (untimed), written into file B by the
   standard library's ``sqlite3``: ``executemany`` per table and chunk in one
   transaction, WAL, the secondary indexes dropped first and created after, the same
   bulk PRAGMAs (synchronous off, no foreign-key checks, 256 MB cache). Timed: the
   inserts, the index builds and the commit.
3. The generator alone: the rows ``seed_fleet`` writes, made and thrown away.

PostgreSQL (databases of its own on ``--pg``, dropped at the end):

1. ``seed_fleet`` into database A (migrated), timed as a whole.
2. The floor: A's rows dumped by ``psql \\copy ... TO`` into files (untimed), then one
   ``psql -1`` loading them into database B (migrated) with ``\\copy ... FROM``, its
   secondary indexes dropped first and created after. Timed: that psql process.

Both outcomes are checked to hold the same rows (counts, and a digest on SQLite).
Prints a table and writes bench/out/seed.{md,json}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(BENCH))

from fleet import log  # noqa: E402  (needs the paths above)

from dns_lifecycle.admin.seed import _parts, seed_fleet  # noqa: E402
from dns_lifecycle.admin.seed_rows import (  # noqa: E402
    ACCOUNT_COLUMNS,
    DOMAIN_COLUMNS,
    FLEET_TABLES,
    INSTANCE_COLUMNS,
    RECORD_COLUMNS,
)
from dns_lifecycle.core.db import Database, upgrade  # noqa: E402
from dns_lifecycle.core.settings import Settings  # noqa: E402

COLUMNS = {
    "account": ACCOUNT_COLUMNS,
    "instance": INSTANCE_COLUMNS,
    "domain": DOMAIN_COLUMNS,
    "record": RECORD_COLUMNS,
}
CHUNK = 10_000  # rows per executemany in the floor, as the seed's default chunk


def timed_seed(url: str, instances: int, seed: int, as_of: datetime) -> float:
    db = Database(Settings(database_url=url))
    try:
        started = time.perf_counter()
        seed_fleet(db, instances, seed=seed, as_of=as_of)
        return time.perf_counter() - started
    finally:
        db.dispose()


def generator_only(instances: int, seed: int, as_of: datetime) -> float:
    accounts = max(1, instances // 3)
    plan = {
        "seed": seed,
        "new_accounts": accounts,
        "instances": instances,
        "as_of": as_of,
        "chunk": CHUNK,
        "first": 0,
        "first_domain_id": 1,
        "first_record_id": 1,
    }
    started = time.perf_counter()
    for _ in _parts(plan):
        pass
    return time.perf_counter() - started


# ------------------------------------------------------------------ SQLite


def sqlite_floor(source: Path, target: Path) -> float:
    """Copy the fleet's rows from ``source`` into ``target`` with plain sqlite3; returns
    the seconds spent writing (reading the rows back is not counted)."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target, isolation_level=None)
    spent = 0.0
    try:
        dst.execute("PRAGMA journal_mode=WAL")
        dst.execute("PRAGMA synchronous=OFF")
        dst.execute("PRAGMA foreign_keys=OFF")
        dst.execute("PRAGMA cache_size=-262144")
        tables = ", ".join(f"'{t}'" for t in FLEET_TABLES)
        indexes = dst.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({tables})"
        ).fetchall()
        started = time.perf_counter()
        dst.execute("BEGIN")
        for name, _ in indexes:
            dst.execute(f'DROP INDEX "{name}"')
        spent += time.perf_counter() - started
        for table in FLEET_TABLES:
            columns = COLUMNS[table]
            insert = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            rows = src.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
            while batch := rows.fetchmany(CHUNK):
                started = time.perf_counter()
                dst.executemany(insert, batch)
                spent += time.perf_counter() - started
        started = time.perf_counter()
        for _, sql in indexes:
            dst.execute(sql)
        dst.execute("COMMIT")
        spent += time.perf_counter() - started
    finally:
        src.close()
        dst.close()
    return spent


def sqlite_digest(path: Path) -> tuple[dict[str, int], str]:
    conn = sqlite3.connect(path)
    digest = hashlib.sha256()
    counts = {}
    try:
        for table in FLEET_TABLES:
            counts[table] = 0
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid"):
                digest.update(repr(row).encode())
                counts[table] += 1
    finally:
        conn.close()
    return counts, digest.hexdigest()


def bench_sqlite(instances: int, seed: int, as_of: datetime, tmp: Path) -> dict:
    template = tmp / "template.db"
    upgrade(Settings(database_url=f"sqlite:///{template}"))
    seeded, floor = tmp / "seeded.db", tmp / "floor.db"
    shutil.copyfile(template, seeded)
    shutil.copyfile(template, floor)

    log(f"sqlite: seed_fleet of {instances:,} instances")
    seed_seconds = timed_seed(f"sqlite:///{seeded}", instances, seed, as_of)
    log(f"sqlite: seed_fleet took {seed_seconds:.1f} s; the floor (sqlite3 executemany)")
    floor_seconds = sqlite_floor(seeded, floor)
    log(f"sqlite: floor took {floor_seconds:.1f} s; the generator alone")
    generator_seconds = generator_only(instances, seed, as_of)
    log(f"sqlite: generator took {generator_seconds:.1f} s; comparing the two files")
    seeded_rows, seeded_digest = sqlite_digest(seeded)
    floor_rows, floor_digest = sqlite_digest(floor)
    return {
        "seed_seconds": seed_seconds,
        "floor_seconds": floor_seconds,
        "generator_seconds": generator_seconds,
        "ratio": seed_seconds / floor_seconds,
        "rows": seeded_rows,
        "same_rows": seeded_rows == floor_rows and seeded_digest == floor_digest,
        "file_mb": seeded.stat().st_size / 2**20,
    }


# ------------------------------------------------------------------ PostgreSQL


def psql(url: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, *args],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"bench: psql {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def bench_postgres(pg_base: str, instances: int, seed: int, as_of: datetime, tmp: Path) -> dict:
    from scale_out import Postgres

    host_port, user = pg_base.split("@", 1)[1], pg_base.split("://", 1)[1].split("@", 1)[0]
    host, port = host_port.rstrip("/").split(":")
    pg = Postgres(host, int(port), user, f"dnsl_seedbench_{os.getpid()}")
    try:
        seeded, floor = pg.create("seeded"), pg.create("floor")
        for name in (seeded, floor):
            upgrade(Settings(database_url=pg.url(name)))
        log(f"postgresql: seed_fleet of {instances:,} instances")
        seed_seconds = timed_seed(pg.url(seeded), instances, seed, as_of)
        log(f"postgresql: seed_fleet took {seed_seconds:.1f} s; dumping its rows")
        script = ["SET maintenance_work_mem = '256MB';"]
        indexes = [line.split("|", 1) for line in psql(
            pg.url(floor), "-At", "-F", "|", "-c",
            "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = 'public' "
            f"AND tablename IN ({', '.join(repr(t) for t in FLEET_TABLES)}) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        ).stdout.splitlines()]  # fmt: skip
        script += [f'DROP INDEX "{name}";' for name, _ in indexes]
        # The catalog (a handful of rows the instances refer to) goes in first, untimed.
        for table in ("edition", "cluster"):
            path = tmp / f"{table}.copy"
            psql(pg.url(seeded), "-c", f"\\copy {table} TO '{path}'")
            psql(pg.url(floor), "-c", f"\\copy {table} FROM '{path}'")
        for table in FLEET_TABLES:
            columns = ", ".join(COLUMNS[table])
            path = tmp / f"{table}.copy"
            psql(pg.url(seeded), "-c", f"\\copy {table} ({columns}) TO '{path}'")
            script.append(f"\\copy {table} ({columns}) FROM '{path}'")
        script += [f"{sql};" for _, sql in indexes]
        (tmp / "floor.sql").write_text("\n".join(script) + "\n")
        log("postgresql: the floor (psql \\copy)")
        started = time.perf_counter()
        psql(pg.url(floor), "-1", "-f", str(tmp / "floor.sql"))
        floor_seconds = time.perf_counter() - started
        log(f"postgresql: floor took {floor_seconds:.1f} s")
        counts = {}
        for name in (seeded, floor):
            counts[name] = psql(
                pg.url(name),
                "-At",
                "-c",
                " UNION ALL ".join(
                    f"SELECT '{t}', count(*), md5(string_agg(md5(x::text), '' ORDER BY x.id)) "
                    f"FROM {t} x"
                    for t in FLEET_TABLES
                ),
            ).stdout
        return {
            "seed_seconds": seed_seconds,
            "floor_seconds": floor_seconds,
            "ratio": seed_seconds / floor_seconds,
            "same_rows": counts[seeded] == counts[floor],
            "rows": {
                line.split("|")[0]: int(line.split("|")[1]) for line in counts[seeded].splitlines()
            },
        }
    finally:
        pg.drop_all()


# ------------------------------------------------------------------ main


def report(results: dict) -> str:
    lines = [
        f"{results['instances']:,} instances, seed {results['seed']}, as of "
        f"{results['as_of']}; load before: {results['load']}",
        "",
        "| backend | seed_fleet | floor | seed / floor | generator alone | same rows |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in (("sqlite", "SQLite (floor: sqlite3 executemany)"),
                        ("postgresql", "PostgreSQL (floor: psql \\copy)")):  # fmt: skip
        r = results.get(name)
        if not r:
            continue
        generator = f"{r['generator_seconds']:.1f} s" if "generator_seconds" in r else "-"
        lines.append(
            f"| {label} | {r['seed_seconds']:.1f} s | {r['floor_seconds']:.1f} s | "
            f"{r['ratio']:.2f} | {generator} | {'yes' if r['same_rows'] else 'NO'} |"
        )
    rows = next((results[n]["rows"] for n in ("sqlite", "postgresql") if n in results), {})
    lines += ["", "rows: " + ", ".join(f"{n:,} {t}" for t, n in rows.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--as-of", default="2026-11-25", help="the day the fleet is seeded for")
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL")
    args = p.parse_args(argv)
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=UTC)
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "instances": args.instances,
        "seed": args.seed,
        "as_of": args.as_of,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpus": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory(prefix="seedbench-", dir=BENCH) as tmp:
        if args.backend in ("sqlite", "both"):
            results["sqlite"] = bench_sqlite(args.instances, args.seed, as_of, Path(tmp))
        if args.backend in ("postgresql", "both"):
            results["postgresql"] = bench_postgres(
                args.pg, args.instances, args.seed, as_of, Path(tmp)
            )
    table = report(results)
    (OUT / "seed.json").write_text(json.dumps(results, indent=2))
    (OUT / "seed.md").write_text(table + "\n")
    print()
    print(table)
    same = all(results[n]["same_rows"] for n in ("sqlite", "postgresql") if n in results)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
