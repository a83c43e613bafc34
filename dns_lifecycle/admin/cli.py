"""The ``dns-lifecycle`` command: the one place that prints, reads the environment
and the wall clock, and turns the project's errors into a message and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import suppress

from pydantic import ValidationError
from pydantic_settings import SettingsError

from dns_lifecycle.admin.cli_support import (
    MAX_LIMIT,
    MAX_ROW_ID,
    MAX_WHOLE,
    _a_path,
    _amount,
    _an_id,
    _Parser,
    _periods,
    _positive_int,
    _request_key,
    _whole_number,
)
from dns_lifecycle.admin.data_cli import (
    cmd_clusters_load_zones,
    cmd_db_upgrade,
    cmd_export,
    cmd_import,
    cmd_preview,
    cmd_seed,
)
from dns_lifecycle.admin.instances_cli import add_list_command, cmd_instances_show
from dns_lifecycle.admin.requests_cli import (
    cmd_auto_renew,
    cmd_orders_list,
    cmd_renew,
    cmd_top_up,
    cmd_upgrade,
)
from dns_lifecycle.admin.runs_cli import cmd_run, cmd_verify_delegations
from dns_lifecycle.admin.settings_cli import add_settings_commands
from dns_lifecycle.admin.tickets_cli import cmd_tickets_list, cmd_tickets_resolve, cmd_tickets_retry
from dns_lifecycle.core.errors import LifecycleError
from dns_lifecycle.core.settings import REPO_ROOT, Settings


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
