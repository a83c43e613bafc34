"""Email backends: an outbox folder of .eml files (the default) and SMTP (production).

Both send the same MIME message, built by ``build_mime``: multipart/alternative with a
plain-text part then an HTML part, UTF-8, every body part 7bit, base64 or
quoted-printable so that the bytes suit any server (no 8BITMIME needed). Its
Message-ID is derived from the ledger key (``message_id_for``): a message that is sent
again after an ambiguous failure (a timeout after DATA, when the server may already
have accepted it) carries the same Message-ID, so the duplicate is recognisable.

How the SMTP backend classifies each message:

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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import os
import re
import ssl
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP as _SMTP_POLICY
from email.utils import format_datetime, parseaddr
from pathlib import Path

import aiosmtplib
import idna

from dns_lifecycle.channels.base import DeliveryResult, EmailMessage
from dns_lifecycle.core.errors import InputError, PermanentDeliveryError
from dns_lifecycle.core.settings import Settings

# CRLF line ends as on the wire; 7bit so that no part needs the server's 8BITMIME.
_POLICY = _SMTP_POLICY.clone(cte_type="7bit")

# Everything str.splitlines() treats as a line end: none may reach a header.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# A single plain addr-spec: no display name, no list, no quoted local part.
_ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


# --- the message ----------------------------------------------------------------------


def _ascii_address(address: str) -> str | None:
    """The address with its domain in IDNA form, or None if it is not one plain address.

    A non-ASCII local part would need SMTPUTF8, which this service does not send."""
    if not _ADDR_SPEC.fullmatch(address):
        return None
    local, domain = address.rsplit("@", 1)
    if not local.isascii():
        return None
    if domain.isascii():
        return address
    # IDNA 2008 with UTS 46 mapping, non-transitional: the rules the inventory import
    # checks addresses with. Python's own "idna" codec is IDNA 2003, which maps "ß"
    # to "ss" and would send mail for faß.de to the unrelated domain fass.de.
    try:
        a_label = idna.encode(domain, uts46=True, std3_rules=True, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return f"{local}@{a_label.decode('ascii')}"


def _sender_parts(sender: str) -> tuple[str, str]:
    """(display name, ASCII address) of a From value like 'DNS Hosting <no-reply@x.com>'."""
    return _sender(sender).parts


@dataclass(frozen=True)
class _Sender:
    parts: tuple[str, str]  # (display name, ASCII address)
    from_line: bytes  # the whole From header, folded, with its CRLF
    domain: str  # the address's domain, for Message-IDs


@functools.lru_cache(maxsize=16)
def _sender(sender: str) -> _Sender:
    # The sender is a setting: parsed and formatted once per process, not per message.
    name, address = parseaddr(sender)
    ascii_address = _ascii_address(address) if address else None
    if ascii_address is None or any(ch in _LINE_BREAKS for ch in sender):
        raise InputError(
            f"the sender {sender!r} (DNSL_EMAIL_FROM) is not an email address: "
            "set it to e.g. 'DNS Hosting <no-reply@example.com>'"
        )
    # The standard library quotes or RFC 2047-encodes a display name as it needs.
    header = MimeMessage(policy=_POLICY)
    header["From"] = Address(display_name=name, addr_spec=ascii_address) if name else ascii_address
    from_line = _POLICY.fold_binary("From", header["From"])
    return _Sender((name, ascii_address), from_line, ascii_address.rsplit("@", 1)[1])


def message_id_for(key: str, sender: str) -> str:
    """The Message-ID of the message with ledger key ``key``: the same key, the same id."""
    domain = _sender(sender).domain
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}@{domain}>"


def recipient_of(message: EmailMessage) -> str:
    """The envelope recipient of ``message``; PermanentDeliveryError if it cannot be one.

    Also refuses a subject with a line break, so that one check guards every header."""
    if any(ch in _LINE_BREAKS for ch in message.subject):
        raise PermanentDeliveryError(
            f"email {message.key}: the subject contains a line break, which would let it "
            "write other headers; remove line breaks from the subject template"
        )
    if any(ch in _LINE_BREAKS for ch in message.to):
        raise PermanentDeliveryError(
            f"email {message.key}: the recipient {message.to!r} contains a line break; "
            "correct the account's email address"
        )
    address = _ascii_address(message.to.strip())
    if address is None:
        raise PermanentDeliveryError(
            f"email {message.key}: {message.to!r} is not a single plain email address "
            "(or needs SMTPUTF8); correct the account's email address"
        )
    return address


# The message is written out directly rather than through email.message/email.policy:
# the header registry and generator cost about 1.2 ms per message, several times the
# rest of a delivery. What it writes follows RFC 5322, 2045 and 2047 in a few fixed
# shapes, each checked by parsing it back with the standard library.

_CRLF = b"\r\n"
_MAX_LINE = 78  # RFC 5322's recommended limit, which every line here keeps to

# A subject goes out as it is only when it is printable ASCII without "=?", which a
# reader would take for the start of an encoded word; otherwise it is encoded.
_PLAIN_SUBJECT = re.compile(r"[\x20-\x7e]*")
# Bytes of UTF-8 per encoded word: "=?utf-8?b?" + 56 characters of base64 + "?=" is 68,
# so even the first line ("Subject: " and one word) stays within 78.
_WORD_BYTES = 42


def _subject_line(subject: str) -> bytes:
    """The Subject header, folded to lines of at most 78 characters, with its CRLF."""
    words = subject.split(" ")
    if (
        _PLAIN_SUBJECT.fullmatch(subject)
        and "=?" not in subject
        and max(map(len, words)) <= _MAX_LINE - len("Subject: ")
    ):
        # Fold at spaces: each fold turns one space into CRLF + that space, which a
        # reader's unfolding turns back into the same space.
        lines: list[str] = []
        line = "Subject:"
        for word in words:
            if word and len(line) + 1 + len(word) > _MAX_LINE:
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        return "\r\n".join(lines).encode("ascii") + _CRLF
    # RFC 2047 "B" encoded words, each a whole number of characters; the folding
    # whitespace between two encoded words is not part of the text.
    chunks: list[bytes] = []
    chunk = b""
    for char in subject:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += encoded
    chunks.append(chunk)
    words_b = [b"=?utf-8?b?" + base64.b64encode(c) + b"?=" for c in chunks]
    return b"Subject: " + b"\r\n ".join(words_b) + _CRLF


def _body_part(text: str, subtype: str) -> bytes:
    """A text/<subtype> body part, headers and encoded body, ending with CRLF.

    The body gets CRLF line ends. 7bit when it is ASCII with short lines; otherwise
    quoted-printable or base64, whichever is shorter, so no part needs 8BITMIME."""
    lines = text.encode("utf-8").splitlines()
    body = _CRLF.join(lines) + _CRLF
    if body.isascii() and max(map(len, lines), default=0) <= _MAX_LINE:
        encoding, payload = b"7bit", body
    else:
        quoted = binascii.b2a_qp(body, istext=True)
        # base64 of the body: 4 characters per 3 bytes, CRLF after every 76.
        base64_length = (len(body) + 2) // 3 * 4
        base64_length += (base64_length + 75) // 76 * 2
        if len(quoted) <= base64_length:
            encoding, payload = b"quoted-printable", quoted
            if not payload.endswith(_CRLF):
                payload += _CRLF
        else:
            encoding, payload = b"base64", base64.encodebytes(body).replace(b"\n", _CRLF)
    return (
        b"Content-Type: text/" + subtype.encode("ascii") + b'; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + payload
    )


def build_mime(message: EmailMessage, sender: str, *, date: datetime | None = None) -> bytes:
    """The message as MIME bytes with CRLF line ends, ready for DATA or an .eml file.

    ``date`` becomes the Date header; without it there is none, so the same message
    always gives the same bytes. Raises PermanentDeliveryError for a subject or
    recipient that cannot go into a header (see ``recipient_of``)."""
    to = recipient_of(message)
    origin = _sender(sender)
    # A fixed boundary makes the bytes a function of the message. "=_" cannot occur in
    # base64 or quoted-printable text, and a 7bit part would have to contain its own
    # digest, so the boundary cannot collide with a part.
    digest = hashlib.sha256(f"{message.key}\0{message.text}\0{message.html}".encode()).hexdigest()
    boundary = f"==_dnsl_{digest[:40]}".encode("ascii")
    message_id = hashlib.sha256(message.key.encode("utf-8")).hexdigest()[:32]
    parts = [
        origin.from_line,
        b"To: " + to.encode("ascii") + _CRLF,
        _subject_line(message.subject),
    ]
    if date is not None:
        parts.append(b"Date: " + format_datetime(date).encode("ascii") + _CRLF)
    parts += [
        f"Message-ID: <{message_id}@{origin.domain}>\r\n".encode("ascii"),
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n',
        b"\r\n--" + boundary + _CRLF,
        _body_part(message.text, "plain"),
        b"\r\n--" + boundary + _CRLF,
        _body_part(message.html, "html"),
        b"\r\n--" + boundary + b"--\r\n",
    ]
    return b"".join(parts)


# --- file backend ---------------------------------------------------------------------


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
        _sender_parts(sender)  # a bad sender is a setting to fix, not a failed message
        self.directory = Path(outbox_dir) / "email"
        self.sender = sender

    async def send(self, batch: list[EmailMessage]) -> list[DeliveryResult]:
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


# --- SMTP backend ---------------------------------------------------------------------


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
        _, self._envelope_from = _sender_parts(settings.email_from)
        self._tls_context = tls_context
        self._clock = clock
        self._server = f"{settings.smtp_host}:{settings.smtp_port}"

    async def send(self, batch: list[EmailMessage]) -> list[DeliveryResult]:
        if not batch:
            return []
        date = self._clock()
        results: list[DeliveryResult | None] = [None] * len(batch)
        pending = deque(range(len(batch)))
        stops: list[str] = []
        workers = min(self._settings.smtp_connections, len(batch))
        await asyncio.gather(
            *(self._work(batch, pending, results, stops, date) for _ in range(workers))
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
                    results[index] = DeliveryResult(message.key, "permanent", str(exc))
                    continue
                attempt = await self._deliver(smtp, message.key, recipient, data)
                results[index] = attempt.result
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
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                await smtp.login(s.smtp_username, password)
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
            outcome = "transient"
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
        password = self._settings.smtp_password
        secret = password.get_secret_value() if password else ""
        return text.replace(secret, "********") if secret else text


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
