"""An authoritative DNS server on 127.0.0.1 for tests of code that asks DNS.

It answers NS queries from a dict that a test may change while it runs::

    with DnsServer({"example.com": ["ns1.free.example", "ns2.free.example"]}) as server:
        delegated_nameservers("example.com", [server.address], timeout=1)
        server.nameservers["example.com"] = ["ns1.other.example"]

UDP and TCP listen on the same free port. For a name in the dict the answer is
authoritative (NOERROR, the NS records; no records for other types); for a name
under one of them, NOERROR without records; for anything else, NXDOMAIN.

Knobs, all changeable while it runs:

- ``rcodes``: ``{name: "SERVFAIL"}`` answers that name with that response code;
- ``referral``: answer like a parent zone's server, with the NS records in the
  authority section and without the authoritative flag;
- ``truncate_udp``: answer every UDP query with the truncated flag and no records,
  so a client must ask again over TCP.

``queries`` lists every question seen as ``(name, type, "udp" | "tcp")``.
"""

from __future__ import annotations

import socket
import threading

from dnslib import NS, QTYPE, RCODE, RR, DNSRecord
from dnslib.server import DNSServer

_TTL = 300


class _QuietLogger:
    """dnslib prints every request by default; tests stay quiet."""

    def _quiet(self, *args: object) -> None:
        pass

    log_recv = log_send = log_request = log_reply = _quiet
    log_truncated = log_error = log_data = _quiet


def _key(name: object) -> str:
    return str(name).rstrip(".").lower()


class DnsServer:
    def __init__(self, nameservers: dict[str, list[str]] | None = None) -> None:
        # The caller's dict itself, so changing either changes the answers.
        self.nameservers: dict[str, list[str]] = nameservers if nameservers is not None else {}
        self.rcodes: dict[str, str] = {}
        self.referral = False
        self.truncate_udp = False
        self.queries: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._udp, self._tcp = self._bind()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._udp.server.server_address[1]

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the form a resolver setting takes."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DnsServer:
        for server in (self._udp, self._tcp):
            # A short poll interval lets close() return at once instead of within 0.5 s.
            thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for server in (self._udp, self._tcp):
            if self._threads:
                server.server.shutdown()
            server.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    # dnslib calls this from its handler threads.
    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        name = _key(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((name, qtype, handler.protocol))
        reply = request.reply(ra=0, aa=0 if self.referral else 1)
        forced = self.rcodes.get(name)
        if forced is not None:
            reply.header.rcode = getattr(RCODE, forced)
            return reply
        if handler.protocol == "udp" and self.truncate_udp:
            reply.header.tc = 1
            return reply
        servers = self.nameservers.get(name)
        if servers is not None:
            if qtype in ("NS", "ANY"):
                records = [
                    RR(request.q.qname, QTYPE.NS, ttl=_TTL, rdata=NS(f"{ns}.")) for ns in servers
                ]
                for rr in records:
                    if self.referral:
                        reply.add_auth(rr)
                    else:
                        reply.add_answer(rr)
            return reply
        if any(name.endswith(f".{zone}") for zone in self.nameservers):
            return reply
        reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def _bind(self) -> tuple[DNSServer, DNSServer]:
        """UDP on a free port, TCP on the same number (retried if TCP's is taken)."""
        for _ in range(20):
            udp = DNSServer(self, address="127.0.0.1", port=0, logger=_QuietLogger())
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(
                    self, address="127.0.0.1", port=port, tcp=True, logger=_QuietLogger()
                )
            except OSError:
                udp.server.server_close()
                continue
            return udp, tcp
        raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def dead_udp_port() -> socket.socket:
    """A bound UDP socket on 127.0.0.1 that never answers: queries to it time out.

    Close it when done; its port is ``sock.getsockname()[1]``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock
