"""The file backend (the default): one JSON line per message appended to
``<outbox_dir>/sms.jsonl``, so a developer can read what would have been sent.

Each line carries its ledger key, and a key already in the file is not written again:
a run killed after writing a batch and before recording it leaves rows pending that
the next run sends, and they must not become a second line each (the SMTP and SendSms
backends repeat at most the messages in flight; so does this one)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.sms import SmsMessage

if TYPE_CHECKING:
    from dns_lifecycle.core.settings import Settings

OUTBOX_FILE = "sms.jsonl"


class FileSmsBackend:
    """Writes each message as one JSON line to ``outbox_dir / "sms.jsonl"``, once per
    key."""

    def __init__(self, outbox_dir: Path) -> None:
        self.path = Path(outbox_dir) / OUTBOX_FILE
        # The keys in the file up to ``_read_to`` (bytes): the file only grows, so each
        # batch reads only what was added since, by this or another process.
        self._written: set[str] = set()
        self._read_to = 0
        self._lock = threading.Lock()

    async def send(
        self, batch: list[SmsMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        if not batch:
            return []
        await asyncio.to_thread(self._append, batch)
        return [DeliveryResult(m.key, "sent") for m in batch]

    def _append(self, batch: Iterable[SmsMessage]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a+b") as outbox:
            self._catch_up(outbox)
            new = {m.key: m for m in batch if m.key not in self._written}
            if not new:
                return
            lines = "".join(
                json.dumps(
                    {
                        "key": m.key,
                        "phone": m.phone,
                        "template_code": m.template_code,
                        "params": m.params,
                        "text": m.text,
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for m in new.values()
            )
            # One write per batch in append mode, so concurrent writers never split a
            # line; after a line cut short by a kill, on a line of its own.
            outbox.seek(0, 2)
            end = outbox.tell()
            if end:
                outbox.seek(end - 1)
                if outbox.read(1) != b"\n":
                    lines = "\n" + lines
            outbox.write(lines.encode("utf-8"))
            self._written.update(new)

    def _catch_up(self, outbox) -> None:
        """Add the keys of the lines written since the last look (whole lines only)."""
        outbox.seek(self._read_to)
        added = outbox.read()
        whole = added.rfind(b"\n") + 1
        for line in added[:whole].splitlines():
            try:
                key = json.loads(line).get("key")
            except (ValueError, AttributeError):
                continue  # a line cut short by a kill: its message is sent again
            if isinstance(key, str):
                self._written.add(key)
        self._read_to += whole


def from_settings(settings: Settings) -> FileSmsBackend:
    """The backend as the registry builds it, its outbox folder made if missing."""
    from dns_lifecycle.channels import outbox_folder

    outbox_folder(settings.outbox_dir)
    return FileSmsBackend(settings.outbox_dir)
