"""SMS: the message, the interface every backend offers, and the backend that the
settings name (``sms_backend``):

    file     (default) one JSON line per message in the outbox folder   file.py
    aliyun   the provider's SendSms API                                 aliyun.py
    memory   kept in ``memory.outbox``, for tests                       memory.py

``send`` follows the channels' contract (see ``dns_lifecycle.channels``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from dns_lifecycle.channels import CountingBackend, DeliveryResult, ResultSink
from dns_lifecycle.core.settings import Settings


@dataclass(frozen=True)
class SmsMessage:
    key: str
    phone: str  # E.164
    template_code: str
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""  # the rendered wording, for the file/memory backends and for people


class SmsBackend(Protocol):
    async def send(
        self, batch: list[SmsMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]: ...


def sms_backend(settings: Settings, *, dry_run: bool = False) -> SmsBackend:
    """The backend that ``sms_backend`` names; a dry run's only counts."""
    if dry_run:
        return CountingBackend()
    # Imported here: each backend module imports this one for SmsMessage.
    if settings.sms_backend == "memory":
        from dns_lifecycle.channels.sms.memory import MemorySmsBackend

        return MemorySmsBackend()
    if settings.sms_backend == "aliyun":
        from dns_lifecycle.channels.sms.aliyun import AliyunSmsBackend

        return AliyunSmsBackend(settings)
    from dns_lifecycle.channels import outbox_folder
    from dns_lifecycle.channels.sms.file import FileSmsBackend

    outbox_folder(settings.outbox_dir)
    return FileSmsBackend(settings.outbox_dir)
