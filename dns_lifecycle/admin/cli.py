"""The ``dns-lifecycle`` command: the one place that prints, reads the environment
and the wall clock, and turns the project's errors into a message and an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError

from dns_lifecycle.admin.settings_cli import add_settings_commands
from dns_lifecycle.core.errors import InputError, LifecycleError, shortened
from dns_lifecycle.core.settings import REPO_ROOT, Settings
from dns_lifecycle.lifecycle.renewal import MAX_PERIODS


def _prefect_defaults() -> None:
    """Sensible defaults for a local Prefect, set before Prefect is imported."""
    if "PREFECT_HOME" not in os.environ:
        home = REPO_ROOT / "var" / "prefect"
        # Prefect makes its home without its parents: with the database elsewhere
        # (DNSL_DATABASE_URL), nothing else makes var/, and the temporary API would fail
        # to start, slowly and with tracebacks.
        with suppress(OSError):  # a read-only checkout: Prefect then says so itself
            home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The temporary API of a plain `dns-lifecycle run` needs a moment to start.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


class Progress:
    """A one-line progress counter on a terminal; silent when output is redirected."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            pct = 100 * done / total if total else 100
            self.stream.write(f"\r{self.label}: {done:,}/{total:,} ({pct:5.1f}%)")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


@contextmanager
def _session(settings: Settings) -> Iterator[Any]:
    """A session on the configured database, for one command."""
    from dns_lifecycle.core.db import Database

    db = Database(settings)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


@contextmanager
def _output_file(path: str) -> Iterator[Any]:
    """``path`` opened for writing, or an InputError that says why it cannot be written.

    A file is written beside itself under a temporary name and renamed into place once
    complete: a failed export leaves no partial file, and an earlier one stays as it was.
    What is not a file (a device, a pipe, /dev/stdout) is written in place."""
    target = Path(path)
    try:
        if target.exists() and not target.is_file():
            with open(target, "w", encoding="utf-8") as out:
                yield out
            return
        yield from _replacing(target.resolve())
    except BrokenPipeError:
        raise  # a reader that went away (--output /dev/stdout | head): main ends quietly
    except OSError as exc:
        raise InputError(
            f"cannot write {path}: {exc.strerror or exc}; give a file in an existing, "
            "writable folder with room for it"
        ) from None


def _replacing(target: Path) -> Iterator[Any]:
    """A temporary file beside ``target``, renamed onto it once the caller is done."""
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            # The permissions the file would have had if opened in place: its own when
            # it exists, else those of a new file (mkstemp's are owner-only).
            if target.exists():
                mode = target.stat().st_mode & 0o777
            else:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- commands


def cmd_db_upgrade(args, settings: Settings) -> int:
    from dns_lifecycle.core.db import safe_url, upgrade

    upgrade(settings, args.revision)
    print(f"database at revision {args.revision}: {safe_url(settings.database_url)}")
    return 0


def cmd_import(args, settings: Settings) -> int:
    from dns_lifecycle.admin.inventory import import_inventory, read_inventory_file
    from flows.common import wall_clock

    doc = read_inventory_file(Path(args.file))
    with _session(settings) as session:
        counts = import_inventory(
            doc, session, now=wall_clock(), grace_days=settings.grace_days, source=args.file
        )
        session.commit()
    removed = counts.pop("domains_removed", 0)  # re-imported instances that dropped domains
    print(
        "imported "
        + _counts(counts)
        + (f"; {counted(removed, 'domain')} removed" if removed else "")
    )
    return 0


def cmd_export(args, settings: Settings) -> int:
    from dns_lifecycle.admin.inventory import write_state
    from dns_lifecycle.store.queries import table_counts

    with _session(settings) as session:
        if args.output is not None:
            with _output_file(args.output) as out:
                counts = write_state(session, out)
            print(f"wrote {args.output}: " + _counts(counts), file=sys.stderr)
        elif args.json:
            write_state(session, sys.stdout)
            sys.stdout.write("\n")
        else:
            print(_counts(table_counts(session)))
            print("(--json prints the whole state; --output FILE writes it to a file)")
    return 0


def _counts(counts: dict[str, int]) -> str:
    """'1 edition, 3 clusters, 2,000 instances'."""
    return ", ".join(counted(n, noun) for noun, n in counts.items())


