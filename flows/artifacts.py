"""What a run publishes in the Prefect UI: a summary, the actions, and failure.

Artifacts are keyed by step, so the Artifacts page shows each step's history; the
tables are capped (the full record is in `dns-lifecycle export`).
"""

from __future__ import annotations

from typing import cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext, TaskRunContext

from dns_lifecycle.core.errors import TooManyFailures
from dns_lifecycle.lifecycle.outlook import OutlookDay
from dns_lifecycle.store.scan import count_rows
from flows.common import PLAN_CAP, StepReport


def summary_markdown(report: StepReport) -> str:
    mode = "dry run: the plan (nothing changed, nothing sent)" if report.dry_run else "run"
    lines = [
        f"# {report.step}",
        "",
        f"**{mode}** as of `{report.as_of.isoformat()}`, took {report.duration_seconds:.2f} s",
        "",
        "| action | count |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {n:,} |" for name, n in sorted(report.counts.items())]
    if not report.counts:
        lines.append("| nothing to do | 0 |")
    if report.failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {failure}" for failure in report.failures]
    if report.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in report.notes]
    if report.plan_total > len(report.plan):
        lines += [
            "",
            f"The actions table shows {len(report.plan)} of {report.plan_total:,} rows; "
            "`dns-lifecycle export` lists them all.",
        ]
    return "\n".join(lines)


