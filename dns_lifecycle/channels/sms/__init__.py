"""SMS: the message, the interface every backend offers, the registry of backends
(``BACKENDS``) and the backend that the settings name (``sms_backend``):

    file     (default) one JSON line per message in the outbox folder   file.py
    aliyun   the provider's SendSms API                                 aliyun.py
    memory   kept in ``memory.outbox``, for tests                       memory.py

``send`` follows the channels' contract (see ``dns_lifecycle.channels``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.registry import Backend, Registry

if TYPE_CHECKING:
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


# name -> Backend: ``factory(settings)`` builds it; ``dry_run(settings)`` what a dry run
# uses instead. Backends are modules of this package, imported when chosen.
COUNTING = "dns_lifecycle.channels:counting"
BACKENDS: Registry[Callable[[Settings], SmsBackend]] = Registry("SMS", "DNSL_SMS_BACKEND")
BACKENDS.register(
    "file",
    Backend("dns_lifecycle.channels.sms.file:from_settings", dry_run=COUNTING),
)
BACKENDS.register(
    "memory",
    Backend("dns_lifecycle.channels.sms.memory:from_settings", dry_run=COUNTING, in_process=True),
)
BACKENDS.register(
    "aliyun",
    Backend(
        "dns_lifecycle.channels.sms.aliyun:AliyunSmsBackend",
        external=True,
        dry_run=COUNTING,
    ),
)


def sms_backend(settings: Settings, *, dry_run: bool = False) -> SmsBackend:
    """The backend that ``sms_backend`` names; in a dry run, its dry-run twin."""
    if dry_run:
        twin = BACKENDS.dry_run(settings.sms_backend)
        if twin is not None:
            return twin(settings)
    return BACKENDS.factory(settings.sms_backend)(settings)
