"""The SMTP backend (production): aiosmtplib over a small pool of connections.

How it classifies each message:

    accepted                                    sent
    4xx reply, disconnect, timeout, refused     transient (retry on a later run)
    5xx reply (550, 554...)                     permanent (a person must act)
    530 "authentication required"               transient (fix the settings; the
                                                message is not at fault)
    CR or LF in subject or recipient            permanent, and nothing is sent

It spreads a batch over ``smtp_connections`` connections used at once, each carrying
many messages in turn. A connection that is lost (disconnect, timeout, 421) is opened
again for the rest; a worker gives up when it cannot connect, or when its connection is
lost for two messages in a row, so a server that drops everything does not cost one
connection per message. Whatever no connection could carry is returned as transient
with the reason. ``send`` never raises for a delivery failure.

Every error text is scrubbed of the password in each form that AUTH sends it
(``auth_forms``): a server may quote the AUTH argument in its 535 reply.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiosmtplib
from pydantic import SecretStr

from dns_lifecycle.channels import DeliveryResult, Outcome, ResultSink
from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email.message import build_mime, recipient_of, sender_parts
from dns_lifecycle.core.errors import PermanentDeliveryError
from dns_lifecycle.core.secrets import reveal, scrub
from dns_lifecycle.core.settings import Settings


def auth_forms(username: str | None, password: SecretStr | str | None) -> list[str]:
    """Every form in which SMTP AUTH sends the password: as is, AUTH PLAIN's base64 of
    "\\0user\\0password", and AUTH LOGIN's base64 of the password and of the user
    (sent next to it: a server that echoes one may echo both)."""
    secret = reveal(password)
    if not secret:
        return []

    def b64(value: str) -> str:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")

    forms = [secret, b64(f"\0{username or ''}\0{secret}"), b64(secret)]
    if username:
        forms.append(b64(username))
    return forms


@dataclass(frozen=True)
class _Attempt:
    result: DeliveryResult
    # The server answered this message with a reply that says the connection is in
    # step (anything but 421, a timeout or a lost connection).
    answered: bool


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SmtpEmailBackend:
    """Sends through an SMTP server with aiosmtplib, over a small pool of connections.

    ``tls_context`` overrides the system trust store (a private CA, tests);
    ``clock`` gives the Date header, stamped once per batch at hand-over, which is what
    RFC 5322 means by it."""

    def __init__(
        self,
        settings: Settings,
        *,
        tls_context: ssl.SSLContext | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._settings = settings
        self._sender = settings.email_from
        _, self._envelope_from = sender_parts(settings.email_from)
        self._tls_context = tls_context
        self._clock = clock
        self._server = f"{settings.smtp_host}:{settings.smtp_port}"
        self._secrets = auth_forms(settings.smtp_username, settings.smtp_password)

    async def send(
        self, batch: list[EmailMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        if not batch:
            return []
        date = self._clock()
        results: list[DeliveryResult | None] = [None] * len(batch)
        pending = deque(range(len(batch)))
        stops: list[str] = []
        workers = min(self._settings.smtp_connections, len(batch))
        await asyncio.gather(
            *(self._work(batch, pending, results, stops, date, on_result) for _ in range(workers))
        )
        reason = stops[-1] if stops else "no connection was left to carry it"
        return [
            result if result is not None else self._unattempted(message, reason)
            for message, result in zip(batch, results, strict=True)
        ]

    def _unattempted(self, message: EmailMessage, reason: str) -> DeliveryResult:
        # A message that could never be sent should not wait for the server to come back.
        try:
            recipient_of(message)
        except PermanentDeliveryError as exc:
            return DeliveryResult(message.key, "permanent", str(exc))
        return DeliveryResult(message.key, "transient", f"not sent: {reason}")

    async def _work(
        self,
        batch: list[EmailMessage],
        pending: deque[int],
        results: list[DeliveryResult | None],
        stops: list[str],
        date: datetime,
        on_result: ResultSink | None,
    ) -> None:
        """One connection's share: take messages from ``pending`` until it is empty."""
        smtp: aiosmtplib.SMTP | None = None
        lost_in_a_row = 0  # messages that ended with the connection lost, since a reply
        last_error = ""
        try:
            while pending:
                if smtp is None or not smtp.is_connected:
                    if lost_in_a_row >= 2:
                        # Reconnecting once more would only cost one connection per message.
                        stops.append(
                            f"the connection to {self._server} was lost twice in a row "
                            f"without a reply ({last_error})"
                        )
                        return
                    try:
                        smtp = await self._connect()
                    except Exception as exc:
                        stops.append(self._scrub(self._connect_failure(exc)))
                        return
                    if not pending:
                        return
                index = pending.popleft()
                message = batch[index]
                try:
                    data = build_mime(message, self._sender, date=date)
                    recipient = recipient_of(message)
                except PermanentDeliveryError as exc:
                    refused = DeliveryResult(message.key, "permanent", str(exc))
                    results[index] = refused
                    if on_result is not None:
                        on_result(refused)
                    continue
                attempt = await self._deliver(smtp, message.key, recipient, data)
                results[index] = attempt.result
                if on_result is not None:
                    on_result(attempt.result)
                if attempt.answered:
                    lost_in_a_row = 0
                else:
                    lost_in_a_row += 1
                    last_error = attempt.result.error or ""
        except Exception as exc:
            # Not expected; the messages left are reported as not sent, with this reason.
            stops.append(self._scrub(f"unexpected error talking to {self._server}: {exc!r}"))
        finally:
            if smtp is not None:
                await _quit(smtp)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.smtp_timeout_seconds,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            tls_context=self._tls_context,
            # The sender's domain names this client: a real FQDN, and no DNS look-up.
            local_hostname=self._envelope_from.rsplit("@", 1)[1],
        )
        try:
            await smtp.connect()
            if s.smtp_username:
                await smtp.login(s.smtp_username, reveal(s.smtp_password))
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _connect_failure(self, exc: Exception) -> str:
        s = self._settings
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return (
                f"SMTP login to {self._server} as {s.smtp_username!r} was refused "
                f"({exc.code} {exc.message}); check DNSL_SMTP_USERNAME and DNSL_SMTP_PASSWORD"
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return (
                f"the SMTP server {self._server} refused the connection: {exc.code} {exc.message}"
            )
        if isinstance(exc, ssl.SSLError | ssl.CertificateError):
            return (
                f"TLS with {self._server} failed: {exc}; check DNSL_SMTP_SECURITY and the "
                "server's certificate"
            )
        if isinstance(exc, aiosmtplib.SMTPException):
            return f"cannot use the SMTP server {self._server}: {exc.message}"
        return f"cannot connect to the SMTP server {self._server}: {exc}"

    async def _deliver(
        self, smtp: aiosmtplib.SMTP, key: str, recipient: str, data: bytes
    ) -> _Attempt:
        try:
            await smtp.sendmail(self._envelope_from, [recipient], data)
        except aiosmtplib.SMTPTimeoutError:
            return self._lost(
                key,
                f"no reply from {self._server} within {self._settings.smtp_timeout_seconds}s "
                f"while sending to {recipient}; it may have been delivered (same Message-ID)",
            )
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            smtp.close()
            return self._lost(
                key, f"connection to {self._server} lost while sending to {recipient}: {exc}"
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return self._replied(smtp, key, "RCPT TO", recipient, refused.code, refused.message)
        except aiosmtplib.SMTPSenderRefused as exc:
            return self._replied(smtp, key, "MAIL FROM", exc.sender, exc.code, exc.message)
        except aiosmtplib.SMTPDataError as exc:
            return self._replied(smtp, key, "DATA", recipient, exc.code, exc.message)
        except aiosmtplib.SMTPResponseException as exc:
            return self._replied(smtp, key, "SMTP", recipient, exc.code, exc.message)
        except (aiosmtplib.SMTPNotSupported, ValueError) as exc:
            return _Attempt(
                DeliveryResult(key, "permanent", self._scrub(f"cannot send to {recipient}: {exc}")),
                answered=True,
            )
        except Exception as exc:
            # The connection's state is unknown: start afresh for the next message.
            smtp.close()
            return self._lost(key, f"error sending to {recipient} via {self._server}: {exc!r}")
        return _Attempt(DeliveryResult(key, "sent"), answered=True)

    def _lost(self, key: str, error: str) -> _Attempt:
        return _Attempt(DeliveryResult(key, "transient", self._scrub(error)), answered=False)

    def _replied(
        self, smtp: aiosmtplib.SMTP, key: str, stage: str, address: str, code: int, text: str
    ) -> _Attempt:
        error = f"{stage} <{address}>: {code} {text}"
        if code == 421:
            # The server is closing this connection; the next message needs a new one.
            smtp.close()
            return self._lost(key, error)
        if code == 530:
            error += "; the server wants a login: set DNSL_SMTP_USERNAME and DNSL_SMTP_PASSWORD"
            outcome: Outcome = "transient"
        elif 500 <= code < 600:
            outcome = "permanent"
            if stage == "RCPT TO":
                error += "; correct the account's email address"
        else:
            outcome = "transient"
        return _Attempt(DeliveryResult(key, outcome, self._scrub(error)), answered=True)

    def _scrub(self, text: str) -> str:
        # Errors are built from reply codes and texts, never from the password; this is
        # a second guard against a server that echoes what it was sent.
        return scrub(text, self._secrets)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except Exception:
        smtp.close()
    except BaseException:
        smtp.close()
        raise
