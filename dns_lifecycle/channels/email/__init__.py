"""Email: the message, the interface every backend offers, and the backend that the
settings name (``email_backend``):

    file     (default) one .eml file per message in the outbox folder   file.py
    smtp     an SMTP server, over a small pool of connections           smtp.py
    memory   kept in ``memory.outbox``, for tests                       memory.py

The file and SMTP backends write the same MIME message (``message.build_mime``), whose
Message-ID is derived from the ledger key. ``send`` follows the channels' contract (see
``dns_lifecycle.channels``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dns_lifecycle.channels import CountingBackend, DeliveryResult, ResultSink
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


def email_backend(settings: Settings, *, dry_run: bool = False) -> EmailBackend:
    """The backend that ``email_backend`` names; a dry run's only counts."""
    if dry_run:
        return CountingBackend()
    # Imported here: each backend module imports this one for EmailMessage.
    if settings.email_backend == "memory":
        from dns_lifecycle.channels.email.memory import MemoryEmailBackend

        return MemoryEmailBackend()
    if settings.email_backend == "smtp":
        from dns_lifecycle.channels.email.smtp import SmtpEmailBackend

        return SmtpEmailBackend(settings)
    from dns_lifecycle.channels import outbox_folder
    from dns_lifecycle.channels.email.file import FileEmailBackend

    outbox_folder(settings.outbox_dir / "email")
    return FileEmailBackend(settings.outbox_dir, settings.email_from)
