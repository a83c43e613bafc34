"""Where DNS says a domain is delegated: its NS records, as the configured resolvers see them.

``delegated_nameservers`` asks each resolver in turn (one query, over UDP, again over
TCP if the answer was truncated) and takes the first *definite* answer:

- NOERROR with NS records for the domain: their names. They are read from the answer
  section, or from the authority section when the server asked is the parent zone's
  and answers with a referral;
- NOERROR without them, or NXDOMAIN: the empty set. The domain is delegated nowhere
  (NXDOMAIN: it does not exist in DNS at all);
- anything else (timeout, refused connection, SERVFAIL, REFUSED, a malformed or
  mismatched answer): not definite; the next resolver is asked.

When no resolver gave a definite answer the result is ``None``: unknown, which a caller
must not read as "not delegated". DNS failures never raise.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from dns_lifecycle.core.addresses import parse_address

__all__ = ["delegated_nameservers"]


def delegated_nameservers(domain: str, resolvers: list[str], timeout: float) -> set[str] | None:
    """The names of the servers ``domain`` is delegated to, lower case without the
    trailing dot; the empty set when DNS says there are none; ``None`` when no resolver
    answered definitely (see the module docstring).

    ``timeout`` applies to each resolver. Raises ``ValueError`` only for a resolver
    address that cannot be used, a configuration error.
    """
    servers = [parse_address(r) for r in resolvers]
    try:
        qname = dns.name.from_text(domain)
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return None  # a name no server could be asked about
    for address, port in servers:
        answer = _ask(qname, address, port, timeout)
        if answer is not None:
            return answer
    return None


def _ask(qname: dns.name.Name, address: str, port: int, timeout: float) -> set[str] | None:
    query = dns.message.make_query(qname, dns.rdatatype.NS)
    try:
        response, _used_tcp = dns.query.udp_with_fallback(
            query, address, timeout=timeout, port=port
        )
    except (dns.exception.DNSException, OSError, ValueError, EOFError):
        return None
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return set()
    if rcode != dns.rcode.NOERROR or response.flags & dns.flags.TC:
        return None
    for section in (response.answer, response.authority):
        for rrset in section:
            if (
                rrset.name == qname
                and rrset.rdtype == dns.rdatatype.NS
                and rrset.rdclass == dns.rdataclass.IN
            ):
                return {rdata.target.to_text(omit_final_dot=True).lower() for rdata in rrset}
    return set()
