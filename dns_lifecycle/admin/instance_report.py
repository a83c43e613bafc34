"""One instance, as an operator reads it: its account and balance, its domains with
their release stage, orders, tickets, notices and zone-file copies.

The report is built once from the store and rendered two ways: as text by
``dns-lifecycle instances show`` and as markdown by the ``instance-report`` flow, so
both always say the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlmodel import Session

from dns_lifecycle.lifecycle.expiry import DELEGATION_TICKETS, describe_stage
from dns_lifecycle.store.queries import InstanceDetails, instance_details


@dataclass(frozen=True)
class Line:
    """One line of the report: ``depth`` 0 names the instance, 1 is about it, 2 is
    about the line above."""

    text: str
    depth: int = 1


@dataclass(frozen=True)
class Block:
    """A preformatted text (a zone file) under a title."""

    title: str
    body: str


@dataclass(frozen=True)
class InstanceReport:
    instance_id: str
    lines: list[Line] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def text(self) -> str:
        """The report as ``instances show`` prints it."""
        out = ["  " * line.depth + line.text for line in self.lines]
        for block in self.blocks:
            out += ["", f"--- {block.title} ---", block.body.rstrip()]
        return "\n".join(out)

    def markdown(self) -> str:
        """The report as a markdown document: a heading, nested lists, code blocks."""
        out: list[str] = []
        for line in self.lines:
            if line.depth == 0:
                out += [f"# {markdown_escape(line.text)}", ""]
            else:
                out.append("  " * (line.depth - 1) + f"- {markdown_escape(line.text)}")
        for block in self.blocks:
            # A fence longer than any run of backticks in the body cannot be closed by it.
            fence = "`" * max(3, 1 + max((len(r) for r in re.findall("`+", block.body)), default=0))
            out += ["", f"## {markdown_escape(block.title)}", "", fence, block.body.rstrip(), fence]
        return "\n".join(out) + "\n"


# Characters that markdown would read as emphasis, code, links, HTML or a table cell
# (without brackets there is no link, so parentheses may stay as they are).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def markdown_escape(text: str) -> str:
    """``text`` shown as it is in markdown: account names, reasons and errors come from
    customers and other systems, and must not turn into links, HTML or emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def build_report(session: Session, instance_id: str) -> InstanceReport:
    """The report of ``instance_id``; an instance that does not exist is NotFound."""
    return _report(instance_details(session, instance_id))


def _report(details: InstanceDetails) -> InstanceReport:
    instance, account = details.instance, details.account
    report = InstanceReport(instance.id)
    add = report.lines.append
    add(
        Line(
            f"instance {instance.id}: {instance.state}, edition {instance.edition_code}, "
            f"{instance.billing_cycle}, auto-renew {'on' if instance.auto_renew else 'off'}",
            0,
        )
    )
    add(
        Line(
            f"account {account.id} ({account.name}): balance ¥{account.balance:,.2f}, "
            f"time zone {account.timezone}, language {account.locale}"
        )
    )
    for up in details.top_ups:
        add(
            Line(
                f"top-up {up.id}: ¥{up.amount:,} on "
                f"{up.created_at.isoformat(timespec='seconds')} (request key {up.key})",
                2,
            )
        )
    add(Line(f"cluster {instance.cluster_code}"))
    add(
        Line(
            f"expires {instance.expires_at.isoformat()}"
            + (f", released {instance.released_at.isoformat()}" if instance.released_at else "")
        )
    )
    for d in details.domains:
        locks = ", ".join(d.epp_statuses) or "no EPP status"
        add(Line(f"domain {d.name} at {d.registrar} ({locks}); NS {', '.join(d.nameservers)}"))
        if (stage := details.stages.get(d.name)) is not None:
            # An open delegation ticket means the owner has not acted: waiting, not draining.
            waiting = next(
                (
                    t.id
                    for t in details.tickets
                    if t.domain_id == d.id and t.state == "open" and t.reason in DELEGATION_TICKETS
                ),
                None,
            )
            add(Line(f"release: {describe_stage(stage, waiting)}", 2))
    for o in details.orders:
        reason = f" ({o.reason})" if o.reason else ""
        add(
            Line(
                f"order {o.id}: {o.kind} {o.state}{reason} ¥{o.amount} "
                f"until {o.period_end.isoformat()}"
            )
        )
    names = {d.id: d.name for d in details.domains}
    for t in details.tickets:
        domain = names.get(t.domain_id) or t.details.get("domain", "?")
        closed = f", resolved {t.resolved_at.isoformat()}" if t.resolved_at else ""
        add(
            Line(
                f"ticket {t.id}: {t.reason} for {domain}, {t.state}, "
                f"opened {t.created_at.isoformat()}{closed}"
            )
        )
    notices = details.notifications
    count = f"{len(notices):,} notice{'' if len(notices) == 1 else 's'}"
    add(Line(count + (":" if notices else "")))
    for n in notices:
        error = f"  ({n.error})" if n.error else ""
        created = n.created_at.isoformat(timespec="seconds")
        add(Line(f"{created}  {n.kind:<18} {n.channel:<5} {n.state}{error}", 2))
    for z in details.zones:
        report.blocks.append(
            Block(f"zone file copy of {z.domain_name} ({z.created_at.isoformat()})", z.zone_text)
        )
    return report
