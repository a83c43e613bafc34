"""Email: the message, the interface every backend offers, the registry of backends
(``BACKENDS``) and the backend that the settings name (``email_backend``):

    file     (default) one .eml file per message in the outbox folder   file.py
    smtp     an SMTP server, over a small pool of connections           smtp.py
    memory   kept in ``memory.outbox``, for tests                       memory.py

The file and SMTP backends write the same MIME message (``message.build_mime``), whose
Message-ID is derived from the ledger key. ``send`` follows the channels' contract (see
``dns_lifecycle.channels``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.registry import Backend, Registry

if TYPE_CHECKING:
    from dns_lifecycle.core.settings import Settings


@dataclass(frozen=True)
class EmailMessage:
    key: str  # ledger key; also the source of the deterministic Message-ID
    to: str
    subject: str
    text: str
    html: str


class EmailBackend(Protocol):
    async def send(
        self, batch: list[EmailMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]: ...


# name -> Backend: ``factory(settings)`` builds it; ``dry_run(settings)`` what a dry run
# uses instead. Backends are modules of this package, imported when chosen.
COUNTING = "dns_lifecycle.channels:counting"
BACKENDS: Registry[Callable[[Settings], EmailBackend]] = Registry("email", "DNSL_EMAIL_BACKEND")
BACKENDS.register(
    "file",
    Backend("dns_lifecycle.channels.email.file:from_settings", dry_run=COUNTING),
)
BACKENDS.register(
    "memory",
    Backend("dns_lifecycle.channels.email.memory:from_settings", dry_run=COUNTING, in_process=True),
)
BACKENDS.register(
    "smtp",
    Backend(
        "dns_lifecycle.channels.email.smtp:SmtpEmailBackend",
        external=True,
        dry_run=COUNTING,
    ),
)


def email_backend(settings: Settings, *, dry_run: bool = False) -> EmailBackend:
    """The backend that ``email_backend`` names; in a dry run, its dry-run twin."""
    if dry_run:
        twin = BACKENDS.dry_run(settings.email_backend)
        if twin is not None:
            return twin(settings)
    return BACKENDS.factory(settings.email_backend)(settings)