# What the commands count, singular and plural; sections and tables are named either way.
_PLURALS = {
    noun: noun + "s"
    for noun in (
        "edition",
        "cluster",
        "account",
        "instance",
        "domain",
        "record",
        "order",
        "notification",
        "notice",
        "ticket",
        "top_up",
    )
}
_SINGULARS = {plural: singular for singular, plural in _PLURALS.items()}


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun`` (given singular or plural) agreeing: '1 edition', '3 editions',
    '2,000 instances', '0 tickets'."""
    singular = _SINGULARS.get(noun, noun)
    word = singular if n == 1 else _PLURALS.get(singular, singular + "s")
    return f"{n:,} {word.replace('_', '-')}"


def cmd_seed(args, settings: Settings) -> int:
    from dns_lifecycle.admin.seed import seed_fleet
    from dns_lifecycle.core.db import Database
    from flows.common import resolve_as_of, wall_clock

    as_of = resolve_as_of(args.as_of, wall_clock)
    db = Database(settings)
    progress = Progress("seeding instances")
    try:
        counts = seed_fleet(db, args.instances, seed=args.seed, as_of=as_of, progress=progress)
    finally:
        progress.close()
        db.dispose()
    print("seeded " + _counts(counts))
    return 0


def cmd_run(args, settings: Settings) -> int:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from dns_lifecycle.admin.prefect_api import temporary_api
    from flows.base import report_of
    from flows.common import run_as_of, wall_clock
    from flows.daily import DailyReport, daily_lifecycle

    # A bad or future date, or a channel that cannot send, fails before Prefect starts.
    as_of = run_as_of(args.as_of, args.dry_run, wall_clock)
    if not args.dry_run:
        _check_channels(settings)
    # This process waits for the run itself: heartbeats (which let a server notice a
    # crashed worker) would only add a second to each step.
    # The temporary API ends with this process, SIGKILL included (see prefect_api).
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), temporary_api():
        state = daily_lifecycle(as_of=as_of, dry_run=args.dry_run, return_state=True)
    report = report_of(state)
    if not isinstance(report, DailyReport):  # refused before any step ran
        raise LifecycleError(state.message or "the daily run failed before its first step")
    summary = report.model_dump(mode="json")
    summary["outbox"] = str(settings.outbox_dir)
    if args.json:
        print(_json(summary))
    else:
        print(render_summary(summary, settings))
    if state.is_completed():
        return 0
    # What was done is above (on stdout); what failed goes to stderr, one line each.
    print("dns-lifecycle: the run ended Failed:", file=sys.stderr)
    for failure in report.failures:
        print(f"  {failure}", file=sys.stderr)
    return 1


def cmd_verify_delegations(args, settings: Settings) -> int:
    from flows.common import open_run, run_as_of, wall_clock
    from flows.verify import verify_now

    as_of = run_as_of(args.as_of, args.dry_run, wall_clock)
    if not args.dry_run:
        _check_channels(settings)
    with open_run(as_of, args.dry_run, None, settings=settings) as ctx:
        report = verify_now(ctx)
    step = report.model_dump(mode="json")
    summary = {
        "flow": "verify-delegations",
        "as_of": step["as_of"],
        "dry_run": args.dry_run,
        "steps": [step],
    }
    if args.json:
        print(_json(summary))
    else:
        print(render_summary(summary, settings))
    for failure in report.failures:
        print(f"dns-lifecycle: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


def render_summary(summary: dict[str, Any], settings: Settings) -> str:
    kind = "dry run (nothing changed, nothing sent)" if summary["dry_run"] else "run"
    lines = [f"{summary.get('flow', 'daily-lifecycle')} {kind} as of {summary['as_of']}"]
    failed = {f.split(":", 1)[0] for f in summary.get("failed_steps", [])}
    for step in summary["steps"]:
        lines.append(f"  {step['step']} ({step['duration_seconds']:.2f} s)")
        for name, n in sorted(step["counts"].items()):
            lines.append(f"    {name:<32} {n:>10,}")
        if step["step"] in failed:
            lines.append("    failed: see below")
        elif not step["counts"]:
            lines.append("    nothing to do")
        lines.extend(f"    note: {note}" for note in step.get("notes", []))
    outboxes = []
    if settings.email_backend == "file":
        outboxes.append(f"emails in {settings.outbox_dir / 'email'}")
    if settings.sms_backend == "file":
        outboxes.append(f"SMS in {settings.outbox_dir / 'sms.jsonl'}")
    if outboxes:
        lines.append("outbox: " + "; ".join(outboxes))
    return "\n".join(lines)


def _on_demand(settings: Settings, as_of: datetime | None = None, *, tells: bool = True):
    """The run of one on-demand change; ``tells``: the change sends a notice, so the
    channels are checked first."""
    from flows.common import open_run

    if tells:
        _check_channels(settings)
    return open_run(as_of, False, None, settings=settings)


def _check_channels(settings: Settings) -> None:
    """Build the email and SMS backends once, so that unusable settings (an outbox
    folder that cannot be written, a missing key) are refused in one line before
    anything changes, not once per message after."""
    from dns_lifecycle.channels.email import email_backend
    from dns_lifecycle.channels.sms import sms_backend

    email_backend(settings)
    sms_backend(settings)


def _print_change(report, as_json: bool) -> None:
    if as_json:
        print(_json(report.model_dump(mode="json")))
        return
    for row in report.plan:
        repeated = (
            " by an earlier request with this request key: nothing was charged now"
            if row.get("repeated")
            else ""
        )
        print(
            f"order {row['order']}: {row['kind']} of {row['instance']} "
            f"{row['period_start']} -> {row['period_end']}, ¥{row['amount']}, {row['state']}"
            + repeated
        )
    for name, n in sorted(report.counts.items()):
        print(f"  {name}: {n}")
    for failure in report.failures:
        print(f"  ! {failure}")


def cmd_renew(args, settings: Settings) -> int:
    import uuid

    from flows.on_demand import renew_now

    with _on_demand(settings) as ctx:
        report = renew_now(ctx, args.instance, args.periods, args.request_key or uuid.uuid4().hex)
    _print_change(report, args.json)
    return 0


def cmd_upgrade(args, settings: Settings) -> int:
    import uuid

    from flows.common import change_as_of, wall_clock
    from flows.on_demand import upgrade_now

    with _on_demand(settings, change_as_of(args.as_of, "an upgrade", wall_clock)) as ctx:
        report = upgrade_now(ctx, args.instance, args.edition, args.request_key or uuid.uuid4().hex)
    _print_change(report, args.json)
    return 0


def cmd_auto_renew(args, settings: Settings) -> int:
    import uuid

    from flows.on_demand import switch_auto_renew_now

    with _on_demand(settings) as ctx:
        report = switch_auto_renew_now(ctx, args.instance, args.on, uuid.uuid4().hex)
    state = "on" if args.on else "off"
    if report.counts.get("switched"):
        print(f"auto-renewal of {args.instance} is now {state}; {_notice_outcome(report.counts)}")
    else:
        print(f"auto-renewal of {args.instance} was already {state}: nothing changed")
    for failure in report.failures:
        print(f"  ! {failure}")
    return 0


def _notice_outcome(counts: dict[str, int]) -> str:
    """What became of the notice a change queued, per channel: sent, queued (not sent
    yet: the next run sends it) or failed (refused: not retried)."""
    said = []
    for channel, name in (("email", "email"), ("sms", "SMS")):
        if counts.get(f"{channel}_sent"):
            said.append(f"{name} sent")
        elif counts.get(f"{channel}_permanent"):
            said.append(f"{name} failed (refused, not retried)")
        else:
            said.append(f"{name} queued (not sent yet; the next run sends it)")
    return "the account's notice: " + ", ".join(said)


def cmd_top_up(args, settings: Settings) -> int:
    from flows.on_demand import top_up_now

    with _on_demand(settings, tells=False) as ctx:  # a top-up sends no notice
        report = top_up_now(ctx, args.account, args.amount, args.request_key)
    [row] = report.plan
    if args.json:
        print(_json(row))
        return 0
    what = f"top-up {row['id']}: ¥{Decimal(row['amount']):,} to account {row['account']}"
    balance = f"balance ¥{Decimal(row['balance']):,}"
    if row["repeated"]:
        print(
            f"{what}, added {row['created_at']} by an earlier request with this request key: "
            f"nothing was added now; {balance}"
        )
    else:
        print(f"{what}; {balance}")
    return 0


def cmd_orders_list(args, settings: Settings) -> int:
    from dns_lifecycle.store.queries import list_orders

    with _session(settings) as session:
        orders, total = list_orders(
            session, instance_id=args.instance, state=args.state, limit=args.limit
        )
    if args.json:
        from dns_lifecycle.admin.inventory import order_row

        print(_json([order_row(o) for o in orders]))
    else:
        print(f"{'id':>6}  {'instance':<16} {'kind':<15} {'period_end':<26} {'amount':>10}  state")
        for o in orders:
            print(
                f"{o.id:>6}  {o.instance_id:<16} {o.kind:<15} {o.period_end.isoformat():<26} "
                f"{o.amount:>10}  {o.state}{'  (' + o.reason + ')' if o.reason else ''}"
            )
    if total > len(orders):
        # On stderr, so that the listing (and its JSON) stays what a script reads.
        more = (
            f"`--limit {total}` shows them all"
            if total <= MAX_LIMIT
            else "--instance or --state narrows them down"
        )
        print(
            f"(the newest {len(orders):,} of {counted(total, 'order')}: "
            f"{total - len(orders):,} older not shown; {more})",
            file=sys.stderr,
        )
    return 0


def cmd_tickets_list(args, settings: Settings) -> int:
    from dns_lifecycle.store.queries import list_tickets

    with _session(settings) as session:
        rows = list_tickets(session, state=args.state)
    if args.json:
        print(_json([_ticket_row(t, name) for t, name in rows]))
        return 0
    print(
        f"{'id':>6}  {'domain':<32} {'instance':<16} {'reason':<19} {'state':<9} set name servers"
    )
    for t, name in rows:
        servers = ", ".join(t.details.get("set_nameservers", []))
        print(f"{t.id:>6}  {name:<32} {t.instance_id:<16} {t.reason:<19} {t.state:<9} {servers}")
    return 0


def _ticket_row(ticket, domain_name: str) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "domain": domain_name,
        "instance": ticket.instance_id,
        "reason": ticket.reason,
        "state": ticket.state,
        "details": ticket.details,
        "created_at": ticket.created_at.isoformat(),
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
    }


def cmd_tickets_resolve(args, settings: Settings) -> int:
    from flows.verify import resolve_ticket_now

    with _on_demand(settings) as ctx:
        report = resolve_ticket_now(ctx, args.id)
    told = report.counts.get("email_sent", 0) + report.counts.get("sms_sent", 0)
    print(f"ticket {args.id} resolved" + ("; the account was told" if told else ""))
    for failure in report.failures:
        print(f"  ! {failure}")
    return 0


def cmd_tickets_retry(args, settings: Settings) -> int:
    from dns_lifecycle.store.tickets import retry_ticket
    from flows.common import wall_clock

    with _session(settings) as session:
        ticket = retry_ticket(session, args.id, wall_clock())
        session.commit()
    print(
        f"ticket {ticket.id}: the next release run retries and opens a ticket again if "
        "the problem is still there"
    )
    return 0


def cmd_instances_show(args, settings: Settings) -> int:
    from dns_lifecycle.admin.instance_report import build_report

    with _session(settings) as session:
        report = build_report(session, args.id)
    print(report.text())
    return 0


def cmd_clusters_load_zones(args, settings: Settings) -> int:
    from dns_lifecycle.admin.load_zones import load_zones
    from dns_lifecycle.core.db import Database

    db = Database(settings)
    try:
        loaded = load_zones(settings, db, args.cluster)
    finally:
        db.dispose()
    print(
        f"cluster {args.cluster}: {loaded.created} zone(s) created with {loaded.records} "
        f"record(s); {loaded.present} already there, left as they are"
    )
    return 0


def cmd_preview(args, settings: Settings) -> int:
    from dns_lifecycle.admin.preview import write_gallery
    from dns_lifecycle.channels.render import Renderer

    index = write_gallery(Renderer.for_settings(settings), Path(args.dir))
    print(f"open {index}")
    if settings.console_url is None:
        print(
            "DNSL_CONSOLE_URL is not set: the notices carry no console link "
            "(set it to see the buttons and links)",
            file=sys.stderr,
        )
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dns-lifecycle",
        description="Subscription lifecycle of paid DNS-hosting instances.",
    )
    parser.set_defaults(needs_database=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="migrate the schema to the newest revision")
    up.add_argument("--revision", default="head")
    up.set_defaults(handler=cmd_db_upgrade, needs_database=False)

    p = add("import", cmd_import, "import an inventory file (all or nothing)")
    p.add_argument("file", type=_a_path("file", "inventory.json"), metavar="FILE.json")

    p = add("export", cmd_export, "export the whole state as JSON")
    p.add_argument("--json", action="store_true", help="print the JSON document")
    p.add_argument(
        "--output",
        type=_a_path("file", "state.json"),
        metavar="FILE",
        help="write the JSON document to FILE",
    )

    p = add("seed", cmd_seed, "create a deterministic synthetic fleet in an empty database")
    p.add_argument("--instances", type=_positive_int, required=True, metavar="N")
    p.add_argument("--seed", type=_whole_number(0, MAX_WHOLE), default=0, metavar="S")
    p.add_argument("--as-of", metavar="DATE", help="centre the fleet's expiries on DATE")

    p = add("run", cmd_run, "run the daily lifecycle once, through Prefect")
    p.add_argument("--as-of", metavar="DATE", help="YYYY-MM-DD (00:00 UTC) or ISO datetime")
    p.add_argument("--dry-run", action="store_true", help="plan only: change and send nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add(
        "verify-delegations",
        cmd_verify_delegations,
        "only the daily run's verify-delegations step: close the tickets of domains that "
        "DNS shows delegated to the free cluster, and tell their accounts",
    )
    p.add_argument("--as-of", metavar="DATE", help="YYYY-MM-DD (00:00 UTC) or ISO datetime")
    p.add_argument("--dry-run", action="store_true", help="plan only: change and send nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add("renew", cmd_renew, "renew an instance by N periods, paid from the balance")
    p.add_argument("instance", metavar="INSTANCE")
    p.add_argument(
        "--periods",
        type=_periods,
        default=1,
        metavar="N",
        help="1-36 for a monthly subscription, 1-10 for a yearly one (default 1)",
    )
    p.add_argument(
        "--request-key",
        type=_request_key,
        help="repeat a request safely: the same key renews once (up to 64 characters)",
    )
    p.add_argument("--json", action="store_true")

    p = add(
        "upgrade",
        cmd_upgrade,
        "move an instance to a higher edition now, paying the difference until its expiry",
    )
    p.add_argument("instance", metavar="INSTANCE")
    p.add_argument("--edition", required=True, metavar="E")
    p.add_argument(
        "--as-of",
        metavar="DATE",
        help="leave it out: an upgrade takes effect now (DATE must be within 5 minutes of "
        "the clock)",
    )
    p.add_argument(
        "--request-key",
        type=_request_key,
        help="repeat a request safely: the same key upgrades once (up to 64 characters)",
    )
    p.add_argument("--json", action="store_true")

    p = add(
        "top-up",
        cmd_top_up,
        "add money to an account's balance, once per request key",
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument(
        "--amount",
        type=_amount,
        required=True,
        metavar="X",
        help="the amount to add, e.g. 50.00 (at most 2 decimal places)",
    )
    p.add_argument(
        "--request-key",
        type=_request_key,
        required=True,
        help="the same key adds the money once: a repeated request adds nothing and says "
        "so (up to 64 characters)",
    )
    p.add_argument("--json", action="store_true")

    p = add("auto-renew", cmd_auto_renew, "switch auto-renewal of an instance on or off")
    p.add_argument("instance", metavar="INSTANCE")
    onoff = p.add_mutually_exclusive_group(required=True)
    onoff.add_argument("--on", dest="on", action="store_true")
    onoff.add_argument("--off", dest="on", action="store_false")

    orders = sub.add_parser("orders", help="renewal and upgrade orders")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True, metavar="ACTION")
    p = orders_sub.add_parser("list", help="list orders, newest first")
    p.set_defaults(handler=cmd_orders_list)
    p.add_argument("--instance", type=_an_id, metavar="ID", help="only this instance's")
    p.add_argument("--state", choices=["pending", "paid", "failed"])
    p.add_argument(
        "--limit",
        type=_whole_number(1, MAX_LIMIT),
        default=1000,
        metavar="N",
        help="the newest N (default 1000; stderr says how many more there are)",
    )
    p.add_argument("--json", action="store_true")

    tickets = sub.add_parser("tickets", help="manual-action tickets")
    tickets_sub = tickets.add_subparsers(dest="tickets_command", required=True, metavar="ACTION")
    p = tickets_sub.add_parser("list", help="list tickets")
    p.set_defaults(handler=cmd_tickets_list)
    p.add_argument("--state", choices=["open", "resolved"])
    p.add_argument("--json", action="store_true")
    p = tickets_sub.add_parser("resolve", help="close a ticket once its action is done")
    p.set_defaults(handler=cmd_tickets_resolve)
    p.add_argument("id", type=_whole_number(1, MAX_ROW_ID), metavar="ID")
    p = tickets_sub.add_parser(
        "retry",
        help="after a resolved release ticket: open it again if the next run fails the same way",
    )
    p.set_defaults(handler=cmd_tickets_retry)
    p.add_argument("id", type=_whole_number(1, MAX_ROW_ID), metavar="ID")

    instances = sub.add_parser("instances", help="list instances, or look at one")
    instances_sub = instances.add_subparsers(
        dest="instances_command", required=True, metavar="ACTION"
    )
    from dns_lifecycle.admin.instances_cli import add_list_command

    add_list_command(instances_sub)
    p = instances_sub.add_parser("show", help="state, domains, orders, tickets, zone copies")
    p.set_defaults(handler=cmd_instances_show)
    p.add_argument("id", metavar="ID")

    clusters = sub.add_parser("clusters", help="live DNS clusters")
    clusters_sub = clusters.add_subparsers(dest="clusters_command", required=True, metavar="ACTION")
    p = clusters_sub.add_parser(
        "load-zones",
        help="create the inventory's zones of a cluster on its PowerDNS server "
        "(zones already there are left alone)",
    )
    p.set_defaults(handler=cmd_clusters_load_zones)
    p.add_argument("cluster", metavar="CLUSTER")

    p = add("preview-emails", cmd_preview, "render every notice into an HTML gallery")
    p.set_defaults(needs_database=False)
    p.add_argument("dir", type=_a_path("folder", "preview"), metavar="DIR")

    add_settings_commands(sub)
    return parser


# The largest id a row can have (the id columns are SQL INTEGER: 32 bits on PostgreSQL),
# the largest count or seed (64 bits), and the most rows a listing prints.
MAX_ROW_ID = 2**31 - 1
MAX_WHOLE = 2**63 - 1
MAX_LIMIT = 1_000_000


def _whole_number(low: int, high: int, bounds: str | None = None) -> Callable[[str], int]:
    """An argument type: a whole number from ``low`` to ``high``, written in the digits
    0-9 only. int() would also take '1_0', ' 10' or '+10', and a slip of a finger would
    then buy ten times as much. ``bounds`` says the range when the number means more
    than its value (periods of a monthly or a yearly subscription)."""

    def parse(text: str) -> int:
        shown = shortened(text)
        if not (text.isascii() and text.isdigit()):
            raise argparse.ArgumentTypeError(
                f"{shown!r} is not a whole number: write it in the digits 0-9 only, e.g. {low}"
            )
        # Compared as text first: int() refuses numbers of more than 4,300 digits.
        value = int(text) if len(text.lstrip("0")) <= len(str(high)) else high + 1
        if value < low:
            raise argparse.ArgumentTypeError(
                f"{shown} is too small: {bounds or f'give at least {low}'}"
            )
        if value > high:
            raise argparse.ArgumentTypeError(
                f"{shown} is too large: {bounds or f'give at most {high:,}'}"
            )
        return value

    return parse


_positive_int = _whole_number(1, MAX_WHOLE)
# The periods of a manual renewal: the cycle's own limit is checked once the instance is
# read; the parser already refuses what no cycle allows, saying both limits.
_periods = _whole_number(
    1,
    max(MAX_PERIODS.values()),
    f"give 1-{MAX_PERIODS['monthly']} months for a monthly subscription, "
    f"1-{MAX_PERIODS['yearly']} years for a yearly one",
)


def _an_id(text: str) -> str:
    """An argument type: an id that is not empty (an empty one would select everything)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty id names nothing: give one, e.g. inst-0000001, or leave the option out"
        )
    return text


