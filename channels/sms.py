"""SMS backends: a file outbox for local use, and the provider's SendSms API.

``FileSmsBackend`` (the default) appends one JSON line per message to
``<outbox_dir>/sms.jsonl``, so a developer can read what would have been sent.

``AliyunSmsBackend`` calls SendSms (API version 2017-05-25) through the provider's
official SDK, one request per message, a few at a time. Each answer becomes one
``DeliveryResult``:

- ``Code == "OK"``: sent.
- transient (retried on a later run):
  - throttling (``isv.BUSINESS_LIMIT_CONTROL``, ``isv.DAY_LIMIT_CONTROL``,
    ``Throttling.*``, HTTP 429);
  - the provider's own failures (``isp.SYSTEM_ERROR``, any HTTP 5xx);
  - no usable answer: timeout, refused or dropped connection, an unreadable body;
  - problems of *our provider account* rather than of the message: not enough
    balance (``isv.AMOUNT_NOT_ENOUGH``), service suspended, bad or unauthorised access
    key. An operator fixes the account and every pending message can then go out, so
    they must not be written off; the run's failure threshold makes them visible.
- permanent: every other code, e.g. ``isv.MOBILE_NUMBER_ILLEGAL``,
  ``isv.SMS_TEMPLATE_ILLEGAL``, ``isv.SMS_SIGNATURE_ILLEGAL``,
  ``isv.TEMPLATE_MISSING_PARAMETERS``, ``isv.BLACK_KEY_CONTROL_LIMIT``: sending the
  same message again would be refused again.

The SDK does not retry (no retry options are set): retries belong to the ledger, which
tries a transient failure again on a later run.

Error texts are built here from the provider's code, message, HTTP status and request
id, never from the SDK's exception text, and are scrubbed of the access key secret
before they leave this module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_dysmsapi20170525.models import SendSmsRequest
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions
from pydantic import SecretStr
from Tea.exceptions import UnretryableException

from channels.base import DeliveryResult, Outcome, SmsMessage
from dns_lifecycle.errors import InputError
from dns_lifecycle.settings import Settings

OUTBOX_FILE = "sms.jsonl"

# The ledger keeps up to 1000 characters of error text.
MAX_ERROR_LENGTH = 500

# OutId is our reference on the provider's side (it comes back in delivery reports and
# lets an operator find a message there). Keys longer than this are shortened to a
# readable prefix plus a digest of the whole key, so distinct keys stay distinct.
MAX_OUT_ID_LENGTH = 64

DEFAULT_CONCURRENCY = 8

_QUERY = re.compile(r"\?\S*")

OK = "OK"

# Codes worth trying again later. Everything else that is not OK is permanent.
TRANSIENT_CODES = frozenset(
    {
        # Throttling: per number per minute/hour/day, or the account's daily quota.
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.DAY_LIMIT_CONTROL",
        "isv.BUSINESS_LIMIT_HOUR",
        "isv.BUSINESS_LIMIT_DAY",
        "BUSINESS_LIMIT_CONTROL_MINUTE",
        "BUSINESS_LIMIT_CONTROL_PHONE",
        # The provider's own failures.
        "isp.SYSTEM_ERROR",
        "isp.GATEWAY_ERROR",
        "isp.UNKNOWN",
        "InternalError",
        "UnknownError",
        # Our provider account, fixed by an operator; the messages themselves are fine.
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.BILLING_DEDUCTION_ERROR",
        "isv.ACCOUNT_ABNORMAL",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isp.RAM_PERMISSION_DENY",
        "isv.RAM_CHECK_FAILED",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "NoPermission",
    }
)
TRANSIENT_CODE_PREFIXES = (
    "Throttling",
    "ServiceUnavailable",
    "InternalError.",
    "InvalidAccessKeyId.",
    "Forbidden.",
)

_CREDENTIAL_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "NoPermission",
        "isp.RAM_PERMISSION_DENY",
        "isv.RAM_CHECK_FAILED",
    }
)
_BALANCE_CODES = frozenset(
    {"isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "isv.BILLING_DEDUCTION_ERROR"}
)
_NUMBER_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED"})
_TEMPLATE_CODES = frozenset({"isv.SMS_TEMPLATE_ILLEGAL", "isv.SMS_CONTENT_CODE_ILLEGAL"})
_PARAMETER_CODES = frozenset(
    {
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.CONTENT_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.INVALID_JSON_PARAM",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.BLACK_KEY_CONTROL_LIMIT",
    }
)
_SIGNATURE_CODES = frozenset(
    {"isv.SMS_SIGNATURE_ILLEGAL", "isv.SMS_SIGN_ILLEGAL", "isv.SMS_SIGN_NAME_ILLEGAL"}
)


def classify(code: str | None, status: int | None = None) -> Outcome:
    """The outcome of one SendSms answer, from its ``Code`` and HTTP status."""
    if code == OK and (status is None or status < 400):
        return "sent"
    if status is not None and (status >= 500 or status == 429):
        return "transient"
    if code in TRANSIENT_CODES or (code and code.startswith(TRANSIENT_CODE_PREFIXES)):
        return "transient"
    return "permanent"


def provider_phone(phone: str) -> str:
    """The number as SendSms takes it: E.164 digits without the leading '+'.

    For the Chinese mainland the provider accepts the number with or without the 86
    country code; every other destination needs the country code first. E.164 without
    '+' is therefore right for both, e.g. ``+8613900001234`` -> ``8613900001234``.
    """
    return phone.strip().removeprefix("+")


def out_id(key: str) -> str:
    """The ledger key as the provider's OutId, at most ``MAX_OUT_ID_LENGTH`` long."""
    if len(key) <= MAX_OUT_ID_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"{key[: MAX_OUT_ID_LENGTH - len(digest) - 1]}~{digest}"


