"""Small, explicit fleets for tests.

Each helper adds its rows to the session and flushes (so ids exist and constraints are
checked) but never commits: the test owns the transaction, as a flow step would.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from dns_lifecycle.admin.seed_rows import CLUSTERS, EDITIONS, FREE_CLUSTER
from dns_lifecycle.lifecycle.calendar import local_day
from models import Account, Cluster, Domain, Edition, Instance, Record

# The catalog tests get: every edition, one paid cluster and the free one.
CATALOG_CLUSTERS = ["paid-1", FREE_CLUSTER]


def make_catalog(session) -> None:
    """Add the three editions and the clusters paid-1 and free, unless already there."""
    for edition in EDITIONS:
        if session.get(Edition, edition["code"]) is None:
            session.add(Edition(**edition))
    for cluster in CLUSTERS:
        if cluster["code"] in CATALOG_CLUSTERS and session.get(Cluster, cluster["code"]) is None:
            session.add(Cluster(**{**cluster, "nameservers": list(cluster["nameservers"])}))
    session.flush()


def make_account(
    session,
    id: str = "acct-1",
    *,
    locale: str = "en-US",
    timezone: str = "Asia/Shanghai",
    balance: Decimal = Decimal("1000.00"),
    email: str | None = None,
    phone: str = "+8613800138000",
    name: str | None = None,
) -> Account:
    """An account; email defaults to ``<id>@example.com``, name to ``Customer <id>``."""
    account = Account(
        id=id,
        name=name if name is not None else f"Customer {id}",
        email=email if email is not None else f"{id}@example.com",
        phone=phone,
        locale=locale,
        timezone=timezone,
        balance=balance,
    )
    session.add(account)
    session.flush()
    return account


def default_domains(instance_id: str) -> list[dict[str, Any]]:
    """One unlocked HiChina domain ``<id>.example.com`` with an A and a CNAME record."""
    name = f"{instance_id}.example.com"
    return [
        {
            "name": name,
            "registrar": "hichina",
            "epp_statuses": [],
            "records": [("A", "@", "192.0.2.1", 600), ("CNAME", "www", f"{name}.", 600)],
        }
    ]


def make_instance(
    session,
    id: str = "inst-1",
    *,
    account: str = "acct-1",
    edition: str = "personal",
    billing_cycle: str = "monthly",
    expires_at: datetime,
    auto_renew: bool = False,
    state: str = "active",
    cluster: str = "paid-1",
    domains: list[dict[str, Any]] | None = None,
    anchor_day: int | None = None,
    released_at: datetime | None = None,
) -> Instance:
    """An instance with its domains and their records.

    The catalog is added if missing, and so is the account (with ``make_account``'s
    defaults). ``domains`` is a list of ``{"name", "registrar", "epp_statuses",
    "records": [(type, host, value, ttl), ...]}``, optionally with ``"nameservers"``
    (default: the cluster's); records are served by ``cluster``. Default: see
    :func:`default_domains`. ``anchor_day`` defaults to the day of ``expires_at`` in the
    account's time zone.
    """
    make_catalog(session)
    owner = session.get(Account, account) or make_account(session, account)
    cluster_row = session.get(Cluster, cluster)
    if cluster_row is None:
        raise ValueError(f"no cluster {cluster!r}: the factory catalog has {CATALOG_CLUSTERS}")
    instance = Instance(
        id=id,
        account_id=account,
        edition_code=edition,
        billing_cycle=billing_cycle,
        expires_at=expires_at,
        anchor_day=anchor_day if anchor_day is not None else local_day(expires_at, owner.timezone),
        auto_renew=auto_renew,
        state=state,
        cluster_code=cluster,
        released_at=released_at,
    )
    session.add(instance)
    session.flush()
    for spec in default_domains(id) if domains is None else domains:
        domain = Domain(
            name=spec["name"],
            instance_id=id,
            registrar=spec.get("registrar", "hichina"),
            epp_statuses=list(spec.get("epp_statuses", [])),
            nameservers=list(spec.get("nameservers", cluster_row.nameservers)),
        )
        session.add(domain)
        session.flush()
        for rtype, host, value, ttl in spec.get("records", []):
            session.add(
                Record(
                    domain_id=domain.id,
                    cluster_code=cluster,
                    type=rtype,
                    host=host,
                    value=value,
                    ttl=ttl,
                )
            )
    session.flush()
    return instance
