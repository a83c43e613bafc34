"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), with faults to inject.

    with SmtpTestServer(faults=Faults(rcpt={"bob@example.com": 550})) as server:
        ... send to 127.0.0.1:server.port ...
        server.received      # what it accepted, in order
        server.connections   # how many connections said EHLO/HELO

``faults`` may also be changed while the server runs. Faults keyed by ``str | int`` take
a recipient address or the n-th DATA command the server has seen (counting from 1).
Authentication (PLAIN, LOGIN) and TLS (STARTTLS or implicit) use a self-signed
certificate for 127.0.0.1 made on the spot; ``client_tls_context()`` trusts it.
With ``echo_auth=True`` a refused login's 535 reply quotes, in base64 as they were
sent, the AUTH argument and every answer the client gave to a challenge, as some
servers do.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"

_REPLY_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox busy, try again later",
    451: "4.3.0 Local error in processing",
    452: "4.3.1 Insufficient system storage",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message too big",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.6.0 Transaction failed",
}


def reply(code: int) -> str:
    return f"{code} {_REPLY_TEXT.get(code, 'Injected fault')}"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Faults:
    greeting: int | None = None  # reply this instead of 220, then hang up
    rcpt: dict[str, int] = field(default_factory=dict)  # recipient -> code on RCPT
    data: dict[str | int, int] = field(default_factory=dict)  # -> code after DATA
    drop_data: set[str | int] = field(default_factory=set)  # -> hang up after DATA, no reply
    delay_data: dict[str | int, float] = field(default_factory=dict)  # -> seconds, then 250


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # as received, after dot-unstuffing
    connection: int  # 1 for the first connection that said EHLO/HELO, and so on
    peer: tuple[str, int]
    tls: bool
    login: str | None  # the user it authenticated as

    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dns-lifecycle test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler:
    def __init__(self, owner: SmtpTestServer) -> None:
        self.owner = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.owner._count_connection(server)
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.owner._count_connection(server)
        return f"250 {server.hostname}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.owner.faults.rcpt.get(address)
        if code is not None:
            return reply(code)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        owner = self.owner
        faults = owner.faults
        with owner._lock:
            owner.data_commands += 1
            keys: list[str | int] = [owner.data_commands, *envelope.rcpt_tos]
        if any(k in faults.drop_data for k in keys):
            server.transport.abort()
            return "250 OK"  # written to a closed transport: the client never sees it
        delay = next((faults.delay_data[k] for k in keys if k in faults.delay_data), None)
        if delay is not None:
            await asyncio.sleep(delay)
        code = next((faults.data[k] for k in keys if k in faults.data), None)
        if code is not None:
            return reply(code)
        owner._store(server, session, envelope)
        return "250 2.0.0 Message accepted"


class _FaultySMTP(SMTP):
    def __init__(self, handler: _Handler, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self._owner = handler.owner
        self.connection_number = 0
        self.auth_sent: list[str] = []  # the current AUTH exchange, as the client sent it

    async def smtp_AUTH(self, arg: str) -> None:
        # "PLAIN <base64>" or "LOGIN [<base64>]": keep what follows the mechanism.
        self.auth_sent = arg.split()[1:]
        await super().smtp_AUTH(arg)

    async def challenge_auth(self, challenge, encode_to_b64=True, log_client_response=False):
        answer = await super().challenge_auth(challenge, encode_to_b64, log_client_response)
        if isinstance(answer, bytes):
            # The client's line was base64 (it decoded); the same bytes encode back to it.
            self.auth_sent.append(base64.b64encode(answer).decode("ascii"))
        return answer

    async def _handle_client(self) -> None:
        code = self._owner.faults.greeting
        if code is not None:
            await self.push(reply(code))
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def factory(self):
        return _FaultySMTP(self.handler, **self.SMTP_kwargs)


class SmtpTestServer:
    """An aiosmtpd server on 127.0.0.1 and a free port; a context manager."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        auth: tuple[str, str] | None = None,
        auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
        tls: Literal["starttls", "tls"] | None = None,
        echo_auth: bool = False,
    ) -> None:
        self.faults = faults or Faults()
        self.received: list[Received] = []
        self.connections = 0
        self.data_commands = 0
        self.auth = auth
        self.tls = tls
        self.echo_auth = echo_auth
        self.port = free_port()
        self.host = HOST
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.cert_path: Path | None = None

        kwargs: dict = {"hostname": HOST, "port": self.port, "server_hostname": "test-smtp"}
        if tls is not None:
            self._tmp = tempfile.TemporaryDirectory()
            self.cert_path, key_path = make_self_signed_cert(Path(self._tmp.name))
            server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_context.load_cert_chain(self.cert_path, key_path)
            if tls == "tls":
                kwargs["ssl_context"] = server_context
            else:
                kwargs["tls_context"] = server_context
                kwargs["require_starttls"] = True
        if auth is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # aiosmtpd only sees a STARTTLS upgrade as TLS; implicit TLS is TLS throughout.
            kwargs["auth_require_tls"] = tls == "starttls"
            kwargs["auth_exclude_mechanism"] = [
                m for m in ("PLAIN", "LOGIN", "CRAM-MD5") if m not in auth_mechanisms
            ]
        self._controller = _Controller(_Handler(self), **kwargs)

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and nothing else)."""
        assert self.cert_path is not None, "the server was started without TLS"
        return ssl.create_default_context(cafile=str(self.cert_path))

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        assert self.auth is not None
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.auth[0]
            and auth_data.password.decode() == self.auth[1]
        )
        if not ok and self.echo_auth:
            quoted = " ".join(server.auth_sent)
            return AuthResult(
                success=False, handled=False, message=f"535 5.7.8 Credentials {quoted} rejected"
            )
        if not ok:
            return AuthResult(success=False, handled=False)  # aiosmtpd then replies 535
        return AuthResult(success=True, auth_data=auth_data.login.decode())

    def _count_connection(self, server: _FaultySMTP) -> None:
        # EHLO comes again after STARTTLS on the same connection: count it once.
        if not server.connection_number:
            with self._lock:
                self.connections += 1
                server.connection_number = self.connections

    def _store(self, server: _FaultySMTP, session, envelope) -> None:
        content = envelope.original_content or b""
        with self._lock:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=content,
                    connection=server.connection_number,
                    peer=tuple(session.peer),
                    tls=server.transport.get_extra_info("sslcontext") is not None,
                    login=session.auth_data if session.authenticated else None,
                )
            )

    def recipients(self) -> list[str]:
        """Every recipient of every accepted message, in order."""
        return [r for message in self.received for r in message.rcpt_tos]

    def start(self) -> SmtpTestServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
