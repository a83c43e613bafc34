"""How the lifecycle reaches people and other systems.

Each channel that delivers a batch is a package with one interface, ``send(batch)``,
and backends chosen by settings (as Django's mail backends are):

    email/      EmailBackend     file (default), smtp, memory        email_backend()
    sms/        SmsBackend       file (default), aliyun, memory      sms_backend()
    tickets/    TicketSink       database (default), webhook         ticket_sink_for()

They share one contract: ``send(batch)`` returns one ``DeliveryResult`` per item, in
order, keyed by the item's key, and never raises for the failure of an item (one bad
recipient never stops a batch). It raises only for a failure of the whole backend that
it could not attribute to items, which it should rarely need to. A backend whose
settings are unusable refuses when it is built (``InputError``), before anything is
sent. Error texts never carry a secret (``dns_lifecycle.core.secrets.scrub``).

Email and SMS backends also take ``send(batch, on_result=f)`` and call ``f(result)`` as
each message's outcome becomes known (a server's reply), so the caller can record it
before the batch ends; a backend that finishes a batch at once (files, memory) may
leave that to the returned list, which always holds every result.

Besides: ``registrar`` (name-server delegation), ``dns_lookup`` and ``render``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from dns_lifecycle.core.errors import InputError

Outcome = Literal["sent", "transient", "permanent"]


@dataclass(frozen=True)
class DeliveryResult:
    key: str
    outcome: Outcome
    error: str | None = None


ResultSink = Callable[[DeliveryResult], None]


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


class CountingBackend:
    """A dry run's backend for any channel: every item would be sent; nothing leaves
    the process."""

    async def send(
        self, batch: Sequence[Keyed], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        return [DeliveryResult(item.key, "sent") for item in batch]


def counting(settings: object) -> CountingBackend:
    """The dry-run twin of every email and SMS backend (their registries' ``dry_run``)."""
    return CountingBackend()


def outbox_folder(folder: Path) -> Path:
    """``folder`` (under ``DNSL_OUTBOX_DIR``), made if missing, for a backend that writes
    files; ``InputError`` when it cannot be made or written, so that the backend refuses
    when it is built, not once per message."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot make the outbox folder {folder}: {exc.strerror or exc}; set "
            "DNSL_OUTBOX_DIR to a folder you may write"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot write in the outbox folder {folder}: permission denied; set "
            "DNSL_OUTBOX_DIR to a folder you may write"
        )
    return folder
