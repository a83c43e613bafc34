"""The provider's SMS backend: SendSms of Alibaba Cloud.

``AliyunSmsBackend`` calls SendSms (API version 2017-05-25), one request per message, a
few at a time. It signs each request itself (ACS3-HMAC-SHA256, the provider's v3
signature) and sends a batch through one ``aiohttp`` session whose connections are
kept alive from one request to the next, with one TLS context for the process. (The
provider's Python SDK opens a new HTTP session, TLS context and CA bundle for every
request: about 70 ms of CPU per message over https.) Each answer becomes one
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

Nothing is retried here: retries belong to the ledger, which tries a transient failure
again on a later run.

Error texts are built here from the provider's code, message, HTTP status and request
id, never from the answer's body as a whole, and are scrubbed of the access key secret
before they leave this module.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import certifi
from aiohttp.helpers import get_env_proxy_for_url
from pydantic import SecretStr
from yarl import URL

from dns_lifecycle.channels import DeliveryResult, Outcome, ResultSink
from dns_lifecycle.channels.sms import SmsMessage
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.secrets import scrub
from dns_lifecycle.core.settings import Settings

# The ledger keeps up to 1000 characters of error text.
MAX_ERROR_LENGTH = 500

# OutId is our reference on the provider's side (it comes back in delivery reports and
# lets an operator find a message there). Keys longer than this are shortened to a
# readable prefix plus a digest of the whole key, so distinct keys stay distinct.
MAX_OUT_ID_LENGTH = 64

DEFAULT_CONCURRENCY = 8

ACTION = "SendSms"
API_VERSION = "2017-05-25"
SIGNATURE_ALGORITHM = "ACS3-HMAC-SHA256"
# SendSms carries everything in the query; the body is empty, and so is its digest.
_EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

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


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading a CA bundle costs tens of milliseconds of CPU: once per process. The
    # same trust as before: certifi's bundle, which the provider's SDK used.
    return ssl.create_default_context(cafile=certifi.where())


def canonical_query(params: dict[str, str]) -> str:
    """The query as ACS3 signs it: sorted names, values percent-encoded (RFC 3986).

    It is also the query the request is sent with, so what is signed is what is sent."""
    return "&".join(f"{name}={quote(params[name], safe='~')}" for name in sorted(params))


def sign(method: str, query: str, headers: dict[str, str], key_id: str, secret: bytes) -> str:
    """The Authorization value of a request whose ``headers`` (lower-case names) are
    all signed, with an empty body."""
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    signed_headers = ";".join(names)
    canonical_request = (
        f"{method}\n/\n{query}\n{canonical_headers}\n{signed_headers}\n{_EMPTY_BODY_SHA256}"
    )
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = f"{SIGNATURE_ALGORITHM}\n{digest}"
    signature = hmac.new(secret, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return (
        f"{SIGNATURE_ALGORITHM} Credential={key_id},"
        f"SignedHeaders={signed_headers},Signature={signature}"
    )


@dataclass(frozen=True)
class _Proxy:
    url: URL | None = None
    auth: aiohttp.BasicAuth | None = None


def _env_proxy(url: str) -> _Proxy:
    """The proxy that $HTTP(S)_PROXY and $NO_PROXY name for ``url``, looked up once per
    batch. (aiohttp's ``trust_env`` looks it up, and ~/.netrc, again for every request,
    each in a thread: more CPU than the request itself. A ~/.netrc login for the
    endpoint would clash with the signed Authorization header anyway.)"""
    try:
        return _Proxy(*get_env_proxy_for_url(URL(url)))
    except LookupError:
        return _Proxy()


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
        self._key_id = settings.aliyun_access_key_id
        self._sign_name = settings.sms_sign_name
        self._concurrency = concurrency
        self._host = settings.aliyun_endpoint.strip().rstrip("/")
        self._url = f"{settings.aliyun_protocol}://{self._host}/"
        timeout = settings.sms_timeout_seconds
        # Connecting and each read are bounded by sms_timeout_seconds; the deadline
        # bounds the whole request, so a server that answers a byte at a time cannot
        # hold a run up.
        self._timeout = timeout
        self._deadline = 3 * timeout

    async def send(
        self, batch: list[SmsMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        if not batch:
            return []
        slots = asyncio.Semaphore(self._concurrency)
        proxy = _env_proxy(self._url)
        # One session per batch: a batch runs in one event loop, which its connections
        # belong to; the TLS context is shared by all. As many connections as requests
        # in flight, so none waits for a connection.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_tls_context(), limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeout, sock_read=self._timeout
            ),
        ) as client:

            async def one(message: SmsMessage) -> DeliveryResult:
                async with slots:
                    result = await self._send_one(client, message, proxy)
                    result = DeliveryResult(result.key, result.outcome, self._scrub(result.error))
                    if on_result is not None:
                        on_result(result)  # before the slot goes to the next message
                return result

            return list(await asyncio.gather(*(one(m) for m in batch)))

    def query_for(self, message: SmsMessage) -> dict[str, str]:
        """SendSms's parameters for ``message``."""
        return {
            "OutId": out_id(message.key),
            "PhoneNumbers": provider_phone(message.phone),
            "SignName": self._sign_name,
            "TemplateCode": message.template_code,
            "TemplateParam": json.dumps(message.params, ensure_ascii=False),
        }

    def _request_headers(self, query: str) -> dict[str, str]:
        headers = {
            "host": self._host,
            "x-acs-action": ACTION,
            "x-acs-content-sha256": _EMPTY_BODY_SHA256,
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-version": API_VERSION,
        }
        secret = self._secret.get_secret_value().encode("utf-8")
        headers["authorization"] = sign("POST", query, headers, self._key_id, secret)
        headers["accept"] = "application/json"
        return headers

    async def _send_one(
        self, client: aiohttp.ClientSession, message: SmsMessage, proxy: _Proxy
    ) -> DeliveryResult:
        key = message.key
        query = canonical_query(self.query_for(message))
        # encoded=True: the query goes out exactly as it was signed.
        url = URL(f"{self._url}?{query}", encoded=True)
        try:
            async with asyncio.timeout(self._deadline):
                async with client.post(
                    url,
                    headers=self._request_headers(query),
                    allow_redirects=False,
                    proxy=proxy.url,
                    proxy_auth=proxy.auth,
                ) as response:
                    status = response.status
                    retry_after = response.headers.get("x-acs-retry-after")
                    body = await response.read()
        except aiohttp.ServerTimeoutError:
            return DeliveryResult(
                key,
                "transient",
                f"SendSms got no usable answer (no reply within {self._timeout:g} s); retry later",
            )
        except aiohttp.ClientError as exc:
            # No usable answer: refused or dropped connection, a broken reply.
            return DeliveryResult(key, "transient", _no_answer(exc))
        except TimeoutError:
            return DeliveryResult(
                key, "transient", f"SendSms got no answer within {self._deadline:g} s; retry later"
            )
        except Exception as exc:  # one message's failure must never stop the batch
            return DeliveryResult(key, "transient", f"SendSms failed ({_describe(exc)})")

        answer = _json_object(body)
        if answer is None:
            return DeliveryResult(
                key,
                "transient",
                f"SendSms got no usable answer (HTTP {status}, the body is not a JSON "
                "object); retry later",
            )
        code = _present(answer.get("Code")) or _present(answer.get("code"))
        if status >= 400 and _retry_after(retry_after):
            outcome: Outcome = "transient"  # the provider says when to come back
        else:
            outcome = classify(code, status)
        if outcome == "sent":
            return DeliveryResult(key, "sent")
        text = _present(answer.get("Message")) or _present(answer.get("message"))
        request_id = _present(answer.get("RequestId")) or _present(answer.get("requestId"))
        error = self._refusal(message, code, text, status, request_id)
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
        error = scrub(error, [self._secret])
        if len(error) > MAX_ERROR_LENGTH:
            error = error[: MAX_ERROR_LENGTH - 1] + "…"
        return error


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _retry_after(value: str | None) -> bool:
    """Whether an x-acs-retry-after header asks for a positive wait."""
    try:
        return value is not None and int(value) > 0
    except ValueError:
        return False


def _present(value: object) -> str | None:
    """A code or message from an answer, or None when it is missing or empty (or the
    string 'None', which some of the provider's gateways write for a missing field)."""
    if value is None:
        return None
    text = str(value).strip()
    return text if text and text != "None" else None


def _no_answer(cause: BaseException | None) -> str:
    if cause is None:
        return "SendSms got no usable answer; retry later"
    return f"SendSms got no usable answer ({_describe(cause)}); retry later"


def _describe(exc: BaseException) -> str:
    # Some transport errors keep their words in .message.
    detail = getattr(exc, "message", None) or str(exc)
    # Transport errors may quote the request URL, whose query holds the phone number
    # and the template parameters: keep only scheme, host and port.
    detail = _QUERY.sub("", " ".join(str(detail).split()))[:200]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
