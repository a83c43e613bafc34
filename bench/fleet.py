"""The fleet-scale benchmark: the daily run on 1M and 2M instances, against the link's
own limit and against a naive per-instance baseline. Run by hand, never in CI:

    bench/run.sh            # or: .venv/bin/python bench/fleet.py --help

What it does, in one run (see bench/README.md):

1. Makes sure Postfix's ``smtp-sink`` and ``smtp-source`` are installed (apt-get
   install postfix when they are not; the Postfix daemon itself is never started).
2. Builds, once, a database of N instances (``seed_fleet``) brought to a steady state:
   the lifecycle is applied the day before the measured day (the catch-up of a fresh
   fleet: every reminder already owed, every release overdue) and its notices marked
   sent, so the measured day has one day's work, about 1 % of the fleet. A second
   database adds N far-future instances (expiring 400-775 days out, outside every
   window) to it: twice the fleet, the same due actions. Both are cached under
   ``bench/.cache/`` keyed by their parameters and the seeding code; each run
   works on a copy.
3. Starts ``smtp-sink`` and an HTTP stand-in for the SMS provider (bench/sms_sink.py),
   both on 127.0.0.1, and runs ``dns-lifecycle run`` (bench/run_daily.py: the real
   command, through a temporary Prefect API) with email over SMTP to the sink and
   SMS with the ``aliyun`` backend to the HTTP sink, on each database.
4. Sends, with ``smtp-source``, as many messages of the same size over as many
   connections to the same sink: the link's own rate.
5. Runs the naive baseline (bench/naive.py) on a sample of due instances.
6. Prints the table and the targets, and writes bench/out/results.{json,md}.

With ``--database postgresql`` the fleets are PostgreSQL databases (``bench_fleet_*``,
cached; each run on a ``CREATE DATABASE ... TEMPLATE`` copy) and the same day also runs
on SQLite at N, for the ratio. ``--profile`` adds a run at N under py-spy (bench/spy.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import spy

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
OUT = BENCH / "out"
PYTHON = sys.executable
sys.path.insert(0, str(REPO))

SPY_RATE = 100  # py-spy's samples per second

# Bump when the way a cached database is built changes.
BUILD_VERSION = 1

FAR_FUTURE_DAYS = 410  # extra instances expire in [as_of + 400 d, as_of + 775 d]
SMTP_TOOLS = ("smtp-sink", "smtp-source")
SENDER = "no-reply@dns-lifecycle.example"

TARGETS = {
    "email_vs_floor": 0.6,  # email rate / the stack's floor (same processes, connections)
    "pool_vs_single": 1.5,  # email rate with the pool / with one process, at least
    "vs_naive": 30.0,  # instances/s against the naive baseline, at least
    "scale_2m_1m": 1.05,  # run time at 2M / at 1M, at most
    "rss_mb_1m": 500.0,  # peak RSS of the run at 1M, at most
    "postgresql_vs_sqlite": 1.5,  # all steps on PostgreSQL / on SQLite at N, at most
    "cpu_vs_floor": 1.5,  # CPU per notice, the run's processes / the floor's, at most
}


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# ------------------------------------------------------------------ tools and sinks


def smtp_tool(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return ""


def ensure_smtp_tools() -> dict[str, str]:
    if not all(smtp_tool(n) for n in SMTP_TOOLS):
        log("installing postfix for smtp-sink and smtp-source (the daemon is not started)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "install", "-y", "postfix"], check=True, env=env)
    tools = {n: smtp_tool(n) for n in SMTP_TOOLS}
    missing = [n for n, path in tools.items() if not path]
    if missing:
        sys.exit(f"bench: {', '.join(missing)} not found after installing postfix")
    return tools


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: nothing listens on 127.0.0.1:{port} after {timeout:g} s")


class Sinks:
    """smtp-sink and the SMS stand-in, started once and stopped at the end."""

    def __init__(self, tools: dict[str, str]) -> None:
        self.smtp_port = free_port()
        self.sms_port = free_port()
        self.smtp_log = OUT / "smtp-sink.out"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self._smtp = subprocess.Popen(
            [tools["smtp-sink"], "-c", *user, f"127.0.0.1:{self.smtp_port}", "1024"],
            stdout=self.smtp_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self._sms = subprocess.Popen(
            [PYTHON, str(BENCH / "sms_sink.py"), str(self.sms_port)],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.smtp_port)
        wait_for_port(self.sms_port)

    def smtp_messages(self) -> int:
        """Messages smtp-sink has received so far (its last ``-c`` counter line)."""
        text = self.smtp_log.read_bytes().decode("ascii", "replace")
        lines = [line for line in text.replace("\r", "\n").split("\n") if "mesg=" in line]
        return int(lines[-1].rsplit("mesg=", 1)[1].split()[0]) if lines else 0

    def sms_requests(self) -> int:
        url = f"http://127.0.0.1:{self.sms_port}/_count"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as answer:
            return json.load(answer)["requests"]

    def stop(self) -> None:
        for proc in (self._smtp, self._sms):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()


# ------------------------------------------------------------------ databases


def code_digest() -> str:
    """What a cached database depends on besides its parameters."""
    h = hashlib.sha256(str(BUILD_VERSION).encode())
    sources = [
        REPO / "dns_lifecycle" / "admin" / "seed.py",
        REPO / "dns_lifecycle" / "admin" / "seed_rows.py",
        REPO / "dns_lifecycle" / "admin" / "bulk_load.py",
        *sorted((REPO / "migrations").rglob("*.py")),
    ]
    for path in sources:
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def settings_for(url: str, **overrides):
    from dns_lifecycle.core.settings import Settings

    return Settings(database_url=url, **overrides)


class SqliteFleets:
    """Fleet databases as SQLite files: cached in bench/.cache/, copied into bench/out/."""

    kind = "sqlite"

    def cached(self, name: str, build) -> str:
        """The cached database ``name``, built by ``build(url)`` when missing."""
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"{name}.db"
        if path.exists():
            log(f"using cached {path.relative_to(REPO)}")
            return sqlite_url(path)
        partial = path.with_suffix(".partial")
        for leftover in CACHE.glob(f"{partial.name}*"):
            leftover.unlink()
        log(f"building {path.relative_to(REPO)} (cached for later runs)")
        build(sqlite_url(partial))
        checkpoint(partial)
        partial.rename(path)
        return sqlite_url(path)

    def copy(self, source: str, target: str) -> None:
        shutil.copyfile(sqlite_path(source), sqlite_path(target))

    def working_copy(self, cached: str, name: str) -> str:
        target = OUT / f"{name}.db"
        self.drop(name)
        shutil.copyfile(sqlite_path(cached), target)
        return sqlite_url(target)

    def drop(self, name: str) -> None:
        for path in OUT.glob(f"{name}.db*"):
            path.unlink()


class PostgresFleets:
    """Fleet databases on the PostgreSQL server at ``server`` (a URL without a database):
    cached as ``bench_fleet_*`` databases, each run's copy made by ``CREATE DATABASE ...
    TEMPLATE`` (a file copy), named ``bench_work_*``."""

    kind = "postgresql"

    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")

    def url(self, database: str) -> str:
        return f"{self.server}/{database}"

    def _admin(self, *statements: str) -> list[tuple]:
        import psycopg

        rows: list[tuple] = []
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            for sql in statements:
                cursor = conn.execute(sql)
                if cursor.description:
                    rows = cursor.fetchall()
        return rows

    def exists(self, database: str) -> bool:
        return bool(self._admin(f"SELECT 1 FROM pg_database WHERE datname = '{database}'"))

    def cached(self, name: str, build) -> str:
        database = "bench_" + name.replace("-", "_")
        if self.exists(database):
            log(f"using cached PostgreSQL database {database}")
            return self.url(database)
        partial = f"{database}_partial"
        self._admin(
            f'DROP DATABASE IF EXISTS "{partial}" WITH (FORCE)', f'CREATE DATABASE "{partial}"'
        )
        log(f"building PostgreSQL database {database} (cached for later runs)")
        build(self.url(partial))
        # A fleet whose daily runs have kept up has been vacuumed and analysed by
        # autovacuum; the copies made from this one inherit its statistics.
        self._vacuum_analyze(self.url(partial))
        self._admin(f'ALTER DATABASE "{partial}" RENAME TO "{database}"')
        return self.url(database)

    @staticmethod
    def _vacuum_analyze(url: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")

    def database_of(self, url: str) -> str:
        return url.rsplit("/", 1)[1]

    def copy(self, source: str, target: str) -> None:
        """``target`` (made empty by ``cached``) becomes a copy of ``source``."""
        name = self.database_of(target)
        self._admin(
            f'DROP DATABASE "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}" TEMPLATE "{self.database_of(source)}"',
        )

    def working_copy(self, cached: str, name: str) -> str:
        self.drop(name)
        database = f"bench_work_{name}"
        self._admin(f'CREATE DATABASE "{database}" TEMPLATE "{self.database_of(cached)}"')
        return self.url(database)

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "bench_work_{name}" WITH (FORCE)')


Fleets = SqliteFleets | PostgresFleets


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def seed_logged(settings, instances: int, seed: int, seeded_for: datetime) -> None:
    """Seed a fleet into a migrated database, logging progress every 15 s."""
    from dns_lifecycle.admin.seed import seed_fleet
    from dns_lifecycle.core.db import Database

    db = Database(settings)
    started, last = time.perf_counter(), [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 15 or done == total:
            last[0] = time.perf_counter()
            log(f"  seeded {done:,}/{total:,} instances")

    try:
        seed_fleet(db, instances, seed=seed, as_of=seeded_for, progress=progress)
    finally:
        db.dispose()
    log(f"  seeding took {time.perf_counter() - started:.0f} s")


def build_base(url: str, instances: int, seed: int, seeded_for: datetime) -> None:
    """Seed ``instances`` for ``seeded_for``, then bring the fleet to that day's end."""
    from dns_lifecycle.core.db import upgrade

    settings = settings_for(url, outbox_dir=OUT / "warm-up-outbox")
    upgrade(settings)
    seed_logged(settings, instances, seed, seeded_for)
    log("  applying the first day")
    started = time.perf_counter()
    counts = catch_up(settings, seeded_for)
    log(f"  first day applied in {time.perf_counter() - started:.0f} s: {counts}")


