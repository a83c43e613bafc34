"""The SMS channel: the file outbox, and SendSms against a provider played by a local
HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path

import pytest
from darabonba.exceptions import RetryError

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.sms import SmsMessage
from dns_lifecycle.channels.sms.aliyun import (
    MAX_OUT_ID_LENGTH,
    AliyunSmsBackend,
    _no_answer,
    classify,
    out_id,
)
from dns_lifecycle.channels.sms.file import FileSmsBackend
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import Settings
from tests.acs3 import acs3_signature
from tests.http_sink import HttpSink, Reply, SeenRequest

KEY_ID = "LTAI-test-key-id"
SECRET = "test-secret-Zq8vN3pW"
SIGN_NAME = "云解析"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # The SDK sends plain-HTTP requests through $HTTP_PROXY when one is set.
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def make_settings(tmp_path: Path, endpoint: str, **overrides) -> Settings:
    values = {
        "database_url": f"sqlite:///{tmp_path / 'unused.db'}",
        "outbox_dir": tmp_path / "outbox",
        "sms_backend": "aliyun",
        "sms_sign_name": SIGN_NAME,
        "aliyun_access_key_id": KEY_ID,
        "aliyun_access_key_secret": SECRET,
        "aliyun_endpoint": endpoint,
        "aliyun_protocol": "http",
        "sms_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


def message(key: str = "n1:sms", phone: str = "+8613900001234", **params: str) -> SmsMessage:
    return SmsMessage(
        key=key,
        phone=phone,
        template_code="SMS_DNSL_REMINDER",
        params=params or {"instance": "dns-01", "days": "7"},
        text="您的实例 dns-01 将在 7 天后到期。",
    )


def answer(code: str, text: str = "", status: int = 200) -> Reply:
    return Reply(status, {"Code": code, "Message": text or code, "RequestId": "REQ-1"})


ACCEPTED = answer("OK", "OK")


def send(tmp_path: Path, responder, batch: list[SmsMessage], **overrides):
    """Send ``batch`` through AliyunSmsBackend to a sink; the results and the sink."""
    with HttpSink(responder) as sink:
        backend = AliyunSmsBackend(make_settings(tmp_path, sink.address, **overrides))
        results = asyncio.run(backend.send(batch))
    return results, sink


def send_one(tmp_path: Path, reply: Reply, **overrides) -> DeliveryResult:
    results, _ = send(tmp_path, lambda _request: reply, [message()], **overrides)
    return results[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the request ---------------------------------------------------------------------


def test_request_carries_action_number_sign_template_params_and_out_id(tmp_path):
    """SendSms names the action, the number without '+', the sign, template, params, OutId."""
    msg = message("reminder:i-1:2025-03-01T00:00:00+00:00:7:sms", instance="解析-01", days="7")
    _, sink = send(tmp_path, lambda _r: ACCEPTED, [msg])

    (seen,) = sink.requests
    assert seen.method == "POST"
    assert seen.headers["x-acs-action"] == "SendSms"
    assert seen.headers["x-acs-version"] == "2017-05-25"
    assert seen.query["PhoneNumbers"] == "8613900001234"
    assert seen.query["SignName"] == SIGN_NAME
    assert seen.query["TemplateCode"] == "SMS_DNSL_REMINDER"
    assert json.loads(seen.query["TemplateParam"]) == {"instance": "解析-01", "days": "7"}
    assert seen.query["OutId"] == "reminder:i-1:2025-03-01T00:00:00+00:00:7:sms"


def test_request_is_signed_with_the_configured_key(tmp_path):
    """The Authorization header names the key id and its signature checks with the secret."""
    _, sink = send(tmp_path, lambda _r: ACCEPTED, [message()])

    (seen,) = sink.requests
    authorization = seen.headers["authorization"]
    assert authorization.startswith(f"ACS3-HMAC-SHA256 Credential={KEY_ID},")
    assert authorization.endswith(f"Signature={acs3_signature(seen, SECRET)}")
    assert SECRET not in authorization


def test_requests_go_through_the_proxy_the_environment_names(tmp_path, monkeypatch):
    """$HTTP_PROXY is honoured (the sink plays the proxy, the endpoint has no server),
    and $NO_PROXY takes the endpoint out of it again."""
    endpoint = f"127.0.0.1:{free_port()}"
    monkeypatch.delenv("no_proxy", raising=False)
    with HttpSink(lambda _r: ACCEPTED) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.address}")
        backend = AliyunSmsBackend(make_settings(tmp_path, endpoint))
        (through,) = asyncio.run(backend.send([message()]))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        (direct,) = asyncio.run(backend.send([message("n2:sms")]))
    assert through.outcome == "sent"
    assert [r.query["OutId"] for r in proxy.requests] == ["n1:sms"]
    assert proxy.requests[0].headers["host"] == endpoint  # signed for the endpoint
    assert direct.outcome == "transient"  # straight to the endpoint: nobody there


def test_secret_never_goes_on_the_wire(tmp_path):
    """Neither the URL, the headers nor the body of a request contain the secret."""
    _, sink = send(tmp_path, lambda _r: ACCEPTED, [message()])

    (seen,) = sink.requests
    wire = seen.raw_query + json.dumps(seen.headers) + seen.body.decode()
    assert SECRET not in wire


def test_long_key_becomes_a_short_out_id_that_stays_distinct():
    """Keys longer than the OutId limit are shortened to distinct ids within it."""
    first, second = "x" * 150 + ":email", "x" * 150 + ":sms"
    assert len(out_id(first)) == len(out_id(second)) == MAX_OUT_ID_LENGTH
    assert out_id(first) != out_id(second)
    assert out_id("short:sms") == "short:sms"


# --- outcomes --------------------------------------------------------------------------


def test_ok_is_sent(tmp_path):
    """Code OK is a sent message with no error."""
    assert send_one(tmp_path, ACCEPTED) == DeliveryResult("n1:sms", "sent", None)


def test_illegal_number_is_permanent_with_the_code(tmp_path):
    """isv.MOBILE_NUMBER_ILLEGAL is permanent, and the error names the code and the fix."""
    result = send_one(tmp_path, answer("isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile number"))

    assert result.outcome == "permanent"
    assert "isv.MOBILE_NUMBER_ILLEGAL" in result.error
    assert "invalid mobile number" in result.error
    assert "mobile number" in result.error.split(";")[-1]


@pytest.mark.parametrize(
    "code",
    [
        "isv.INVALID_PARAMETERS",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.BLACK_KEY_CONTROL_LIMIT",
    ],
)
def test_errors_of_the_message_are_permanent(tmp_path, code):
    """A refusal that sending the same message again cannot fix is permanent."""
    result = send_one(tmp_path, answer(code))
    assert (result.outcome, code in result.error) == ("permanent", True)


def test_unknown_code_is_permanent_with_code_and_message(tmp_path):
    """A code this module does not know is permanent, keeping the provider's words."""
    result = send_one(tmp_path, answer("isv.SOMETHING_NEW", "a new kind of refusal"))

    assert result.outcome == "permanent"
    assert "isv.SOMETHING_NEW" in result.error
    assert "a new kind of refusal" in result.error