def daily_markdown(
    as_of, dry_run: bool, steps: list[StepReport], failed: list[str], shard: str | None = None
) -> str:
    mode = "dry run: the plan (nothing changed, nothing sent)" if dry_run else "run"
    lines = [
        "# daily-lifecycle" + (f", shard {shard}" if shard else ""),
        "",
        f"**{mode}** as of `{as_of.isoformat()}`",
        "",
        "| step | action | count |",
        "| --- | --- | ---: |",
    ]
    failed_steps = {f.split(":", 1)[0] for f in failed}
    for step in steps:
        for name, n in sorted(step.counts.items()):
            lines.append(f"| {step.step} | {name} | {n:,} |")
        if step.step in failed_steps:
            lines.append(f"| {step.step} | failed (see Failures) | 0 |")
        elif not step.counts:
            lines.append(f"| {step.step} | nothing to do | 0 |")
    failures = failed + [f"{s.step}: {f}" for s in steps for f in s.failures]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in failures]
    notes = [f"{s.step}: {n}" for s in steps for n in s.notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


# The widest bar of the outlook's text chart, in blocks.
OUTLOOK_BAR = 12


def outlook_markdown(
    as_of, zone: str, days: list[OutlookDay], open_tickets: int, dry_run: bool
) -> str:
    """The fleet outlook: a chart the Prefect UI draws (mermaid), and a table with a
    text bar per day that reads the same in any markdown."""
    first, last = days[0].day, days[-1].day
    mode = " (dry run)" if dry_run else ""
    labels = ", ".join(f'"{d.day.day}"' for d in days)  # the month is in the title
    top = max((d.busy for d in days), default=0)
    lines = [
        "# fleet-outlook",
        "",
        f"The {len(days)} days {first.isoformat()} to {last.isoformat()} on the {zone} "
        f"calendar, as of `{as_of.isoformat()}`{mode}. "
        f"{open_tickets:,} manual-action ticket{'' if open_tickets == 1 else 's'} open now.",
        "",
        "```mermaid",
        "xychart-beta",
        f'    title "Expiries (bars) and releases due (line), {first:%d %b} to {last:%d %b}"',
        f"    x-axis [{labels}]",
        '    y-axis "instances"',
        f"    bar [{', '.join(str(d.expiries) for d in days)}]",
        f"    line [{', '.join(str(d.releases_due) for d in days)}]",
        "```",
        "",
        "| day | load | expiries | auto-renewals | short | grace ends | releases | tickets |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d in days:
        width = round(OUTLOOK_BAR * d.busy / top) if top else 0
        bar = "█" * max(width, 1 if d.busy else 0)
        lines.append(
            f"| {d.day.isoformat()} {d.day:%a} | {bar} | {d.expiries:,} "
            f"| {d.auto_renewals:,} | {d.accounts_short:,} | {d.grace_ending:,} "
            f"| {d.releases_due:,} | {d.tickets_to_open:,} |"
        )
    lines += [
        "",
        "- **load**: expiries, auto-renewal orders and grace periods ending that day;",
        "- **auto-renewals**: orders falling due; **short**: of their accounts, those whose "
        "balance now does not cover their renewals up to that day;",
        "- **grace ends**: instances released that day unless renewed; **releases**: those "
        "that nothing renews by itself (auto-renewal off, or already expired);",
        "- **tickets**: manual-action tickets those releases will open (another registrar, "
        "or a locked domain).",
    ]
    return "\n".join(lines)


def publish(report: StepReport) -> None:
    create_markdown_artifact(
        summary_markdown(report),
        key=f"{report.step}-summary",
        description=f"{report.step}: counts per action, failures and duration",
    )
    if report.plan:
        create_table_artifact(
            report.plan[:PLAN_CAP],
            key=f"{report.step}-{'plan' if report.dry_run else 'actions'}",
            description=f"{report.step}: what {'would be' if report.dry_run else 'was'} done",
        )


def delivery_failure_share(report: StepReport) -> tuple[int, int]:
    """(failed, attempted) deliveries of a report."""
    attempted = failed = 0
    for name, n in report.counts.items():
        for outcome in ("_sent", "_transient", "_permanent"):
            if name.endswith(outcome) and name.split("_")[0] in ("email", "sms", "tickets"):
                attempted += n
                if outcome != "_sent":
                    failed += n
    return failed, attempted


def check_failures(report: StepReport, threshold: float) -> None:
    """Fail the run when deliveries failed beyond ``threshold`` (a share, 0-1), a
    release failed, or a paid copy was kept because the copies differ; the message
    names only what did fail, and what happens to it."""
    failed, attempted = delivery_failure_share(report)
    release_failures = report.counts.get("release_failures", 0)
    what, after = [], []
    if attempted and failed / attempted > threshold:
        what.append(f"{failed} of {attempted} deliveries failed (threshold {threshold:.0%})")
        after.append(
            "transient delivery failures stay pending and are retried by the next run; "
            "permanent ones (an address or content the other side refuses) wait for a person"
        )
    if release_failures:
        what.append(f"{release_failures} release{'s' if release_failures != 1 else ''} failed")
        after.append("a failed release is taken up by the next run at its recorded stage")
    kept = report.counts.get("paid_copies_kept", 0)
    if kept:
        what.append(
            f"{kept} paid cop{'ies' if kept != 1 else 'y'} kept at the end of the drain, the "
            "free copy or the paid one having changed"
        )
        after.append(
            "each kept paid copy has a copies_differ ticket naming the difference; once it is "
            "resolved the next run checks the copies again"
        )
    if what:
        shown = "; ".join(report.failures[:5])
        advice = "; ".join(after)
        raise TooManyFailures(
            f"{report.step}: {' and '.join(what)}: {shown}. "
            f"{advice[0].upper()}{advice[1:]}; see the summary artifact for the list",
            report=report,
        )


class BatchProgress:
    """A progress artifact, updated after each batch of a long step.

    Outside a Prefect run (a plain function call in a test or the CLI) it does nothing.
    """

    def __init__(self, step: str, total: int):
        self.total, self.done = total, 0
        self.artifact_id: UUID | None = None
        if total and (FlowRunContext.get() or TaskRunContext.get()):
            # Called from synchronous code, the sync-compatible function returns the id.
            self.artifact_id = cast(
                UUID,
                create_progress_artifact(
                    0.0, key=f"{step}-progress", description=f"{step}: {total:,} instances to go"
                ),
            )

    @classmethod
    def counting(cls, step: str, db, queries, shard=None) -> BatchProgress:
        """Progress over the rows the given queries will yield (counted up front; a
        shard expects its share)."""
        total = count_rows(db, queries)
        return cls(step, -(-total // shard.count) if shard else total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.artifact_id is not None:
            update_progress_artifact(
                self.artifact_id,
                min(100.0, 100.0 * self.done / self.total),
                description=f"{self.done:,} of {self.total:,} instances",
            )
