"""Every ledger and order key, built here and nowhere else.

A key is the identity of a notice or an order: the ledger and the orders table
insert a key once, so a rerun, a retry or an overlapping run adds nothing. Keys are
stored, so their spelling is fixed: changing one would send a notice twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def stamp(moment: datetime) -> str:
    """A moment as it appears in ledger and order keys: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- orders ------------------------------------------------------------------------------


def auto_renewal_key(instance_id: str, period_start: datetime) -> str:
    """One auto-renewal order per (instance, period)."""
    return f"auto_renewal:{instance_id}:{stamp(period_start)}"


def manual_renewal_key(instance_id: str, request_key: str) -> str:
    """One manual renewal per request: a retried request finds its order."""
    return f"manual_renewal:{instance_id}:{request_key}"


def upgrade_key(instance_id: str, request_key: str) -> str:
    """One upgrade per request."""
    return f"upgrade:{instance_id}:{request_key}"


# --- notices (the ledger appends the channel) ----------------------------------------


def channel_key(notice_key: str, channel: str) -> str:
    """The ledger row of one notice on one channel."""
    return f"{notice_key}:{channel}"


def reminder_key(instance_id: str, expires_at: datetime, offset_days: int) -> str:
    """One reminder per (instance, expiry, offset)."""
    return f"reminder:{instance_id}:{stamp(expires_at)}:{offset_days}d"


def order_notice_key(kind: str, order_key: str) -> str:
    """One notice of ``kind`` ("order_created", "renewed", "upgraded") per order."""
    return f"{kind}:{order_key}"


def renewal_failed_key(order_key: str, as_of: datetime, zone: tzinfo) -> str:
    """At most one "renewal failed" notice per order and day of the account's calendar
    (``zone``), the day the customer counts in."""
    return f"renewal_failed:{order_key}:{renewal_failed_day(as_of, zone)}"


def renewal_failed_day(as_of: datetime, zone: tzinfo) -> str:
    """The day a "renewal failed" notice is for, as its key spells it (YYYYMMDD)."""
    return f"{as_of.astimezone(zone):%Y%m%d}"


def renewal_failed_order_and_day(ledger_key: str) -> tuple[str, str]:
    """(order key, day) of a "renewal failed" ledger key (with its channel)."""
    rest, day, _channel = ledger_key.removeprefix("renewal_failed:").rsplit(":", 2)
    return rest, day


def auto_renew_changed_key(instance_id: str, request_key: str) -> str:
    """One notice per switching request."""
    return f"auto_renew_changed:{instance_id}:{request_key}"


def expiry_notice_key(kind: str, instance_id: str, expires_at: datetime) -> str:
    """One notice of ``kind`` ("expired", "release_warning", "released") per expiry."""
    return f"{kind}:{instance_id}:{stamp(expires_at)}"


def ticket_open_key(domain_name: str, reason: str) -> str:
    """A ticket open for a domain and reason: one at a time (resolving frees the key)."""
    return f"{domain_name}:{reason}"


def ticket_resolved_key(ticket_id: int) -> str:
    """One notice per resolved ticket."""
    return f"ticket_resolved:{ticket_id}"


# --- tickets -----------------------------------------------------------------------------


def ticket_dedupe_key(ticket_id: int, domain_name: str, reason: str) -> str:
    """What a ticket sink deduplicates on: the same across retries of one ticket."""
    return f"ticket:{ticket_id}:{domain_name}:{reason}"
