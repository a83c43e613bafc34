"""Who may change a domain's delegation (rule 7): the update locks and the registrar.

The one place that knows the lock vocabulary. EPP statuses (RFC 5731) arrive from
inventories and registrars in any case, so they are compared case-folded and always
reported in their RFC spelling; a registrar's name is compared trimmed and case-folded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

# EPP statuses that forbid changing a domain's name servers.
LOCK_STATUSES: tuple[str, ...] = ("clientUpdateProhibited", "serverUpdateProhibited")
HICHINA = "hichina"

NameserverAction = Literal["switched", "domain_locked", "external_registrar"]

_LOCK_BY_FOLDED = {status.casefold(): status for status in LOCK_STATUSES}


def lock_of(epp_statuses: Iterable[str]) -> str | None:
    """The first update lock among ``epp_statuses`` (any case), in its RFC spelling, or None."""
    for status in epp_statuses:
        lock = _LOCK_BY_FOLDED.get(status.strip().casefold())
        if lock is not None:
            return lock
    return None


def is_hichina(registrar: str) -> bool:
    """Whether ``registrar`` names HiChina, the registrar we can act at ("HiChina ", "hichina")."""
    return registrar.strip().casefold() == HICHINA


def nameserver_action(registrar: str, epp_statuses: Iterable[str]) -> NameserverAction:
    """What release does about a domain's delegation.

    Only a HiChina domain without an update lock can be switched by us; any other
    registrar needs its owner, locked or not.
    """
    if not is_hichina(registrar):
        return "external_registrar"
    if lock_of(epp_statuses) is not None:
        return "domain_locked"
    return "switched"