class FileSmsBackend:
    """Writes each message as one JSON line to ``outbox_dir / "sms.jsonl"``."""

    def __init__(self, outbox_dir: Path) -> None:
        self.path = Path(outbox_dir) / OUTBOX_FILE

    async def send(self, batch: list[SmsMessage]) -> list[DeliveryResult]:
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


class AliyunSmsBackend:
    """Sends each message with SendSms, ``concurrency`` requests at a time."""

    def __init__(self, settings: Settings, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        secret = settings.aliyun_access_key_secret
        if not settings.aliyun_access_key_id or secret is None or not secret.get_secret_value():
            raise InputError(
                "SMS backend 'aliyun' has no access key: set DNSL_ALIYUN_ACCESS_KEY_ID and "
                "DNSL_ALIYUN_ACCESS_KEY_SECRET, or choose DNSL_SMS_BACKEND=file"
            )
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._secret: SecretStr = secret
        self._sign_name = settings.sms_sign_name
        self._concurrency = concurrency
        timeout_ms = max(1, round(settings.sms_timeout_seconds * 1000))
        # The SDK bounds connecting and each socket read; this bounds the whole request,
        # so a server that answers a byte at a time cannot hold a run up.
        self._deadline = 3 * settings.sms_timeout_seconds
        self._client = Client(
            Config(
                access_key_id=settings.aliyun_access_key_id,
                access_key_secret=secret.get_secret_value(),
                endpoint=settings.aliyun_endpoint,
                protocol=settings.aliyun_protocol,
                read_timeout=timeout_ms,
                connect_timeout=timeout_ms,
            )
        )

    async def send(self, batch: list[SmsMessage]) -> list[DeliveryResult]:
        if not batch:
            return []
        slots = asyncio.Semaphore(self._concurrency)

        async def one(message: SmsMessage) -> DeliveryResult:
            async with slots:
                result = await self._send_one(message)
            return DeliveryResult(result.key, result.outcome, self._scrub(result.error))

        return list(await asyncio.gather(*(one(m) for m in batch)))

    def request_for(self, message: SmsMessage) -> SendSmsRequest:
        return SendSmsRequest(
            phone_numbers=provider_phone(message.phone),
            sign_name=self._sign_name,
            template_code=message.template_code,
            template_param=json.dumps(message.params, ensure_ascii=False),
            out_id=out_id(message.key),
        )

    async def _send_one(self, message: SmsMessage) -> DeliveryResult:
        key = message.key
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._client.send_sms_with_options_async(
                    self.request_for(message), RuntimeOptions()
                )
        except AlibabaCloudException as exc:
            # An HTTP 4xx/5xx answer with the provider's error body.
            data = exc.data if isinstance(exc.data, dict) else {}
            code = _present(exc.code) or _present(data.get("Code"))
            status = exc.status_code
            outcome: Outcome = "transient" if exc.retry_after else classify(code, status)
            text = _present(data.get("Message")) or _present(data.get("message"))
            error = self._refusal(message, code, text, status, _present(exc.request_id))
            return DeliveryResult(key, outcome, error)
        except UnretryableException as exc:
            # No usable answer: the SDK wraps transport failures and unreadable bodies.
            return DeliveryResult(key, "transient", _no_answer(exc.inner_exception))
        except TimeoutError:
            return DeliveryResult(
                key, "transient", f"SendSms got no answer within {self._deadline:g} s; retry later"
            )
        except Exception as exc:  # one message's failure must never stop the batch
            return DeliveryResult(key, "transient", f"SendSms failed ({_describe(exc)})")

        body = response.body
        code = _present(body.code) if body else None
        outcome = classify(code, response.status_code)
        if outcome == "sent":
            return DeliveryResult(key, "sent")
        text = _present(body.message) if body else None
        request_id = _present(body.request_id) if body else None
        error = self._refusal(message, code, text, response.status_code, request_id)
        return DeliveryResult(key, outcome, error)

    def _refusal(
        self,
        message: SmsMessage,
        code: str | None,
        text: str | None,
        status: int | None,
        request_id: str | None,
    ) -> str:
        facts = [f"HTTP {status}"] if status is not None else []
        if request_id:
            facts.append(f"request {request_id}")
        error = f"SendSms {code or 'refused without a code'}"
        if text:
            error += f": {text}"
        if facts:
            error += f" ({', '.join(facts)})"
        hint = self._hint(message, code)
        return f"{error}; {hint}" if hint else error

    def _hint(self, message: SmsMessage, code: str | None) -> str | None:
        if code is None:
            return None
        if code in _NUMBER_CODES:
            return "correct the account's mobile number"
        if code in _TEMPLATE_CODES:
            return f"check that template {message.template_code} exists and is approved"
        if code in _PARAMETER_CODES:
            return f"make the parameters fit template {message.template_code}"
        if code in _SIGNATURE_CODES:
            return f"check that signature {self._sign_name!r} (DNSL_SMS_SIGN_NAME) is approved"
        if code in _BALANCE_CODES:
            return "top up the SMS account; it is retried on a later run"
        if code in _CREDENTIAL_CODES or code.startswith(("InvalidAccessKeyId.", "Forbidden.")):
            return (
                "check DNSL_ALIYUN_ACCESS_KEY_ID, DNSL_ALIYUN_ACCESS_KEY_SECRET and the key's "
                "permission to send SMS; it is retried on a later run"
            )
        return None

    def _scrub(self, error: str | None) -> str | None:
        """The error text without the secret and within the ledger's length."""
        if error is None:
            return None
        secret = self._secret.get_secret_value()
        if secret:
            error = error.replace(secret, "**********")
        if len(error) > MAX_ERROR_LENGTH:
            error = error[: MAX_ERROR_LENGTH - 1] + "…"
        return error


def _present(value: object) -> str | None:
    """A code or message from the SDK, or None when it is missing (the SDK writes
    a missing field into its exceptions as the string 'None')."""
    if value is None:
        return None
    text = str(value).strip()
    return text if text and text != "None" else None


def _no_answer(cause: BaseException | None) -> str:
    if cause is None:
        return "SendSms got no usable answer; retry later"
    return f"SendSms got no usable answer ({_describe(cause)}); retry later"


def _describe(exc: BaseException) -> str:
    # RetryError keeps the transport's own words in .message.
    detail = getattr(exc, "message", None) or str(exc)
    # Transport errors may quote the request URL, whose query holds the phone number
    # and the template parameters: keep only scheme, host and port.
    detail = _QUERY.sub("", " ".join(str(detail).split()))[:200]
    return f"{type(exc).__name__}: {detail}"
