"""The file backend (the default): one .eml file per message in ``outbox_dir/email``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email.message import build_mime, sender_parts
from dns_lifecycle.core.errors import PermanentDeliveryError

if TYPE_CHECKING:
    from dns_lifecycle.core.settings import Settings

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def eml_file_name(key: str) -> str:
    """A file name for ``key``: its safe characters, then a digest that keeps keys apart."""
    readable = _UNSAFE_FILE_CHARS.sub("_", key).strip("._")[:80] or "message"
    return f"{readable}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:12]}.eml"


def _write_atomically(path: Path, data: bytes) -> None:
    # A reader (or a crash) never sees half a file; a rewrite of the same key replaces it.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FileEmailBackend:
    """Writes one .eml file per message into ``outbox_dir/email``, named by its key.

    Sending the same key again overwrites its file: a rerun leaves one file per message.
    The files carry no Date header, so a rewrite is byte for byte the same."""

    def __init__(self, outbox_dir: Path, sender: str) -> None:
        sender_parts(sender)  # a bad sender is a setting to fix, not a failed message
        self.directory = Path(outbox_dir) / "email"
        self.sender = sender

    async def send(
        self, batch: list[EmailMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        return await asyncio.to_thread(self._write_batch, batch)

    def _write_batch(self, batch: list[EmailMessage]) -> list[DeliveryResult]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            error = (
                f"cannot create the outbox folder {self.directory}: {exc.strerror or exc}; "
                "check DNSL_OUTBOX_DIR"
            )
            return [DeliveryResult(m.key, "transient", error) for m in batch]
        return [self._write(m) for m in batch]

    def _write(self, message: EmailMessage) -> DeliveryResult:
        try:
            data = build_mime(message, self.sender)
        except PermanentDeliveryError as exc:
            return DeliveryResult(message.key, "permanent", str(exc))
        path = self.directory / eml_file_name(message.key)
        try:
            _write_atomically(path, data)
        except OSError as exc:
            return DeliveryResult(
                message.key,
                "transient",
                f"cannot write {path}: {exc.strerror or exc}; "
                "check that the outbox folder is writable and has space",
            )
        return DeliveryResult(message.key, "sent")


def from_settings(settings: Settings) -> FileEmailBackend:
    """The backend as the registry builds it, its outbox folder made if missing."""
    from dns_lifecycle.channels import outbox_folder

    outbox_folder(settings.outbox_dir / "email")
    return FileEmailBackend(settings.outbox_dir, settings.email_from)
