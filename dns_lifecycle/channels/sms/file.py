"""The file backend (the default): one JSON line per message appended to
``<outbox_dir>/sms.jsonl``, so a developer can read what would have been sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.sms import SmsMessage

OUTBOX_FILE = "sms.jsonl"


class FileSmsBackend:
    """Writes each message as one JSON line to ``outbox_dir / "sms.jsonl"``."""

    def __init__(self, outbox_dir: Path) -> None:
        self.path = Path(outbox_dir) / OUTBOX_FILE

    async def send(
        self, batch: list[SmsMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        if not batch:
            return []
        await asyncio.to_thread(self._append, batch)
        return [DeliveryResult(m.key, "sent") for m in batch]

    def _append(self, batch: Iterable[SmsMessage]) -> None:
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
            for m in batch
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write per batch in append mode, so concurrent writers never split a line.
        with self.path.open("a", encoding="utf-8") as outbox:
            outbox.write(lines)
