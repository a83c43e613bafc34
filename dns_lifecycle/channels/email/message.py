"""The email message: MIME bytes and Message-IDs, the same for every backend.

``build_mime`` writes multipart/alternative with a plain-text part then an HTML part,
UTF-8, every body part 7bit, base64 or quoted-printable so that the bytes suit any
server (no 8BITMIME needed). Its Message-ID is derived from the ledger key
(``message_id_for``): a message that is sent again after an ambiguous failure (a
timeout after DATA, when the server may already have accepted it) carries the same
Message-ID, so the duplicate is recognisable. A subject or recipient with a line break
is refused (``PermanentDeliveryError``), so nothing can write another header.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP as _SMTP_POLICY
from email.utils import format_datetime, parseaddr

import idna

from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.core.errors import InputError, PermanentDeliveryError

# CRLF line ends as on the wire; 7bit so that no part needs the server's 8BITMIME.
_POLICY = _SMTP_POLICY.clone(cte_type="7bit")

# Everything str.splitlines() treats as a line end: none may reach a header.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# A single plain addr-spec: no display name, no list, no quoted local part.
_ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")


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


def sender_parts(sender: str) -> tuple[str, str]:
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
