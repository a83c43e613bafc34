"""The run commands of ``dns-lifecycle``: ``run`` (the daily lifecycle through Prefect)
and ``verify-delegations``, and the summary they print."""

from __future__ import annotations

import sys
from typing import Any

from dns_lifecycle.admin.cli_support import (
    _check_channels,
    _json,
)
from dns_lifecycle.core.errors import LifecycleError
from dns_lifecycle.core.settings import Settings


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
