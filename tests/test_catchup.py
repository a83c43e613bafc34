"""A release waiting for a cluster's secondaries: which server is behind, and the back-off."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from dns_lifecycle.channels.clusters.catchup import behind, delays


def test_the_waits_grow_to_their_cap_and_fit_in_the_budget():
    """Each wait doubles up to the cap, and all of them add up to the budget exactly."""
    waits = list(delays(60, first=0.5, factor=2, cap=10))
    assert waits[:6] == [0.5, 1, 2, 4, 8, 10]
    assert sum(waits) == pytest.approx(60) and max(waits) == 10


def test_no_budget_means_no_wait():
    """A wait of 0 seconds asks no second time."""
    assert list(delays(0)) == []


class _SoaServer:
    """A name server on a loopback UDP port answering every SOA question with one
    serial, authoritatively, or refusing it (serial None)."""

    def __init__(self, serial: int | None) -> None:
        self.serial = serial
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(512)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            if self.serial is None:
                response.set_rcode(dns.rcode.REFUSED)
            else:
                response.flags |= dns.flags.AA
                soa = f"ns1.example. hostmaster.example. {self.serial} 3600 600 86400 300"
                response.answer.append(
                    dns.rrset.from_text(query.question[0].name, 300, "IN", "SOA", soa)
                )
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("serials", "lagging"),
    [
        ((7, 7), {}),
        ((5, 7), {0: "serves serial 5, older than 7"}),
        ((4294967295, 1), {0: "serves serial 4294967295, older than 1"}),  # wrapped
        ((None, 7), {0: "does not serve the zone yet (REFUSED)"}),
    ],
)
def test_a_server_behind_the_others_is_named_with_why(serials, lagging):
    """A refusal, or a serial older than another server's (RFC 1982), is a server
    behind; the same serial everywhere is none."""
    servers = [_SoaServer(s) for s in serials]
    try:
        found = behind("example.cn", [s.address for s in servers], timeout=2)
    finally:
        for s in servers:
            s.close()
    assert found == {servers[i].address: why for i, why in lagging.items()}
