"""Checking a whole inventory document against itself and the database.

``validate_inventory`` walks the document in file order. Each entry is validated by
its model (``entries``); what no single entry can tell is checked here: codes and ids
unique in the file, references to entries of the file or of the database, one free
cluster, a domain owned by one instance, records that can share their name. Every
problem is collected with its path before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from dns_lifecycle.admin.inventory import values
from dns_lifecycle.admin.inventory.entries import key_path
from dns_lifecycle.admin.inventory.stored import StoredState, _Declared
from dns_lifecycle.admin.inventory.walk import CheckedDomain, CheckedRecord, _Walk
from dns_lifecycle.core.errors import InventoryInvalid
from dns_lifecycle.core.settings import GRACE_DAYS

__all__ = [
    "HISTORY_KEYS",
    "SECTIONS",
    "CheckedDomain",
    "CheckedRecord",
    "Inventory",
    "StoredState",
    "validate_inventory",
]

SECTIONS = ("editions", "clusters", "accounts", "instances")
# Sections of an export written by the lifecycle runs and by requests (top-ups):
# accepted and ignored on import.
HISTORY_KEYS = ("orders", "top_ups", "notifications", "tickets")


@dataclass(frozen=True)
class Inventory:
    """A document that passed validation, normalised, with what it found stored.

    ``editions``, ``clusters``, ``accounts`` and ``instances`` hold column values ready
    to write (an instance row has no ``domains``; they are in ``domains``, keyed by
    instance id, for the instances whose domains the document gives).
    """

    editions: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    instances: list[dict[str, Any]]
    domains: dict[str, list[CheckedDomain]]
    # Which cluster serves the records of each instance of the document.
    serving_cluster: dict[str, str]
    stored: StoredState = field(repr=False)

    def counts(self) -> dict[str, int]:
        """How many of each kind the document holds."""
        domains = [d for ds in self.domains.values() for d in ds]
        return {
            "editions": len(self.editions),
            "clusters": len(self.clusters),
            "accounts": len(self.accounts),
            "instances": len(self.instances),
            "domains": len(domains),
            "records": sum(len(d.records) for d in domains),
        }


def validate_inventory(
    doc: Any,
    session: Session,
    *,
    now: datetime,
    grace_days: int = GRACE_DAYS,
    source: str | None = None,
) -> Inventory:
    """Check a whole inventory document against itself and the database, at the moment
    ``now`` (what has happened by then: an instance's time left, a release), with
    ``grace_days`` (DNSL_GRACE_DAYS) between an expiry and its release.

    Returns the normalised document; raises ``InventoryInvalid`` listing every bad entry
    with its path when there is any. Reads the database, writes nothing.
    """
    if not isinstance(doc, dict):
        raise InventoryInvalid(
            [
                (
                    "",
                    f"the document must be a JSON object with {', '.join(SECTIONS)}; "
                    f"got {values.show(doc)}",
                )
            ],
            source,
        )
    declared = _Declared.scan(doc)
    stored = StoredState.load(session, declared)
    walk = _Walk(declared, stored, now, grace_days)
    sections: dict[str, Any] = {}
    # File order: the sections in the order the document gives them.
    for key in doc:
        if key not in SECTIONS and key not in HISTORY_KEYS:
            walk.bad(key_path("", key), f"unknown section; the sections are {', '.join(SECTIONS)}")
        elif key in SECTIONS:
            sections[key] = getattr(walk, key)(doc[key])
    if walk.errors:
        raise InventoryInvalid(walk.errors, source)
    instances, domains, serving = sections.get("instances", ([], {}, {}))
    return Inventory(
        editions=sections.get("editions", []),
        clusters=sections.get("clusters", []),
        accounts=sections.get("accounts", []),
        instances=instances,
        domains=domains,
        serving_cluster=serving,
        stored=stored,
    )