def test_throttling_is_transient(tmp_path):
    """isv.BUSINESS_LIMIT_CONTROL is transient."""
    result = send_one(tmp_path, answer("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控"))
    assert result.outcome == "transient"
    assert "isv.BUSINESS_LIMIT_CONTROL" in result.error


@pytest.mark.parametrize(
    "code", ["isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "isp.SYSTEM_ERROR"]
)
def test_account_and_provider_problems_are_transient(tmp_path, code):
    """Low balance, a suspended account and a provider system error are transient."""
    result = send_one(tmp_path, answer(code))
    assert (result.outcome, code in result.error) == ("transient", True)


def test_http_500_is_transient(tmp_path):
    """HTTP 500 with the provider's error body is transient, with status and code."""
    result = send_one(tmp_path, answer("InternalError", "The request processing has failed", 500))

    assert result.outcome == "transient"
    assert "HTTP 500" in result.error
    assert "InternalError" in result.error


def test_http_502_without_json_is_transient(tmp_path):
    """A 5xx whose body is not JSON (e.g. a proxy's page) is transient."""
    result = send_one(tmp_path, Reply(502, "<html>Bad Gateway</html>"))
    assert result.outcome == "transient"


def test_http_429_throttling_is_transient(tmp_path):
    """HTTP 429 Throttling.User is transient."""
    result = send_one(tmp_path, answer("Throttling.User", "Request was denied", 429))
    assert result.outcome == "transient"


def test_bad_access_key_is_transient_and_says_what_to_check(tmp_path):
    """An unknown access key is transient (an operator fixes it) and names the settings."""
    result = send_one(tmp_path, answer("InvalidAccessKeyId.NotFound", "not exist", 404))

    assert result.outcome == "transient"
    assert "InvalidAccessKeyId.NotFound" in result.error
    assert "DNSL_ALIYUN_ACCESS_KEY_ID" in result.error


def test_http_400_with_a_business_code_is_permanent(tmp_path):
    """A 4xx refusal with a code about the request itself is permanent."""
    result = send_one(tmp_path, answer("MissingPhoneNumbers", "PhoneNumbers is mandatory", 400))
    assert result.outcome == "permanent"
    assert "HTTP 400" in result.error


def test_timeout_is_transient(tmp_path):
    """A provider slower than sms_timeout_seconds is transient."""
    slow = Reply(200, {"Code": "OK"}, delay=30)
    result = send_one(tmp_path, slow, sms_timeout_seconds=0.2)

    assert result.outcome == "transient"
    assert "no usable answer" in result.error


def test_dropped_connection_is_transient(tmp_path):
    """A connection closed without an answer is transient."""
    result = send_one(tmp_path, Reply(drop=True))
    assert result.outcome == "transient"


def test_refused_connection_is_transient(tmp_path):
    """Nobody listening at the endpoint is transient."""
    backend = AliyunSmsBackend(make_settings(tmp_path, f"127.0.0.1:{free_port()}"))
    (result,) = asyncio.run(backend.send([message()]))
    assert result.outcome == "transient"


def test_classify_is_decided_by_code_and_status():
    """OK under 400 is sent; 5xx and 429 are transient whatever the code."""
    assert classify("OK", 200) == "sent"
    assert classify("OK", 503) == "transient"
    assert classify(None, 500) == "transient"
    assert classify(None, 400) == "permanent"
    assert classify("Throttling.Api", 400) == "transient"


# --- batches ---------------------------------------------------------------------------


def test_one_bad_number_does_not_stop_the_batch(tmp_path):
    """In a batch with one bad number the others are sent, results in batch order."""

    def responder(request: SeenRequest) -> Reply:
        if request.query["PhoneNumbers"] == "860000":
            return answer("isv.MOBILE_NUMBER_ILLEGAL")
        return ACCEPTED

    batch = [
        message("a:sms", "+8613900000001"),
        message("b:sms", "+860000"),
        message("c:sms", "+8613900000003"),
    ]
    results, sink = send(tmp_path, responder, batch)

    assert [(r.key, r.outcome) for r in results] == [
        ("a:sms", "sent"),
        ("b:sms", "permanent"),
        ("c:sms", "sent"),
    ]
    assert len(sink.requests) == 3


def test_every_failure_mode_in_one_batch_is_reported_per_message(tmp_path):
    """Timeouts, drops, 5xx and refusals in one batch each give their own result."""
    replies = {
        "ok": ACCEPTED,
        "slow": Reply(200, {"Code": "OK"}, delay=30),
        "drop": Reply(drop=True),
        "500": answer("isp.SYSTEM_ERROR", "boom", 500),
        "bad": answer("isv.MOBILE_NUMBER_ILLEGAL"),
    }
    batch = [message(f"{name}:sms") for name in replies]
    results, _ = send(
        tmp_path,
        lambda r: replies[r.query["OutId"].split(":")[0]],
        batch,
        sms_timeout_seconds=0.3,
    )

    assert [r.outcome for r in results] == [
        "sent",
        "transient",
        "transient",
        "transient",
        "permanent",
    ]


def test_requests_in_flight_are_bounded_by_concurrency(tmp_path):
    """No more than ``concurrency`` requests are open at once."""
    lock = threading.Lock()
    in_flight = highest = 0

    def responder(_request: SeenRequest) -> Reply:
        nonlocal in_flight, highest
        with lock:
            in_flight += 1
            highest = max(highest, in_flight)
        threading.Event().wait(0.02)
        with lock:
            in_flight -= 1
        return ACCEPTED

    batch = [message(f"m{i}:sms") for i in range(8)]
    with HttpSink(responder) as sink:
        backend = AliyunSmsBackend(make_settings(tmp_path, sink.address), concurrency=2)
        results = asyncio.run(backend.send(batch))

    assert [r.outcome for r in results] == ["sent"] * 8
    assert 1 <= highest <= 2


def test_empty_batch_sends_nothing(tmp_path):
    """An empty batch makes no request."""
    results, sink = send(tmp_path, lambda _r: ACCEPTED, [])
    assert (results, sink.requests) == ([], [])


# --- the secret ------------------------------------------------------------------------


def test_secret_never_appears_in_error_text(tmp_path):
    """No error text holds the secret, even when the provider's answer quotes it."""
    echo = f"signature mismatch, server string to sign used {SECRET}"
    replies = {
        "refused": answer("isv.SOMETHING_NEW", echo),
        "denied": answer("SignatureDoesNotMatch", echo, 400),
        "crashed": answer("InternalError", echo, 500),
        "garbled": Reply(502, f"<html>{echo}</html>"),
        "dropped": Reply(drop=True),
        "slow": Reply(200, {"Code": "OK"}, delay=30),
    }
    batch = [message(f"{name}:sms") for name in replies]
    results, _ = send(
        tmp_path,
        lambda r: replies[r.query["OutId"].split(":")[0]],
        batch,
        sms_timeout_seconds=0.3,
    )

    assert all(r.outcome != "sent" and r.error for r in results)
    assert not [r.error for r in results if SECRET in r.error]


def test_transport_error_text_drops_the_request_query():
    """A transport error quoting the URL keeps the host but not the number or params."""
    cause = RetryError(
        "Connection timeout to host http://127.0.0.1:9/?OutId=a&PhoneNumbers=8613900001234"
    )
    error = _no_answer(cause)

    assert "http://127.0.0.1:9/" in error
    assert "8613900001234" not in error


def test_missing_access_key_is_refused_at_construction(tmp_path):
    """Without an access key the backend refuses to start and names the settings."""
    settings = make_settings(
        tmp_path, "127.0.0.1:1", aliyun_access_key_id=None, aliyun_access_key_secret=None
    )
    with pytest.raises(InputError, match="DNSL_ALIYUN_ACCESS_KEY_ID"):
        AliyunSmsBackend(settings)


# --- the file outbox -------------------------------------------------------------------


def test_file_backend_writes_one_json_line_per_message_in_utf8(tmp_path):
    """Each message is one JSON line, Chinese text kept as UTF-8, not escaped."""
    backend = FileSmsBackend(tmp_path / "outbox")
    batch = [message("a:sms", instance="解析-01"), message("b:sms")]

    results = asyncio.run(backend.send(batch))

    raw = (tmp_path / "outbox" / "sms.jsonl").read_bytes()
    lines = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert results == [DeliveryResult("a:sms", "sent"), DeliveryResult("b:sms", "sent")]
    assert [line["key"] for line in lines] == ["a:sms", "b:sms"]
    assert lines[0] == {
        "key": "a:sms",
        "phone": "+8613900001234",
        "template_code": "SMS_DNSL_REMINDER",
        "params": {"instance": "解析-01"},
        "text": "您的实例 dns-01 将在 7 天后到期。",
    }
    assert "您的实例".encode() in raw
    assert b"\\u" not in raw


def test_file_backend_appends_across_batches(tmp_path):
    """A later batch is added after the earlier lines."""
    backend = FileSmsBackend(tmp_path)
    asyncio.run(backend.send([message("a:sms")]))
    asyncio.run(backend.send([message("b:sms")]))

    lines = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a:sms", "b:sms"]


def test_file_backend_writes_a_key_already_in_the_outbox_only_once(tmp_path):
    """A message whose key a killed run already wrote (unrecorded) is not written again
    by the next run's backend, and is reported sent."""
    asyncio.run(FileSmsBackend(tmp_path).send([message("a:sms"), message("b:sms")]))
    rerun = FileSmsBackend(tmp_path)

    results = asyncio.run(rerun.send([message("a:sms"), message("c:sms")]))

    lines = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a:sms", "b:sms", "c:sms"]
    assert results == [DeliveryResult("a:sms", "sent"), DeliveryResult("c:sms", "sent")]


def test_file_backend_puts_a_line_after_a_cut_one_on_its_own_line(tmp_path):
    """A line cut short by a kill does not swallow the next message's line."""
    (tmp_path / "sms.jsonl").write_text('{"key": "a:sms", "pho', encoding="utf-8")

    asyncio.run(FileSmsBackend(tmp_path).send([message("a:sms")]))

    lines = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1])["key"] == "a:sms" and len(lines) == 2
