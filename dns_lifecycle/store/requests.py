"""Request keys: one namespace across manual renewals, upgrades, auto-renewal switches
and top-ups.

A request made with a key is held in the ``request`` table, whose key is unique: the
same request again (same action, subject and parameters) finds it and is done already;
the key given with another instance, account, action or parameter is refused, naming the
request that holds it. The callers look the key up under their row locks, act, then
hold the key in the same transaction; only the database can tell two concurrent
requests with one key apart, so the one that loses is refused and changes nothing.
Nothing here commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from dns_lifecycle.core.errors import LifecycleError, Refused
from dns_lifecycle.store import table_of
from dns_lifecycle.store.notifications import insert_ignoring_duplicates
from models import Request
from models.types import RequestAction

REQUESTS = table_of(Request)


def describe(action: str, subject: str, params: str) -> str:
    """A request in words, as its refusals name it."""
    value = params.partition("=")[2]
    if action == "manual_renewal":
        return f"a renewal of instance {subject} by {value} period(s)"
    if action == "upgrade":
        return f"an upgrade of instance {subject} to {value}"
    if action == "auto_renew":
        return f"switching auto-renewal {value} for instance {subject}"
    return f"a top-up of ¥{value} to account {subject}"


def _holder(held: Request) -> str:
    if held.order_id is not None:
        return f"order {held.order_id}"
    if held.top_up_id is not None:
        return f"top-up {held.top_up_id}"
    return f"request {held.id}"


def earlier_request(
    session: Session, key: str, action: RequestAction, subject: str, params: str
) -> Request | None:
    """The request an earlier call made with ``key``, when it asked for the same
    (``action`` on ``subject`` with ``params``); None for a new key. A key that holds
    another request is refused."""
    held = session.execute(select(Request).where(col(Request.key) == key)).scalar_one_or_none()
    if held is None:
        return None
    if (held.action, held.subject, held.params) == (action, subject, params):
        return held
    raise Refused(
        f"request key {key!r} was already used by {_holder(held)} "
        f"({describe(held.action, held.subject, held.params)}); this request asks for "
        f"{describe(action, subject, params)}: give a new request key for a new request, "
        "or the same parameters to repeat that one"
    )


def hold_request(
    session: Session,
    *,
    key: str,
    action: RequestAction,
    subject: str,
    params: str,
    now: datetime,
    order_id: int | None = None,
    top_up_id: int | None = None,
) -> None:
    """Hold ``key`` for this request, found new by :func:`earlier_request` under the
    caller's locks. A concurrent request that took the key meanwhile (another subject,
    so another lock) makes this one refused."""
    row = {
        "key": key,
        "action": action,
        "subject": subject,
        "params": params,
        "order_id": order_id,
        "top_up_id": top_up_id,
        "created_at": now,
    }
    if insert_ignoring_duplicates(session, REQUESTS, [row], "key"):
        return
    earlier_request(session, key, action, subject, params)
    # The same request made twice at once: the locks serialise those, so this is a bug.
    raise LifecycleError(f"request key {key!r} was taken by an identical concurrent request")