def catch_up(settings, moment: datetime) -> dict[str, int]:
    """Apply the lifecycle at ``moment`` (no delivery) and mark every notice sent: the
    state of a fleet whose daily runs have kept up until then."""
    from sqlalchemy import update

    from flows.auto_renew import renew_due
    from flows.common import open_run
    from flows.expire import expire_due
    from flows.release import release_due
    from flows.reminders import plan_reminders
    from models import Notification

    counts: dict[str, int] = {}
    with open_run(moment, False, None, settings=settings) as ctx:
        for act in (renew_due, expire_due, plan_reminders, release_due):
            for name, n in act(ctx, None).counts.items():
                counts[name] = counts.get(name, 0) + n
        with ctx.db.engine.begin() as conn:
            conn.execute(
                update(Notification)
                .where(Notification.state == "pending")
                .values(state="sent", sent_at=moment, attempts=1)
            )
    return counts


def add_far_future(url: str, extra: int, seed: int, as_of: datetime) -> None:
    """Add ``extra`` active instances (with domains and records) that expire 400-775
    days after ``as_of``: outside every window, so they add size and no work."""
    from dns_lifecycle.admin.seed import extend_fleet
    from dns_lifecycle.core.db import Database

    db = Database(settings_for(url))
    started = time.perf_counter()
    try:
        extend_fleet(db, extra, seed + 1, as_of=as_of + timedelta(days=FAR_FUTURE_DAYS))
    finally:
        db.dispose()
    log(f"  added {extra:,} far-future instances in {time.perf_counter() - started:.0f} s")


def checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so that one file is the whole database."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")


# ------------------------------------------------------------------ runs


def child_env(
    url: str, sinks: Sinks, name: str, connections: int, processes: int = 1
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    prefect_home = OUT / f"prefect-{name}"
    shutil.rmtree(prefect_home, ignore_errors=True)
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": url,
            "DNSL_OUTBOX_DIR": str(OUT / f"outbox-{name}"),
            "DNSL_EMAIL_BACKEND": "smtp",
            "DNSL_EMAIL_FROM": f"DNS Hosting <{SENDER}>",
            "DNSL_SMTP_HOST": "127.0.0.1",
            "DNSL_SMTP_PORT": str(sinks.smtp_port),
            "DNSL_SMTP_SECURITY": "none",
            "DNSL_SMTP_CONNECTIONS": str(connections),
            "DNSL_DELIVERY_PROCESSES": str(processes),
            "DNSL_SMS_BACKEND": "aliyun",
            "DNSL_ALIYUN_ACCESS_KEY_ID": "bench-key-id",
            "DNSL_ALIYUN_ACCESS_KEY_SECRET": "bench-key-secret",
            "DNSL_ALIYUN_ENDPOINT": f"127.0.0.1:{sinks.sms_port}",
            "DNSL_ALIYUN_PROTOCOL": "http",
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    return env


def run_child(
    args: list[str], env: dict[str, str], log_name: str, prefix: list[str] | None = None
) -> None:
    """``PYTHON args`` (behind ``prefix``, a command that runs it), its output logged."""
    with (OUT / log_name).open("wb") as output:
        done = subprocess.run(
            [*(prefix or []), PYTHON, *args],
            env=env,
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        tail = (OUT / log_name).read_text(errors="replace")[-3000:]
        sys.exit(f"bench: {args[0]} exited {done.returncode}; end of its output:\n{tail}")


def daily_run(
    name: str,
    fleets: Fleets,
    cached: str,
    sinks: Sinks,
    as_of: str,
    connections: int,
    processes: int,
    profile: bool = False,
) -> dict:
    """One measured run on a working copy of ``cached`` (kept as ``name``); with
    ``profile``, under py-spy."""
    url = fleets.working_copy(cached, name)
    metrics_path = OUT / f"{name}.json"
    mails_before, sms_before = sinks.smtp_messages(), sinks.sms_requests()
    load_before = load_average()
    log(f"{name}: dns-lifecycle run --as-of {as_of} on {fleets.kind} {url.rsplit('/', 1)[1]}")
    env = child_env(url, sinks, name, connections, processes)
    args = [str(BENCH / "run_daily.py"), str(metrics_path), as_of]
    prefix = None
    if profile:
        py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
        prefix = [py_spy, *spy.command(OUT / f"{name}-spy.txt", SPY_RATE, [])[1:-1], "--"]
    run_child(args, env, f"{name}.log", prefix)
    metrics = json.loads(metrics_path.read_text())
    time.sleep(0.5)  # smtp-sink writes its counter as each session ends
    metrics["sink_emails"] = sinks.smtp_messages() - mails_before
    metrics["sink_sms"] = sinks.sms_requests() - sms_before
    metrics["email_size"] = mean_email_size(url)
    metrics["database_url"] = url
    metrics["database"] = fleets.kind
    metrics["load_before"] = load_before
    log(f"{name}: {summarise(metrics)}")
    return metrics


def mean_email_size(url: str, sample: int = 300) -> int:
    """Mean size in bytes of the MIME messages the run sent (a sample, rebuilt)."""
    from sqlalchemy import select

    from dns_lifecycle.channels.email import EmailMessage
    from dns_lifecycle.channels.email.message import build_mime
    from dns_lifecycle.channels.render import Renderer
    from dns_lifecycle.core.db import Database
    from models import Account, Notification

    settings = settings_for(url)
    db = Database(settings)
    renderer = Renderer(settings.templates_dir)
    try:
        with db.session() as session:
            rows = session.execute(
                select(Notification.key, Notification.kind, Notification.context, Account.email)
                .join(Account, Account.id == Notification.account_id)
                .where(Notification.channel == "email", Notification.attempts > 0)
                .order_by(Notification.id.desc())
                .limit(sample)
            ).all()
    finally:
        db.dispose()
    sizes = []
    for key, kind, context, email in rows:
        rendered = renderer.email(kind, context)
        message = EmailMessage(key, email, rendered.subject, rendered.text, rendered.html)
        sizes.append(len(build_mime(message, settings.email_from, date=datetime.now(UTC))))
    return round(sum(sizes) / len(sizes)) if sizes else 0


def link_rate(tools: dict[str, str], sinks: Sinks, messages: int, size: int, sessions: int):
    """smtp-source: ``messages`` of ``size`` bytes over ``sessions`` kept-open connections."""
    before = sinks.smtp_messages()
    started = time.perf_counter()
    subprocess.run(
        [
            tools["smtp-source"],
            "-d",  # keep each connection open for the next message
            "-s", str(sessions),
            "-m", str(messages),
            "-l", str(size),
            "-f", SENDER,
            "-t", "user@example.com",
            "-M", "dns-lifecycle.example",
            f"127.0.0.1:{sinks.smtp_port}",
        ],
        check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    time.sleep(0.5)
    received = sinks.smtp_messages() - before
    return {
        "messages": messages,
        "received": received,
        "size": size,
        "sessions": sessions,
        "seconds": seconds,
        "rate": messages / seconds,
    }


def stack_floor(
    url: str, sinks: Sinks, seeded_for: datetime, processes: int, connections: int
) -> dict:
    """The run's messages, pre-built, sent by aiosmtplib and aiohttp alone from as many
    processes over as many connections (bench/stack_floor.py)."""
    from dns_lifecycle.channels.sms.aliyun import DEFAULT_CONCURRENCY

    env = child_env(url, sinks, "floor", connections, processes)
    messages = OUT / "floor-messages.pickle"
    script = str(BENCH / "stack_floor.py")

    def child(*args: str) -> dict:
        done = subprocess.run(
            [PYTHON, script, *args], env=env, cwd=REPO, capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"bench: stack_floor.py {args[0]} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    log("stack floor: building the run's messages")
    built = child("prepare", url, seeded_for.isoformat(), str(messages))
    floors = {}
    for channel in ("smtp", "sms", "both"):
        before_mail, before_sms = sinks.smtp_messages(), sinks.sms_requests()
        floors[channel] = child(
            channel,
            str(messages),
            str(processes),
            str(connections),
            str(DEFAULT_CONCURRENCY),
            str(sinks.smtp_port),
            str(sinks.sms_port),
        )
        time.sleep(0.5)
        floors[channel]["sink_emails"] = sinks.smtp_messages() - before_mail
        floors[channel]["sink_sms"] = sinks.sms_requests() - before_sms
    messages.unlink()
    log(
        f"stack floor: {built['emails']:,} emails at {floors['smtp']['email_rate']:.0f}/s "
        f"alone, {built['sms']:,} SMS at {floors['sms']['sms_rate']:.0f}/s alone; both at "
        f"once {floors['both']['email_rate']:.0f} emails/s"
    )
    return floors


def profiled_run(fleets: Fleets, cached: str, sinks: Sinks, args: argparse.Namespace) -> dict:
    """The day at N once more, under py-spy (its own figures are left out of the table:
    sampling takes CPU from the run): where the delivery path's CPU goes."""
    metrics = daily_run(
        "profile", fleets, cached, sinks, args.as_of, args.connections, args.processes, True
    )
    summary = spy.summarise(OUT / "profile-spy.txt")
    log(f"profile: {summary['samples']}, raw stacks in bench/out/profile-spy.txt")
    return {"run": summarise(metrics), "load_before": metrics["load_before"], **summary}


def naive_run(fleets: Fleets, cached: str, sinks: Sinks, as_of: str, sample: int) -> dict:
    url = fleets.working_copy(cached, "naive")
    metrics_path = OUT / "naive.json"
    log(f"naive baseline: {sample} instances, one task and one SMTP connection each")
    env = child_env(url, sinks, "naive", 1)
    run_child([str(BENCH / "naive.py"), str(metrics_path), as_of, str(sample)], env, "naive.log")
    metrics = json.loads(metrics_path.read_text())
    metrics["rate"] = metrics["instances"] / metrics["seconds"]
    log(
        f"naive: {metrics['instances']} instances in {metrics['seconds']:.1f} s "
        f"= {metrics['rate']:.1f}/s {metrics['counts']}"
    )
    return metrics


# ------------------------------------------------------------------ report


def step_rows(metrics: dict) -> list[dict]:
    return (metrics.get("report") or {}).get("steps", [])


def totals(metrics: dict) -> dict:
    steps = step_rows(metrics)
    counts: dict[str, int] = {}
    for step in steps:
        for name, n in step["counts"].items():
            counts[name] = counts.get(name, 0) + n
    deliver = sum(d["seconds"] for d in metrics["deliveries"])
    deliver_cpu = sum(d.get("cpu_seconds", 0.0) for d in metrics["deliveries"])
    emails = sum(d["counts"].get("email_sent", 0) for d in metrics["deliveries"])
    sms = sum(d["counts"].get("sms_sent", 0) for d in metrics["deliveries"])
    steps_seconds = sum(s["duration_seconds"] for s in steps)
    cpu = metrics.get("cpu") or {}
    pool_cpu = cpu.get("pool_seconds", 0.0)
    notices = emails + sms
    reminders = next((s for s in steps if s["step"] == "send-renewal-reminders"), None)
    return {
        "steps_seconds": steps_seconds,
        "deliver_seconds": deliver,
        "deliver_cpu_seconds": deliver_cpu,
        "run_cpu_seconds": cpu.get("run_seconds", 0.0),
        "pool_cpu_seconds": pool_cpu,
        "server_cpu_seconds": cpu.get("server_seconds", 0.0),
        # The run's processes together (the run process and its delivery processes),
        # for the whole run and for its delivery alone, per notice delivered.
        "cpu_per_notice": (cpu.get("run_seconds", 0.0) + pool_cpu) / notices if notices else 0.0,
        "delivery_cpu_per_notice": (deliver_cpu + pool_cpu) / notices if notices else 0.0,
        "emails": emails,
        "sms": sms,
        "email_rate": emails / deliver if deliver else 0.0,
        "sms_rate": sms / deliver if deliver else 0.0,
        "email_send_rate": emails / metrics["email_send_seconds"]
        if metrics["email_send_seconds"]
        else 0.0,
        "reminder_instances": reminders["counts"].get("reminders_due", 0) if reminders else 0,
        "reminder_seconds": reminders["duration_seconds"] if reminders else 0.0,
        "failures": [f for s in steps for f in s["failures"]],
        "counts": counts,
    }


def summarise(metrics: dict) -> str:
    t = totals(metrics)
    return (
        f"exit {metrics['exit_code']}, wall {metrics['wall_seconds']:.1f} s, steps "
        f"{t['steps_seconds']:.1f} s, {t['emails']:,} emails and {t['sms']:,} SMS in "
        f"{t['deliver_seconds']:.1f} s of delivery; sinks saw {metrics['sink_emails']:,} "
        f"emails and {metrics['sink_sms']:,} SMS; peak RSS "
        f"{metrics['peak_rss_bytes'] / 2**20:.0f} MB"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def cpu_checks(lines: list[str], floor: dict, run: dict) -> list[tuple]:
    """The floor's CPU per message beside the run's CPU per notice (whole run), and the
    targets: against "both at once" (the run's traffic) and "email alone"."""
    checks = []
    for floor_name, part in (("both at once, the run's traffic", "both"), ("email alone", "smtp")):
        sent = floor[part]["emails"] + floor[part]["sms"]
        per_message = floor[part]["cpu_seconds"] / sent if sent else 0.0
        lines.append(
            f"stack floor CPU ({floor_name}): {floor[part]['cpu_seconds']:.2f} s for {sent:,} "
            f"messages = {1000 * per_message:.3f} ms each; the run's "
            f"{1000 * run['cpu_per_notice']:.3f} ms per notice (whole run), "
            f"{1000 * run['delivery_cpu_per_notice']:.3f} ms in delivery."
        )
        if per_message:
            ratio = run["cpu_per_notice"] / per_message
            checks.append(
                (
                    f"CPU per notice, run / the stack's floor ({floor_name})",
                    f"{ratio:.2f}x",
                    f"<= {TARGETS['cpu_vs_floor']}x",
                    ratio <= TARGETS["cpu_vs_floor"],
                )
            )
    return checks


def report(results: dict) -> str:
    runs = results["runs"]
    names = list(runs)
    lines = []
    header = "| | " + " | ".join(f"{runs[n]['label']}" for n in names) + " |"
    lines += [header, "|---" * (len(names) + 1) + "|"]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    step_names = [s["step"] for s in step_rows(runs[names[0]])]
    for step in step_names:
        values = []
        for n in names:
            s = next((x for x in step_rows(runs[n]) if x["step"] == step), None)
            values.append(f"{s['duration_seconds']:.1f} s" if s else "-")
        row(f"step `{step}`", values)
    t = {n: totals(runs[n]) for n in names}
    row("all steps (in the flow)", [f"{t[n]['steps_seconds']:.1f} s" for n in names])
    row("wall, incl. Prefect start-up", [f"{runs[n]['wall_seconds']:.1f} s" for n in names])
    row(
        "of which delivery (claim, render, send, mark)",
        [f"{t[n]['deliver_seconds']:.1f} s" for n in names],
    )
    row(
        "emails sent / seen by smtp-sink",
        [f"{t[n]['emails']:,} / {runs[n]['sink_emails']:,}" for n in names],
    )
    row(
        "SMS sent / seen by the HTTP sink",
        [f"{t[n]['sms']:,} / {runs[n]['sink_sms']:,}" for n in names],
    )
    row("emails/s (delivery time)", [f"{t[n]['email_rate']:.0f}" for n in names])
    row(
        "emails/s (inside SMTP send, run process only)",
        [f"{t[n]['email_send_rate']:.0f}" if t[n]["email_send_rate"] else "-" for n in names],
    )
    row("SMS/s (delivery time)", [f"{t[n]['sms_rate']:.0f}" for n in names])
    row(
        "CPU seconds: run process / delivery processes / Prefect API",
        [
            f"{t[n]['run_cpu_seconds']:.1f} / {t[n]['pool_cpu_seconds']:.1f} / "
            f"{t[n]['server_cpu_seconds']:.1f}"
            for n in names
        ],
    )
    row(
        "CPU per notice delivered, run + delivery processes (whole run)",
        [f"{1000 * t[n]['cpu_per_notice']:.2f} ms" for n in names],
    )
    row(
        "CPU per notice delivered, in delivery (run process's part + delivery processes)",
        [f"{1000 * t[n]['delivery_cpu_per_notice']:.2f} ms" for n in names],
    )
    row(
        "reminder instances/s (reminder step)",
        [
            f"{t[n]['reminder_instances'] / t[n]['reminder_seconds']:.0f}"
            if t[n]["reminder_seconds"]
            else "-"
            for n in names
        ],
    )
    row("mean email size", [f"{runs[n]['email_size']:,} B" for n in names])
    row("peak RSS, run process", [f"{runs[n]['peak_rss_bytes'] / 2**20:.0f} MB" for n in names])
    row(
        "peak RSS, delivery processes (together)",
        [
            f"{runs[n].get('peak_pool_rss_bytes', 0) / 2**20:.0f} MB"
            if runs[n].get("peak_pool_rss_bytes", 0) >= 0
            else "(psutil missing)"
            for n in names
        ],
    )
    row(
        "peak RSS, Prefect API process",
        [
            f"{runs[n]['peak_prefect_server_rss_bytes'] / 2**20:.0f} MB"
            if runs[n]["peak_prefect_server_rss_bytes"] >= 0
            else "(psutil missing)"
            for n in names
        ],
    )
    row("load average before the run", [runs[n].get("load_before", "?") for n in names])
    lines.append("")

    first = names[0]
    link = results.get("link")
    naive = results.get("naive")
    floor = results.get("floor")
    checks = []
    lines.append(
        f"delivery processes: {results.get('processes', 1)}, SMTP connections in all: "
        f"{results['connections']}; load average before: {results.get('load_before', '?')}"
    )
    if floor:
        smtp, sms, both = floor["smtp"], floor["sms"], floor["both"]
        run_email, run_sms = t[first]["email_rate"], t[first]["sms_rate"]
        lines.append(
            f"stack floor, email alone: aiosmtplib, {smtp['emails']:,} pre-built messages from "
            f"{smtp['processes']} process(es) over {smtp['connections']} connections in "
            f"{smtp['seconds']:.2f} s = {smtp['email_rate']:.0f}/s (sink saw "
            f"{smtp['sink_emails']:,}); the run's emails/s = {run_email / smtp['email_rate']:.2f} "
            "of it."
        )
        lines.append(
            f"stack floor, SMS alone: aiohttp, {sms['sms']:,} pre-signed SendSms from "
            f"{sms['processes']} process(es), {sms['concurrency']} in flight each, in "
            f"{sms['seconds']:.2f} s = {sms['sms_rate']:.0f}/s (sink saw {sms['sink_sms']:,}); "
            f"the run's SMS/s = {run_sms / sms['sms_rate']:.2f} of it."
        )
        lines.append(
            f"stack floor, both at once (as the run sends them): {both['seconds']:.2f} s = "
            f"{both['email_rate']:.0f} emails/s and {both['sms_rate']:.0f} SMS/s; the run's "
            f"rates = {run_email / both['email_rate']:.2f} of it."
        )
        # The run sends its SMS beside its emails, over the same processes: the floor
        # that carries the same traffic is "both at once"; "email alone" is the
        # stricter reading (a run without SMS), kept beside it.
        for floor_name, floor_rate in (
            ("email alone", smtp["email_rate"]),
            ("both at once, the run's traffic", both["email_rate"]),
        ):
            ratio = run_email / floor_rate
            checks.append(
                (
                    f"email rate / the stack's floor ({floor_name})",
                    f"{ratio:.2f}",
                    f">= {TARGETS['email_vs_floor']}",
                    ratio >= TARGETS["email_vs_floor"],
                )
            )
    if floor and "cpu_seconds" in floor["both"]:
        checks += cpu_checks(lines, floor, t[first])
    if link:
        lines.append(
            f"smtp-source: {link['messages']:,} messages of {link['size']:,} B over "
            f"{link['sessions']} connections in {link['seconds']:.2f} s = "
            f"{link['rate']:.0f}/s (sink saw {link['received']:,})."
        )
        lines.append(
            f"the run's emails/s = {t[first]['email_rate'] / link['rate']:.3f} of smtp-source; "
            + (
                f"the stack's floor = {floor['smtp']['email_rate'] / link['rate']:.3f} of it."
                if floor
                else ""
            )
        )
    if naive:
        lines.append(
            f"naive baseline: {naive['instances']} reminder instances in "
            f"{naive['seconds']:.1f} s = {naive['rate']:.2f}/s ({naive['counts']})."
        )
        ours = t[first]["reminder_instances"] / t[first]["reminder_seconds"]
        ratio = ours / naive["rate"]
        checks.append(
            (
                "reminder instances/s vs naive",
                f"{ratio:.0f}x",
                f">= {TARGETS['vs_naive']:.0f}x",
                ratio >= TARGETS["vs_naive"],
            )
        )
    if "single" in runs:
        ratio = t[first]["email_rate"] / t["single"]["email_rate"]
        checks.append(
            (
                f"emails/s, {results['processes']} processes / 1 process",
                f"{ratio:.2f}x",
                f">= {TARGETS['pool_vs_single']}x",
                ratio >= TARGETS["pool_vs_single"],
            )
        )
    if "double" in runs:
        second = "double"
        ratio = t[second]["steps_seconds"] / t[first]["steps_seconds"]
        checks.append(
            (
                f"run time {runs[second]['label']} / {runs[first]['label']} (all steps)",
                f"{ratio:.2f}",
                f"<= {TARGETS['scale_2m_1m']}",
                ratio <= TARGETS["scale_2m_1m"],
            )
        )
    if "sqlite" in runs:
        ratio = t[first]["steps_seconds"] / t["sqlite"]["steps_seconds"]
        checks.append(
            (
                f"all steps, {runs[first]['label']} / {runs['sqlite']['label']}",
                f"{ratio:.2f}",
                f"<= {TARGETS['postgresql_vs_sqlite']}",
                ratio <= TARGETS["postgresql_vs_sqlite"],
            )
        )
    pool_rss = max(0, runs[first].get("peak_pool_rss_bytes", 0))
    rss = (runs[first]["peak_rss_bytes"] + pool_rss) / 2**20
    checks.append(
        (
            f"peak RSS at {runs[first]['label']} (run + delivery processes)",
            f"{rss:.0f} MB",
            f"<= {TARGETS['rss_mb_1m']:.0f} MB",
            rss <= TARGETS["rss_mb_1m"],
        )
    )
    lines += ["", "| target | measured | wanted | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {verdict(ok)} |" for a, b, c, ok in checks]
    profile = results.get("profile")
    if profile:
        lines += [
            "",
            f"profiled run (load average before: {profile['load_before']}): {profile['run']}",
            spy.table(profile),
        ]
    for n in names:
        if t[n]["failures"]:
            lines.append(f"\n{runs[n]['label']} failures: {t[n]['failures'][:5]}")
    return "\n".join(lines)


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=1_000_000, help="fleet size (1M)")
    p.add_argument(
        "--extra",
        type=int,
        default=None,
        help="far-future instances added for the second run (default: as many)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--as-of", default="2026-11-26", help="the measured day (YYYY-MM-DD)")
    p.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="where the fleet lives; postgresql also runs the day on SQLite at N, for the ratio",
    )
    p.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432",
        help="the PostgreSQL server for --database postgresql (databases bench_*)",
    )
    p.add_argument("--naive-sample", type=int, default=300)
    p.add_argument("--connections", type=int, default=4, help="DNSL_SMTP_CONNECTIONS")
    p.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="DNSL_DELIVERY_PROCESSES (and the floor's); default: one per core",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["double", "naive", "link", "floor", "single"],
        help="leave out a part (repeatable)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="one more run at N under py-spy (not in the table): where its CPU goes",
    )
    p.add_argument("--keep", action="store_true", help="keep the working databases")
    return p.parse_args(argv)


def fleet_caches(
    fleets: Fleets, args: argparse.Namespace, extra: int, double: bool
) -> tuple[str, str | None]:
    """The cached fleet of N on ``fleets``, and with ``double`` the one of N + extra."""
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=UTC)
    seeded_for = as_of - timedelta(days=1)
    base_name = f"fleet-{args.instances}-s{args.seed}-{seeded_for:%Y%m%d}-{code_digest()}"
    base = fleets.cached(
        base_name, lambda url: build_base(url, args.instances, args.seed, seeded_for)
    )
    if not double:
        return base, None

    def build_double(url: str) -> None:
        fleets.copy(base, url)
        add_far_future(url, extra, args.seed, as_of)

    return base, fleets.cached(f"{base_name}-far{extra}", build_double)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = args.instances if args.extra is None else args.extra

    OUT.mkdir(parents=True, exist_ok=True)
    tools = ensure_smtp_tools()
    seeded_for = datetime.fromisoformat(args.as_of).replace(tzinfo=UTC) - timedelta(days=1)
    postgres = args.database == "postgresql"
    fleets: Fleets = PostgresFleets(args.pg) if postgres else SqliteFleets()
    base, double = fleet_caches(fleets, args, extra, "double" not in args.skip)
    # On PostgreSQL, the same day on SQLite at N too: the ratio between the two.
    sqlite_fleets = SqliteFleets()
    sqlite_base = fleet_caches(sqlite_fleets, args, extra, False)[0] if postgres else None

    sinks = Sinks(tools)
    results: dict = {
        "as_of": args.as_of,
        "database": args.database,
        "instances": args.instances,
        "extra": extra,
        "connections": args.connections,
        "processes": args.processes,
        "load_before": load_average(),
        "runs": {},
    }
    runs = results["runs"]
    where = " PostgreSQL" if postgres else ""
    size = f"{args.instances / 1e6:g}M"
    label = f"{size}{where}" + (f", {args.processes} processes" if args.processes > 1 else "")

    def measured(name: str, run_fleets: Fleets, cached: str, run_label: str, processes: int):
        runs[name] = daily_run(
            name, run_fleets, cached, sinks, args.as_of, args.connections, processes
        )
        runs[name]["label"] = run_label

    try:
        measured("base", fleets, base, label, args.processes)
        if "floor" not in args.skip:
            results["floor"] = stack_floor(
                runs["base"]["database_url"], sinks, seeded_for, args.processes, args.connections
            )
        if "link" not in args.skip:
            first = totals(runs["base"])
            results["link"] = link_rate(
                tools,
                sinks,
                max(first["emails"], 1),
                runs["base"]["email_size"] or 5000,
                args.connections,
            )
            log(f"smtp-source: {results['link']['rate']:.0f} messages/s")
        if double is not None:
            label2 = f"{(args.instances + extra) / 1e6:g}M{where}"
            measured("double", fleets, double, label2, args.processes)
        if args.processes > 1 and "single" not in args.skip:
            # The same day delivered from the run's own process, for the pool's gain.
            measured("single", fleets, base, f"{size}{where}, 1 process", 1)
        if sqlite_base is not None:
            measured("sqlite", sqlite_fleets, sqlite_base, f"{size} SQLite", args.processes)
        if args.profile:
            results["profile"] = profiled_run(fleets, base, sinks, args)
        if "naive" not in args.skip:
            results["naive"] = naive_run(fleets, base, sinks, args.as_of, args.naive_sample)
    finally:
        sinks.stop()
        if not args.keep:
            for name in ("base", "double", "single", "profile", "naive"):
                fleets.drop(name)
            sqlite_fleets.drop("sqlite")

    table = report(results)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (OUT / "results.md").write_text(table + "\n")
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
