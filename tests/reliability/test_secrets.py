"""Secrets never leave in what a failing run writes: logs (Prefect's and the standard
library's), console output, artifacts, report failures, ledger errors and exceptions;
nor where the settings are shown: the `settings` artifact, `settings show`, the error of
a bad settings block.

Every server here fails, and each fails in a way that would carry a secret out if
the code let it: an SMTP server that quotes the AUTH exchange in its 535 reply, an SMS
provider and a registrar and a help desk that quote our credentials back in their
error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from datetime import timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler
from pydantic import SecretStr
from sqlmodel import select

from dns_lifecycle.admin.cli import main
from dns_lifecycle.admin.inventory import export_state
from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email.smtp import SmtpEmailBackend
from dns_lifecycle.core.secrets import MASK
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.core.settings_block import (
    AliyunGroup,
    ClustersGroup,
    DnsLifecycleSettings,
    EmailGroup,
    RegistrarGroup,
    RulesGroup,
    TicketsGroup,
)
from flows.artifacts import summary_markdown
from flows.base import report_of
from flows.common import StepReport, open_run
from flows.delivery import deliver_pending
from flows.expire import expire_instances
from flows.release import release_due, release_instances
from flows.reminders import plan_reminders, send_renewal_reminders
from models import Domain, Notification, Ticket
from tests.factories import make_account, make_instance
from tests.http_sink import HttpSink, Reply, SeenRequest
from tests.reliability.conftest import AS_OF, SENDER, release_fleet, reminder_fleet
from tests.smtp_server import SmtpTestServer

SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-Pa55-wOrd-7Qx"
SMS_SECRET = "sms-Secret-K3y-9Zr"
WEBHOOK_TOKEN = "hook-T0ken-4Lm"
REGISTRAR_TOKEN = "reg-T0ken-8Vb"
CLUSTER_KEY = "pdns-K3y-2Wq"
SECRETS = [SMTP_PASSWORD, SMS_SECRET, WEBHOOK_TOKEN, REGISTRAR_TOKEN, CLUSTER_KEY]
# The forms a secret travels in: as is, and inside SMTP AUTH PLAIN / LOGIN (LOGIN sends
# the user's base64 next to the password's).
ENCODED = [
    base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode(),
    base64.b64encode(SMTP_PASSWORD.encode()).decode(),
    base64.b64encode(SMTP_USER.encode()).decode(),
]


def _echo_credentials(request: SeenRequest) -> Reply:
    """A server that quotes what it was sent, and our secrets, in its error."""
    quoted = f"{request.headers} {request.raw_query} {request.body!r}"
    if request.path.startswith("/domains/"):
        return Reply(400, {"code": "bad_token", "message": f"rejected {quoted}"})
    if request.path.startswith("/hooks"):
        return Reply(500, f"cannot file ticket: {quoted}")
    return Reply(
        500,
        {
            "Code": "isp.SYSTEM_ERROR",
            "Message": f"signature for {SMS_SECRET} {quoted}",
            "RequestId": "REQ-ECHO",
        },
    )


def _assert_clean(where: str, text: str) -> None:
    for secret in SECRETS + ENCODED:
        assert secret not in text, f"{where} contains a secret"


# The test server asks for a login over plain TCP on loopback; aiosmtpd warns about it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_a_failing_run_never_writes_a_secret(db, flow_env, monkeypatch, caplog, capfd):
    """Logs, console, artifacts, reports, ledger errors and exceptions of a run whose
    every server fails hold no password, key secret or token."""
    reminder_fleet(db, 2, prefix="r")
    release_fleet(db, 1, registrar="hichina")  # inst-0's release calls the registrar
    with db.session() as s:  # and a domain at another registrar, for a ticket
        make_account(s, "acct-t")
        make_instance(
            s,
            "inst-t",
            account="acct-t",
            state="expired",
            expires_at=AS_OF - timedelta(days=8),
            domains=[{"name": "t.example.org", "registrar": "other", "records": []}],
        )
        s.commit()
    caplog.set_level(logging.DEBUG)
    # The test SMTP server (aiosmtpd, in this process) logs the replies it sends, as any
    # server's own log would: that is the other side's record, not one of ours.
    caplog.set_level(logging.INFO, logger="mail.log")

    with (
        SmtpTestServer(auth=(SMTP_USER, "the-real-password"), echo_auth=True) as smtp,
        HttpSink(_echo_credentials) as http,
    ):
        env = {
            "DNSL_EMAIL_BACKEND": "smtp",
            "DNSL_EMAIL_FROM": SENDER,
            "DNSL_SMTP_HOST": "127.0.0.1",
            "DNSL_SMTP_PORT": str(smtp.port),
            "DNSL_SMTP_USERNAME": SMTP_USER,
            "DNSL_SMTP_PASSWORD": SMTP_PASSWORD,
            "DNSL_SMS_BACKEND": "aliyun",
            "DNSL_ALIYUN_ACCESS_KEY_ID": "LTAI-key-id",
            "DNSL_ALIYUN_ACCESS_KEY_SECRET": SMS_SECRET,
            "DNSL_ALIYUN_ENDPOINT": http.address,
            "DNSL_ALIYUN_PROTOCOL": "http",
            "DNSL_REGISTRAR_BACKEND": "http",
            "DNSL_REGISTRAR_URL": http.url,
            "DNSL_REGISTRAR_TOKEN": REGISTRAR_TOKEN,
            "DNSL_TICKET_SINK": "webhook",
            "DNSL_TICKET_WEBHOOK_URL": f"{http.url}/hooks/tickets",
            "DNSL_TICKET_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "DNSL_TICKET_WEBHOOK_ATTEMPTS": "1",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        # Through Prefect, as deployed: both steps end Failed.
        states = [
            send_renewal_reminders(as_of=AS_OF, return_state=True),
            release_instances(as_of=AS_OF, return_state=True),
        ]
        assert [s.is_failed() for s in states] == [True, True]
        for state in states:
            # A step over its failure threshold ends Failed with one line and the
            # report of what it did, not an exception.
            failed_report = report_of(state)
            assert isinstance(failed_report, StepReport)
            _assert_clean("a failed step's report", failed_report.model_dump_json())
            _assert_clean("a state message", state.message or "")

        # The same steps as plain functions: their reports and summaries.
        settings = Settings()
        assert settings.smtp_password.get_secret_value() == SMTP_PASSWORD  # the env took
        with open_run(AS_OF, False, None, settings=settings) as ctx:
            reports = [plan_reminders(ctx), release_due(ctx)]
            tally = deliver_pending(ctx)
        assert tally.counts["email_transient"] and tally.counts["sms_transient"]
        for report in reports:
            _assert_clean("a report", report.model_dump_json())
            _assert_clean("a summary", summary_markdown(report))
        _assert_clean("a tally", tally.model_dump_json())
        # What the servers said did reach the records (with the secrets taken out).
        assert any("isp.SYSTEM_ERROR" in f for f in tally.failures)
        assert any("login" in f and "535" in f for f in tally.failures)
        # The registrar's refusal became a ticket for a person, with its words.
        with db.session() as s:
            refused = [t for t in s.exec(select(Ticket)) if t.reason == "registrar_failed"]
        assert refused and "HTTP 400" in refused[0].details["problem"]
        _assert_clean("a ticket", str(refused[0].details))

    APILogHandler().flush()  # logs reach the API in the background; make them land
    with get_client(sync_client=True) as client:
        run_ids = [s.state_details.flow_run_id for s in states]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
        )
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
    assert artifacts and logs
    _assert_clean("an artifact", " ".join(str(a.data) + str(a.description) for a in artifacts))
    _assert_clean("a Prefect log", " ".join(log.message for log in logs))
    _assert_clean("the standard log", caplog.text)
    out, err = capfd.readouterr()
    _assert_clean("the console", out + err)

    with db.session() as s:
        errors = [n.error or "" for n in s.exec(select(Notification))]
        errors += [t.sink_error or "" for t in s.exec(select(Ticket))]
        exported = str(export_state(s))
        assert s.exec(select(Domain)).all()
    assert any("HTTP 500" in e for e in errors)  # the webhook's error was recorded
    assert any("535" in e and MASK in e for e in errors)  # the echoed AUTH, masked
    _assert_clean("a ledger error", " ".join(errors))
    _assert_clean("the export", exported)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_an_smtp_server_that_quotes_the_auth_exchange_never_shows_the_password(mechanism):
    """A 535 reply quoting what AUTH PLAIN or LOGIN sent reaches the error with every
    encoded form of the password masked."""
    with SmtpTestServer(
        auth=(SMTP_USER, "the-real-password"), auth_mechanisms=(mechanism,), echo_auth=True
    ) as smtp:
        settings = Settings(
            email_backend="smtp",
            email_from=SENDER,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_username=SMTP_USER,
            smtp_password=SMTP_PASSWORD,
        )
        message = EmailMessage(
            "reminder:inst-1:30d:email", "a@example.com", "Hi", "Hi", "<p>Hi</p>"
        )
        (result,) = asyncio.run(SmtpEmailBackend(settings).send([message]))
    assert result.outcome == "transient" and result.error is not None
    assert "535" in result.error and MASK in result.error  # the server did quote it
    _assert_clean("the error", result.error)


def test_secrets_kept_in_the_settings_block_are_masked_wherever_settings_are_shown(
    db, flow_env, monkeypatch, capsys
):
    """The `settings` artifact, logs, the one-line error of a bad block, an export and
    `settings show` hold none of the secrets a settings block keeps."""
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    secrets = {
        "email": EmailGroup(smtp_username=SMTP_USER, smtp_password=SecretStr(SMTP_PASSWORD)),
        "aliyun": AliyunGroup(aliyun_access_key_secret=SecretStr(SMS_SECRET)),
        "registrar": RegistrarGroup(registrar_token=SecretStr(REGISTRAR_TOKEN)),
        "tickets": TicketsGroup(ticket_webhook_token=SecretStr(WEBHOOK_TOKEN)),
        "clusters": ClustersGroup(cluster_api_keys={"paid-1": SecretStr(CLUSTER_KEY)}),
    }
    DnsLifecycleSettings(**secrets).save(name)
    good = expire_instances(as_of=AS_OF, return_state=True)
    assert good.is_completed()
    # The same secrets beside a bad value: the run fails at its start.
    DnsLifecycleSettings(**secrets, rules=RulesGroup(grace_days=0)).save(name, overwrite=True)
    bad = expire_instances(as_of=AS_OF, return_state=True)
    assert bad.is_failed() and "Lifecycle rules › Grace period" in (bad.message or "")
    _assert_clean("a bad block's error", bad.message or "")

    DnsLifecycleSettings(**secrets).save(name, overwrite=True)
    assert main(["settings", "show"]) == 0
    assert main(["settings", "show", "--json"]) == 0
    shown = capsys.readouterr().out
    assert f"block {name}" in shown and MASK in shown
    _assert_clean("settings show", shown)
    with db.session() as s:
        _assert_clean("an export", json.dumps(export_state(s), default=str))

    APILogHandler().flush()
    run_ids = [s.state_details.flow_run_id for s in (good, bad)]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
        )
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
    settings_artifacts = [a for a in artifacts if a.key == "settings"]
    data = settings_artifacts[0].data
    rows = json.loads(data) if isinstance(data, str) else data
    masked = MASK.replace("*", "\\*")  # Markdown-escaped for the UI
    assert {r["setting"]: r["value"] for r in rows}["smtp_password"] == masked
    _assert_clean("the settings artifact", " ".join(str(a.data) for a in settings_artifacts))
    _assert_clean("a Prefect log", " ".join(log.message for log in logs))
