"""The fleet outlook in SQL: each count grouped by day in the database.

Every count is one range scan of the (state, expires_at) index, for the expiries whose
event (the expiry, the renewal order, the end of the grace period) falls in the
outlook, with the day told by a CASE over the day boundaries: the boundaries are local
midnights, computed in Python (daylight-saving included), so neither database needs to
know the operator's time zone. The rules are in ``lifecycle.outlook``.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    over,
    select,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from dns_lifecycle.lifecycle.durations import DAY
from dns_lifecycle.lifecycle.nameservers import nameserver_action
from dns_lifecycle.lifecycle.outlook import OutlookDay
from dns_lifecycle.store.scan import AnySelect
from models import Account, Domain, Edition, Instance, Ticket
from models.types import UTCDateTime


def _at(moment: datetime) -> Any:
    # Bound through UTCDateTime like the column (SQLite keeps naive UTC).
    return literal(moment, UTCDateTime())


def _day_of(column: Any, boundaries: list[datetime], shift: timedelta) -> ColumnElement[int]:
    """The index of the day ``column + shift`` falls in (the caller's WHERE keeps it
    within the boundaries)."""
    return case(
        *((column < _at(b - shift), i) for i, b in enumerate(boundaries[1:-1])),
        else_=len(boundaries) - 2,
    )


def _within(column: Any, boundaries: list[datetime], shift: timedelta) -> ColumnElement[bool]:
    return and_(column >= _at(boundaries[0] - shift), column < _at(boundaries[-1] - shift))


def _cents(amount: Any) -> ColumnElement[int]:
    # Money is text on SQLite: summed and compared as a number of cents on both databases.
    return cast(func.round(cast(amount, Float) * 100), BigInteger)


def expiries_query(boundaries: list[datetime]) -> AnySelect:
    """(day, expiries) of active instances."""
    day = _day_of(col(Instance.expires_at), boundaries, timedelta(0)).label("day")
    return (
        select(day, func.count().label("n"))
        .where(
            col(Instance.state) == "active",
            _within(col(Instance.expires_at), boundaries, timedelta(0)),
        )
        .group_by(day)
    )


def auto_renewals_query(boundaries: list[datetime], lead_days: int) -> AnySelect:
    """(day, renewals, accounts short) of the auto-renewal orders falling due."""
    lead = lead_days * DAY
    price = case(
        (col(Instance.billing_cycle) == "monthly", col(Edition.monthly_price)),
        else_=col(Edition.yearly_price),
    )
    day = _day_of(col(Instance.expires_at), boundaries, -lead).label("day")
    per_account = (
        select(
            day,
            col(Instance.account_id).label("account_id"),
            func.count().label("n"),
            func.sum(_cents(price)).label("due"),
        )
        .join(Edition, col(Edition.code) == col(Instance.edition_code))
        .where(
            col(Instance.state) == "active",
            col(Instance.auto_renew).is_(True),
            _within(col(Instance.expires_at), boundaries, -lead),
        )
        .group_by(day, col(Instance.account_id))
        .subquery()
    )
    running = (
        select(
            per_account.c.day,
            per_account.c.n,
            over(
                func.sum(per_account.c.due),
                partition_by=per_account.c.account_id,
                order_by=per_account.c.day,
            ).label("running"),
            _cents(col(Account.balance)).label("balance"),
        )
        .join(Account, col(Account.id) == per_account.c.account_id)
        .subquery()
    )
    return select(
        running.c.day,
        func.sum(running.c.n).label("n"),
        func.sum(case((running.c.running > running.c.balance, 1), else_=0)).label("short"),
    ).group_by(running.c.day)


def _nothing_renews() -> ColumnElement[bool]:
    return or_(col(Instance.state) == "expired", col(Instance.auto_renew).is_(False))


def grace_query(boundaries: list[datetime], grace_days: int) -> AnySelect:
    """(day, grace periods ending, releases due) of active and expired instances."""
    grace = grace_days * DAY
    day = _day_of(col(Instance.expires_at), boundaries, grace).label("day")
    return (
        select(
            day,
            func.count().label("n"),
            func.sum(case((_nothing_renews(), 1), else_=0)).label("releases"),
        )
        .where(
            col(Instance.state).in_(("active", "expired")),
            _within(col(Instance.expires_at), boundaries, grace),
        )
        .group_by(day)
    )


def release_domains_query(boundaries: list[datetime], grace_days: int) -> AnySelect:
    """(day, registrar, EPP statuses, domains) of the releases due: the distinct kinds
    of domain, for the rule of rule 7 to judge in Python."""
    grace = grace_days * DAY
    day = _day_of(col(Instance.expires_at), boundaries, grace).label("day")
    # As text: PostgreSQL's json has no equality to group by.
    epp = cast(col(Domain.epp_statuses), String).label("epp")
    return (
        select(day, col(Domain.registrar), epp, func.count().label("n"))
        .join(Domain, col(Domain.instance_id) == col(Instance.id))
        .where(
            col(Instance.state).in_(("active", "expired")),
            _within(col(Instance.expires_at), boundaries, grace),
            _nothing_renews(),
        )
        .group_by(day, col(Domain.registrar), epp)
    )


def fleet_outlook(
    session: Session,
    *,
    dates: list[date],
    boundaries: list[datetime],
    lead_days: int,
    grace_days: int,
) -> list[OutlookDay]:
    """One :class:`OutlookDay` per date of ``dates`` (``boundaries`` from
    ``lifecycle.outlook.day_boundaries``)."""
    days: list[dict[str, int]] = [{} for _ in dates]
    for row in session.execute(expiries_query(boundaries)):
        days[row.day]["expiries"] = row.n
    for row in session.execute(auto_renewals_query(boundaries, lead_days)):
        days[row.day]["auto_renewals"] = int(row.n)
        days[row.day]["accounts_short"] = int(row.short)
    for row in session.execute(grace_query(boundaries, grace_days)):
        days[row.day]["grace_ending"] = row.n
        days[row.day]["releases_due"] = int(row.releases)
    tickets: Counter[int] = Counter()
    for row in session.execute(release_domains_query(boundaries, grace_days)):
        if nameserver_action(row.registrar, json.loads(row.epp)) != "switched":
            tickets[row.day] += row.n
    return [
        OutlookDay(day=d, tickets_to_open=tickets[i], **counts)
        for i, (d, counts) in enumerate(zip(dates, days, strict=True))
    ]


def open_tickets(session: Session) -> int:
    """How many manual-action tickets are open now."""
    return session.execute(
        select(func.count()).select_from(Ticket).where(col(Ticket.state) == "open")
    ).scalar_one()
