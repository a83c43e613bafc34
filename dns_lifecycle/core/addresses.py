"""DNS server addresses as people write them: ``host``, ``host:port``, ``[v6]:port``.

Settings validate with it and the DNS channels use it, so it sits in the foundation.
"""

from __future__ import annotations

import ipaddress

DEFAULT_PORT = 53


def parse_address(text: str, what: str = "resolver") -> tuple[str, int]:
    """``(address, port)`` of a DNS server given as ``host``, ``host:port``,
    ``[v6]:port`` or a bare IPv6 address; port 53 when omitted. The host must be an IP
    address: a DNS server is not looked up in DNS. ``what`` names the value in errors
    (``resolver``, ``name-server address``)."""
    value = text.strip()
    host, port = value, DEFAULT_PORT
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if sep and rest.startswith(":"):
            port = _port(what, text, rest[1:])
        elif sep and rest:
            raise ValueError(f"{what} {text!r}: expected '[address]:port'")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = _port(what, text, port_text)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ValueError(
            f"{what} {text!r} is not an IP address with an optional :port; write it "
            "as e.g. '127.0.0.1:53' or '[::1]:5353'"
        ) from None


def _port(what: str, text: str, port_text: str) -> int:
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{what} {text!r}: the port must be a number from 1 to 65535")
    return int(port_text)
