"""Scale-out on one machine: the daily run with 1 worker and shards=1, then with 2
workers and shards=2, on PostgreSQL for both the Prefect server and the project's
database. Run by hand, never in CI:

    .venv/bin/python bench/scale_out.py                  # 200,000 instances
    .venv/bin/python bench/scale_out.py --instances 50000 --steady

What it does (see bench/README.md, "Scale-out on one machine"):

1. Creates its own PostgreSQL databases on 127.0.0.1:5432 (user postgres): one for the
   Prefect server, and one seeded fleet (``seed_fleet``, migrated, vacuumed) used as
   the TEMPLATE of each measured run's database, so both runs start from the same rows.
   With ``--steady`` the lifecycle is first applied the day before (no delivery, every
   notice marked sent), so the measured day has one day's work, about 1 % of the fleet;
   without it the measured day is a fresh fleet's first day, about 10 % of it.
2. Starts ``prefect server start`` on a free port with that PostgreSQL backend (its
   scheduler off, so the 02:00 schedule never fires into a measured database), creates
   the process pool ``dns-lifecycle`` and runs ``prefect deploy --all``, as
   scripts/operator-view.sh does.
3. Run A: one ``prefect worker start --pool dns-lifecycle``, ``daily-lifecycle/daily``
   with shards=1. Run B: two workers, shards=2. Each on a fresh copy of the fleet, for
   the same ``as_of``, email and SMS through the file backends into a temporary
   outbox. Wall time: from creating the flow run through the API to its final state.
4. Compares the outcomes of the two runs (instances per state, notifications per
   channel, kind and state, orders, tickets, zone-file copies, and a digest of every
   ledger key) and prints the table.
5. Stops the workers and the server and drops its databases, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(BENCH))

from fleet import catch_up, free_port, log, seed_logged  # noqa: E402  (needs the paths above)

POOL = "dns-lifecycle"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


# ------------------------------------------------------------------ PostgreSQL


class Postgres:
    """The databases this benchmark creates, and only those, dropped at the end."""

    def __init__(self, host: str, port: int, user: str, prefix: str) -> None:
        self.host, self.port, self.user, self.prefix = host, port, user, prefix
        self.created: list[str] = []

    def url(self, name: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{name}"

    def _admin(self, sql: str) -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction.
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def create(self, suffix: str, template: str | None = None) -> str:
        name = f"{self.prefix}_{suffix}"
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return name

    def drop_all(self) -> None:
        for name in reversed(self.created):
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as exc:
                log(f"could not drop database {name}: {exc}")
        self.created.clear()


def build_fleet(pg: Postgres, name: str, instances: int, seed: int, seeded_for, steady, tmp):
    """Migrate and seed ``name``; with ``steady``, apply the lifecycle at ``seeded_for``."""
    from dns_lifecycle.core.db import upgrade
    from dns_lifecycle.core.settings import Settings

    settings = Settings(database_url=pg.url(name), outbox_dir=tmp / "catch-up-outbox")
    upgrade(settings)
    seed_logged(settings, instances, seed, seeded_for)
    if steady:
        started = time.perf_counter()
        counts = catch_up(settings, seeded_for)
        log(f"  the day before applied in {time.perf_counter() - started:.0f} s: {counts}")
    # Fresh statistics, copied with the template, so both runs plan their queries alike.
    with psycopg.connect(pg.url(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def outcome(url: str) -> dict[str, object]:
    """What a run did, as comparable values: counts per state and a digest of the keys."""
    queries = {
        "instances": "SELECT state, count(*) FROM instance GROUP BY 1 ORDER BY 1",
        "notifications": "SELECT channel || ':' || kind || ':' || state, count(*) "
        "FROM notification GROUP BY 1 ORDER BY 1",
        "orders": "SELECT kind || ':' || state, count(*) FROM orders GROUP BY 1 ORDER BY 1",
        "tickets": "SELECT state, count(*) FROM ticket GROUP BY 1 ORDER BY 1",
        "zone copies": "SELECT 'rows', count(*) FROM zone_snapshot",
    }
    digests = {
        "notification keys": "SELECT md5(string_agg(key || state, ',' ORDER BY key)) "
        "FROM notification",
        "order keys": "SELECT md5(string_agg(key || state, ',' ORDER BY key)) FROM orders",
        "instance states": "SELECT md5(string_agg(id || state, ',' ORDER BY id)) FROM instance",
        "ticket domains": "SELECT md5(string_agg(domain_id || state, ',' "
        "ORDER BY domain_id, id)) FROM ticket",
    }
    result: dict[str, object] = {}
    with psycopg.connect(url) as conn:
        for label, sql in queries.items():
            result[label] = dict(conn.execute(sql).fetchall())
        for label, sql in digests.items():
            result[label] = conn.execute(sql).fetchone()[0]
    return result


# ------------------------------------------------------------------ processes


class Procs:
    """Processes started here, each in its own session, ended by their own ids."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=REPO,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its group holds its children (flow-run processes)
        )
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            # The leader ended; end what it may have left in its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc)


class Api:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30, trust_env=False)

    def healthy(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def deployment_id(self, name: str) -> str:
        answer = self.http.get(f"/deployments/name/{name}")
        answer.raise_for_status()
        return answer.json()["id"]

    def flow_run(self, run_id: str) -> dict:
        answer = self.http.get(f"/flow_runs/{run_id}")
        answer.raise_for_status()
        return answer.json()

    def runs_of(self, deployment_id: str) -> list[dict]:
        answer = self.http.post(
            "/flow_runs/filter",
            json={"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "limit": 200},
        )
        answer.raise_for_status()
        return answer.json()

    def online_workers(self) -> set[str]:
        answer = self.http.post(f"/work_pools/{POOL}/workers/filter", json={})
        answer.raise_for_status()
        return {w["name"] for w in answer.json() if w.get("status") == "ONLINE"}


def cli(args: list[str], env: dict[str, str], log_path: Path) -> None:
    with log_path.open("ab") as output:
        done = subprocess.run(args, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(args[:3])} exited {done.returncode}:\n{tail}")


def runs_taken(worker_log: Path) -> int:
    """Flow runs a worker ran: every worker polling the pool tries to submit a new run,
    the server lets one of them have it and aborts the others' submissions."""
    text = worker_log.read_text(errors="replace").lower()
    return text.count("submitting flow run") - text.count("aborted submission of flow run")


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


# ------------------------------------------------------------------ one measured run


def measured_run(label, workers, shards, *, pg, template, base_env, api, procs, tmp, as_of, poll):
    db = pg.create(f"run_{label.lower()}", template=template)
    env = {
        **base_env,
        "DATABASE_URL": pg.url(db),
        "DNSL_OUTBOX_DIR": str(tmp / f"outbox-{label}"),
        "DNSL_EMAIL_BACKEND": "file",
        "DNSL_SMS_BACKEND": "file",
        "PREFECT_WORKER_QUERY_SECONDS": str(poll),
    }
    names = [f"bench-{label.lower()}-{i + 1}" for i in range(workers)]
    started = [
        procs.start(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", name],
            env,
            tmp / f"worker-{name}.log",
        )
        for name in names
    ]
    deadline = time.monotonic() + 120
    while not set(names) <= api.online_workers():
        if time.monotonic() > deadline or any(p.poll() is not None for p in started):
            raise RuntimeError(f"workers {names} did not come online; see {tmp}/worker-*.log")
        time.sleep(0.5)
    log(f"run {label}: {workers} worker(s) online, database {db}; starting shards={shards}")

    load = os.getloadavg()[0]
    machine_before = psutil.cpu_times()
    daily = api.deployment_id("daily-lifecycle/daily")
    t0 = time.perf_counter()
    answer = api.http.post(
        f"/deployments/{daily}/create_flow_run",
        json={"parameters": {"as_of": as_of.isoformat(), "shards": shards}},
    )
    answer.raise_for_status()
    run_id = answer.json()["id"]
    while True:
        run = api.flow_run(run_id)
        if run["state"]["type"] in TERMINAL:
            break
        if time.perf_counter() - t0 > 3600:
            raise RuntimeError(f"run {label}: flow run {run_id} did not end within an hour")
        time.sleep(0.25)
    wall = time.perf_counter() - t0
    machine = psutil.cpu_times()
    busy = 1 - (machine.idle - machine_before.idle) / (sum(machine) - sum(machine_before))
    state = run["state"]["type"]
    log(f"run {label}: {state} in {wall:.1f} s")

    shard_runs = []
    if shards > 1:
        shard_dep = api.deployment_id("daily-lifecycle-shard/shard")
        # Run A made no shard runs: every run of the shard deployment is this run's.
        shard_runs = api.runs_of(shard_dep)
    # CPU of the workers and of the flow-run processes they started, once reaped (a run
    # reports its final state just before its process exits).
    reaped_by = time.monotonic() + 30
    while time.monotonic() < reaped_by and any(
        psutil.Process(p.pid).children(recursive=True) for p in started
    ):
        time.sleep(0.2)
    worker_cpu = sum(cpu_seconds(p.pid) for p in started)
    for proc in started:
        procs.stop(proc)
    picked = {name: runs_taken(tmp / f"worker-{name}.log") for name in names}
    result = {
        "label": label,
        "workers": workers,
        "shards": shards,
        "state": state,
        "load_before": load,
        "machine_busy": busy,
        "worker_cpu": worker_cpu,
        "wall": wall,
        "flow": seconds_between(run["start_time"], run["end_time"]),
        "shard_times": sorted(
            t for r in shard_runs if (t := seconds_between(r["start_time"], r["end_time"]))
        ),
        "runs_per_worker": picked,
        "outcome": outcome(pg.url(db)),
    }
    if state != "COMPLETED":
        raise RuntimeError(
            f"run {label}: the daily run ended {state}: {run['state'].get('message')}; "
            f"logs in {tmp}"
        )
    return result


# ------------------------------------------------------------------ report


def differences(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a[k]} != {b[k]}" for k in a if a[k] != b.get(k)]


def table(results: list[dict], same: bool) -> str:
    base = results[0]["wall"]
    rows = [
        "| workers | shards | wall time | flow run (server clock) | shard runs | speed-up "
        "| same outcome as 1 worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        shard_cell = ", ".join(f"{t:.1f} s" for t in r["shard_times"]) or "-"
        equal = "(reference)" if r is results[0] else "yes" if same else "**NO**"
        rows.append(
            f"| {r['workers']} | {r['shards']} | {r['wall']:.1f} s | {r['flow']:.1f} s "
            f"| {shard_cell} | {base / r['wall']:.2f}x | {equal} |"
        )
    return "\n".join(rows)


def totals(o: dict) -> dict[str, int]:
    notes = o["notifications"]
    sent = {
        ch: sum(n for k, n in notes.items() if k.startswith(ch + ":") and k.endswith(":sent"))
        for ch in ("email", "sms")
    }
    return {
        "emails sent": sent["email"],
        "SMS sent": sent["sms"],
        "orders": sum(o["orders"].values()),
        "instances released": o["instances"].get("released", 0),
        "tickets": sum(o["tickets"].values()),
        "zone-file copies": o["zone copies"].get("rows", 0),
    }


def summary(o: dict, before: dict) -> str:
    """What the run added to the seeded fleet."""
    after, start = totals(o), totals(before)
    return ", ".join(f"{k} {after[k] - start[k]:,}" for k in after)


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--as-of", default="2026-11-26", help="the measured day (00:00 UTC)")
    parser.add_argument(
        "--steady",
        action="store_true",
        help="apply the day before first, so the measured day has one day's work (~1 %%)",
    )
    parser.add_argument("--pg", default="127.0.0.1:5432", help="PostgreSQL host:port")
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument(
        "--poll", type=float, default=2.0, help="PREFECT_WORKER_QUERY_SECONDS of the workers"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and outboxes")
    args = parser.parse_args()

    as_of = datetime.fromisoformat(args.as_of)
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of
    host, _, port = args.pg.partition(":")
    pg = Postgres(host, int(port or 5432), args.pg_user, f"dnsl_scale_{os.getpid()}")
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="dnsl-scale-out-"))
    ok = False

    def terminate(signum, _frame):
        raise SystemExit(f"bench: signal {signum}, tearing down")

    signal.signal(signal.SIGTERM, terminate)
    try:
        log(f"work directory {tmp}")
        seeded = pg.create("seeded")
        mode = "steady day (the day before applied)" if args.steady else "a fresh fleet's first day"
        log(f"seeding {args.instances:,} instances into {seeded} for {as_of:%Y-%m-%d}: {mode}")
        build_fleet(
            pg, seeded, args.instances, args.seed, as_of - timedelta(days=1), args.steady, tmp
        )
        seeded_outcome = outcome(pg.url(seeded))
        prefect_db = pg.create("prefect")

        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        base_env = {
            k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")
        }
        base_env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": str(REPO),
                "PREFECT_HOME": str(tmp / "prefect"),
                "PREFECT_API_URL": api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
                "DNSL_PROJECT_DIR": str(REPO),
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        server_env = {
            **base_env,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": pg.url(prefect_db, "postgresql+asyncpg"),
            # No scheduled daily run may land in a measured database.
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
        log(f"starting the Prefect server on {api_url} (PostgreSQL database {prefect_db})")
        server = procs.start(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            server_env,
            tmp / "server.log",
        )
        api = Api(api_url)
        deadline = time.monotonic() + 180
        while not api.healthy():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the Prefect server did not start; see {tmp}/server.log")
            time.sleep(0.5)
        prefect = str(BIN / "prefect")
        cli([prefect, "--no-prompt", "work-pool", "create", POOL, "--type", "process",
             "--overwrite"], base_env, tmp / "deploy.log")  # fmt: skip
        cli([prefect, "--no-prompt", "deploy", "--all"], base_env, tmp / "deploy.log")
        log("work pool and deployments created")

        common = dict(
            pg=pg, template=seeded, base_env=base_env, api=api, procs=procs, tmp=tmp,
            as_of=as_of, poll=args.poll,
        )  # fmt: skip
        results = [measured_run("A", 1, 1, **common), measured_run("B", 2, 2, **common)]
        diff = differences(results[0]["outcome"], results[1]["outcome"])
        same = not diff

        print()
        print(
            f"{args.instances:,} instances, as_of {as_of.isoformat()}, {mode}; "
            f"Prefect server and project database on PostgreSQL; workers poll every "
            f"{args.poll:g} s; {os.cpu_count()} CPUs"
        )
        print(table(results, same))
        print()
        for r in results:
            print(
                f"run {r['label']}: {summary(r['outcome'], seeded_outcome)}; flow runs per "
                f"worker {r['runs_per_worker']}; CPU of workers and flow runs "
                f"{r['worker_cpu']:.0f} s; machine CPU busy {r['machine_busy']:.0%} during the "
                f"run; load average before it {r['load_before']:.2f}"
            )
        if diff:
            print("\nOUTCOMES DIFFER:\n  " + "\n  ".join(diff))
        ok = same
        return 0 if same else 1
    finally:
        log("tearing down: workers, server, databases")
        procs.stop_all()
        pg.drop_all()
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs and outboxes kept in {tmp}")


if __name__ == "__main__":
    sys.exit(main())