def _a_path(what: str, example: str) -> Callable[[str], str]:
    """An argument type: a path that is not empty. An empty one would be taken for the
    current folder, or for the option left out."""

    def parse(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(
                f"an empty path names no {what}: give one, e.g. {example}"
            )
        return text

    return parse


def _amount(text: str) -> Decimal:
    """An argument type: an amount of money written in the digits 0-9, with at most 2
    decimal places. Whether it may be added is the rule's to say (a positive amount
    that the balance can hold)."""
    from models.types import MONEY_MAX

    shown = shortened(text)
    whole, point, cents = text.partition(".")
    if not (
        whole.isascii()
        and whole.isdigit()
        and (not point or (cents.isascii() and cents.isdigit() and len(cents) <= 2))
    ):
        raise argparse.ArgumentTypeError(
            f"{shown!r} is not an amount: write it in the digits 0-9 with at most 2 decimal "
            "places and no sign, e.g. 50.00"
        )
    if len(whole.lstrip("0")) > len(str(int(MONEY_MAX))):
        raise argparse.ArgumentTypeError(
            f"{shown} is too large: a balance holds at most {MONEY_MAX:,}"
        )
    return Decimal(text).quantize(Decimal("0.01"))


def _request_key(text: str) -> str:
    """An argument type: a request key as the Prefect flows take it (the same type)."""
    from pydantic import TypeAdapter

    from flows.params import RequestKeyText

    if not text:
        raise argparse.ArgumentTypeError(
            "an empty request key would not make a repeat safe: give a key, e.g. a UUID"
        )
    try:
        return TypeAdapter(RequestKeyText).validate_python(text)
    except ValidationError:
        shown = shortened(text)
        if len(text) > 64:
            problem = f"{len(text)} characters, more than 64"
        else:
            problem = "a space or a character other than printable ASCII"
        raise argparse.ArgumentTypeError(
            f"request key {shown!r} has {problem}: give a key of up to 64 letters, digits "
            "and punctuation, e.g. a UUID"
        ) from None


class _Parser(argparse.ArgumentParser):
    """Refuses bad arguments in one line, as every other refusal of the command does,
    and takes options only as written in full: with abbreviations, `renew --period 1`
    would be read as `--periods 1`, and a future option could change what an old
    abbreviation means. Subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    _prefect_defaults()
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        print(f"dns-lifecycle: error: {_setting_problem(exc)}", file=sys.stderr)
        return 2
    try:
        if args.needs_database:
            from dns_lifecycle.core.db import check_ready

            check_ready(settings)
        return args.handler(args, settings)
    except LifecycleError as exc:
        print(f"dns-lifecycle: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`dns-lifecycle export --json | head`): stop quietly, as
        # other Unix tools do, and keep Python from complaining while it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("dns-lifecycle: interrupted", file=sys.stderr)
        return 130


def _setting_problem(exc: ValidationError | SettingsError) -> str:
    """One line naming the variable that is wrong and what it should look like."""
    if isinstance(exc, SettingsError):
        # pydantic-settings says: error parsing value for field "x" from source "..."
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        return (
            f"bad setting {_variable(field)}: its value is not valid JSON (lists and maps "
            "are written as JSON, e.g. '[30, 7, 3, 1]'; see the README's settings table)"
        )
    problems = "; ".join(
        f"{_variable(str(e['loc'][0])) if e['loc'] else 'settings'}: {e['msg']}"
        for e in exc.errors()
    )
    return f"bad setting {problems} (see the README's settings table)"


def _variable(field: str) -> str:
    return "DATABASE_URL" if field == "database_url" else f"DNSL_{field.upper()}"


if __name__ == "__main__":
    sys.exit(main())
