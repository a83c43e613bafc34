"""Expiry, grace and release decisions (rules 5 and 6), as plain functions.

What release does about each domain's delegation (rule 7) is in ``nameservers``.

"7 days after expiry" is ``expires_at + 168 h``: nothing is released a minute earlier.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, get_args

from dns_lifecycle.lifecycle.durations import DAY
from dns_lifecycle.lifecycle.zonefile import Rr, normalise

# The state an instance expires from, and the state it waits for release in.
ACTIVE = "active"
EXPIRED = "expired"


def is_expired(expires_at: datetime, as_of: datetime) -> bool:
    """An instance is expired from its expiry instant on (rule 5)."""
    return as_of >= expires_at


def expired_until(as_of: datetime) -> datetime:
    """Instances whose expiry is at or before this moment are expired: the rule of
    :func:`is_expired`, as the bound the database scans."""
    return as_of


def release_at(expires_at: datetime, grace_days: int) -> datetime:
    return expires_at + grace_days * DAY


def is_release_due(expires_at: datetime, as_of: datetime, grace_days: int) -> bool:
    return as_of >= release_at(expires_at, grace_days)


def is_release_warning_due(expires_at: datetime, as_of: datetime, grace_days: int) -> bool:
    """The last warning goes out during the 24 h before release."""
    at = release_at(expires_at, grace_days)
    return at - DAY <= as_of < at


def release_due_until(as_of: datetime, grace_days: int) -> datetime:
    """Instances that expired at or before this moment are due for release."""
    return as_of - grace_days * DAY


def release_warning_window(as_of: datetime, grace_days: int) -> tuple[datetime, datetime]:
    """Expiries in ``(after, until]`` are in the 24 h before their release: the rule of
    :func:`is_release_warning_due`, turned into a range the database can scan."""
    until = release_due_until(as_of, grace_days) + DAY
    return until - DAY, until


# --- the staged release of one domain (rule 6) --------------------------------------
#
# pending -> read -> created -> verified -> [switching ->] delegated -> draining -> deleted
#
# read:      the zone as the paid cluster served it is recorded, with its zone-file copy;
# created:   it exists on the free cluster (SOA excluded, apex NS = the free servers);
# verified:  every free name server serves every record set of it;
# switching: the registrar was asked to switch (its task id recorded), not yet done;
# delegated: switched, or a ticket asks the owner to do it (stage 4 passed);
# draining:  the paid copy answers with the free apex NS until ``drain_until``;
# deleted:   the paid copy is gone.

Stage = Literal[
    "pending", "read", "created", "verified", "switching", "delegated", "draining", "deleted"
]
STAGES: tuple[Stage, ...] = get_args(Stage)
StageAction = Literal["read", "create", "verify", "delegate", "poll", "drain", "delete"]
_ACTION_OF: dict[str, StageAction] = {
    "pending": "read",
    "read": "create",
    "created": "verify",
    "verified": "delegate",
    "switching": "poll",
    "delegated": "drain",
    "draining": "delete",
}

# Tickets a release opens that stop a domain's release until a person resolves them.
FREE_ZONE_CONFLICT = "free_zone_conflict"
ZONE_UNWRITABLE = "zone_unwritable"
FREE_ZONE_UNVERIFIED = "free_zone_unverified"
REGISTRAR_FAILED = "registrar_failed"
# At the end of a drain the free copy no longer serves what was moved, or the paid copy
# no longer holds it: the paid copy is kept until a person resolves this.
COPIES_DIFFER = "copies_differ"
# Tickets about a domain's delegation: closed once DNS shows the free name servers.
DELEGATION_TICKETS = ("domain_locked", "external_registrar", REGISTRAR_FAILED)
# Tickets that stop a domain's release, each with the problem that caused it.
STOPPING_TICKETS = (
    FREE_ZONE_CONFLICT,
    ZONE_UNWRITABLE,
    FREE_ZONE_UNVERIFIED,
    "free_zone_refused",
    "paid_zone_missing",
)


def ticket_reopens(reason: str, problem: str | None, last_resolved: dict | None) -> bool:
    """Whether a release that stops a domain again for ``reason`` with ``problem`` opens
    a ticket, given the details of the domain's last resolved ticket for that reason.

    Not while the problem is the one that ticket was resolved with: a person saw it, and
    asking again every run would only repeat it. A changed problem opens one at once;
    the same one again only after ``dns-lifecycle tickets retry`` on that ticket."""
    if reason not in STOPPING_TICKETS or last_resolved is None:
        return True
    return bool(last_resolved.get("retried_at")) or last_resolved.get("problem") != problem


def stage_passed(stage: str, milestone: str) -> bool:
    return STAGES.index(stage) >= STAGES.index(milestone)


def next_action(
    stage: str, *, blocked: bool, drain_until: datetime | None, now: datetime
) -> StageAction | None:
    """What a run does next for a domain at ``stage``, or None (done, waiting for a
    person, or draining until ``drain_until``)."""
    if blocked or stage == "deleted":
        return None
    if stage == "draining" and (drain_until is None or now < drain_until):
        return None
    return _ACTION_OF[stage]


def instance_released(stages: list[str]) -> bool:
    """An instance is released once every one of its domains has passed stage 4."""
    return all(stage_passed(s, "delegated") for s in stages)


def may_delete_paid(stage: str, verified: bool) -> bool:
    """The paid copy may go only once a verified free copy exists and the drain is over:
    the one guard between a fault and a lost zone."""
    return verified and stage == "draining"


def change_by(delegated_at: datetime, manual_drain_days: float) -> datetime:
    """The latest moment a ticketed domain's owner should have changed its name servers:
    its drain starts then whatever DNS shows."""
    return delegated_at + timedelta(days=manual_drain_days)


def drain_until(
    delegation: str,
    delegated_at: datetime,
    *,
    live: bool,
    drain_hours: float,
    manual_drain_days: float,
) -> datetime:
    """When the paid copy of a domain may be deleted.

    A switched domain drains for ``drain_hours`` (caches of the old delegation expire);
    a ticketed one starts draining at the latest ``manual_drain_days`` after release
    (earlier when DNS shows the new delegation: :func:`drain_after_seen`). A cluster
    that serves no real DNS (the database backend) has no caches to wait for.
    """
    if not live:
        return delegated_at
    start = delegated_at if delegation == "switched" else change_by(delegated_at, manual_drain_days)
    return start + timedelta(hours=drain_hours)


def drain_after_seen(current: datetime | None, seen_at: datetime, drain_hours: float) -> datetime:
    """The drain end once DNS was seen delegating to the free name servers at ``seen_at``."""
    seen = seen_at + timedelta(hours=drain_hours)
    return seen if current is None else min(current, seen)


# A switch asked of an outside registrar is recorded, as ``switch_task``, before the
# request goes out; its task id replaces the mark once the answer arrives. A mark left
# behind (an answer lost, a run killed) says since when to look for that request's task.
SWITCH_ASKED = "asked-at:"


def switch_asked(at: datetime) -> str:
    """The mark of a switch asked for at ``at`` whose task id is not known yet."""
    return SWITCH_ASKED + at.isoformat()


def switch_asked_at(switch_task: str | None) -> datetime | None:
    """When the switch that ``switch_task`` marks was first asked for; None when it is
    no mark (no switch asked for, or a task id)."""
    if switch_task is None or not switch_task.startswith(SWITCH_ASKED):
        return None
    return datetime.fromisoformat(switch_task[len(SWITCH_ASKED) :])


def verification_fresh(verified_at: datetime | None, now: datetime, fresh_minutes: float) -> bool:
    """Whether a verification of the free copy made at ``verified_at`` is recent enough
    to switch the delegation on at ``now``: at most ``fresh_minutes`` old."""
    return verified_at is not None and now - verified_at <= timedelta(minutes=fresh_minutes)


def verify_ticket_due(failures: int, attempts: int) -> bool:
    """After this many failed verifications in a row, a person is asked to look."""
    return failures >= attempts


def is_apex_ns(rtype: str, host: str) -> bool:
    return rtype.upper() == "NS" and host.strip() in ("", "@")


DEFAULT_NS_TTL = 3600


def zone_content(records: list[Rr]) -> tuple[list[Rr], int]:
    """What a cluster is handed of a zone: every record but SOA and the apex NS (the
    cluster's own name servers replace them), and the TTL the apex NS had."""
    kept = [r for r in records if r.type.upper() != "SOA" and not is_apex_ns(r.type, r.host)]
    ns_ttl = min((r.ttl for r in records if is_apex_ns(r.type, r.host)), default=DEFAULT_NS_TTL)
    return kept, ns_ttl


def paid_copy_difference(domain: str, moved: list[Rr], current: list[Rr]) -> str | None:
    """How the paid copy of ``domain`` as it is now (``current``) differs from what was
    moved (``moved``), both as ``zone_content`` gives them; None when equal. A record
    added there during the drain would be lost with it, and one removed there may be a
    change the free copy lacks."""
    was = {normalise(r, domain) for r in moved}
    now = {normalise(r, domain) for r in current}
    if was == now:
        return None

    def listed(records: set[Rr]) -> str:
        shown = [f"{r.host} {r.type} {r.value} (TTL {r.ttl})" for r in sorted(records)[:3]]
        more = len(records) - len(shown)
        return "; ".join(shown) + (f" and {more} more" if more > 0 else "") or "nothing"

    return (
        f"the paid copy of {domain} changed since it was moved: added {listed(now - was)}, "
        f"removed {listed(was - now)}"
    )


def describe_stage(stage: dict, open_ticket: int | None = None) -> str:
    """One line saying where a domain's release stands (``store.release.release_stages``).

    ``open_ticket``: the domain's open delegation ticket. While it is open the owner has
    not changed the name servers as far as DNS shows, so the paid copy is not draining:
    it waits, until ``drain_until`` at the latest."""
    if open_ticket is not None and stage["stage"] in ("delegated", "draining"):
        text = (
            f"waiting for the owner to change the name servers (ticket {open_ticket}, "
            f"{stage['delegation']})"
        )
        if stage.get("drain_until"):
            text += f", paid copy kept until {stage['drain_until']} at the latest"
    else:
        text = stage["stage"]
        if stage.get("delegation"):
            text += f", delegation {stage['delegation']}"
        if stage.get("drain_until") and stage["stage"] != "deleted":
            text += f", paid copy kept until {stage['drain_until']}"
    if stage.get("blocked"):
        text += f", waiting for the ticket {stage['blocked']} to be resolved"
    if stage.get("error"):
        text += f"; last problem: {stage['error']}"
    return text
