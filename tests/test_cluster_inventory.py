"""A cluster entry's live fields in the inventory: checked at import, kept, exported;
API keys never accepted there."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dns_lifecycle.admin.inventory import export_state, import_inventory
from dns_lifecycle.core.errors import InventoryInvalid

NOW = datetime(2026, 12, 1, tzinfo=UTC)
LIVE = {
    "code": "paid-live",
    "kind": "paid",
    "nameservers": ["ns1.paid-live.example"],
    "backend": "powerdns",
    "api_url": "http://127.0.0.1:8081",
    "server_id": "localhost",
    "nameserver_addresses": ["127.0.0.1:5301", "127.0.0.2"],
}


def _import(db, *clusters):
    with db.session() as s:
        import_inventory({"clusters": list(clusters)}, s, now=NOW)
        s.commit()


def test_a_live_cluster_is_imported_and_exported_with_its_fields(db):
    """Every live field comes back in the export as it was given."""
    _import(db, LIVE, {"code": "free", "kind": "free", "nameservers": ["ns1.free.example"]})
    with db.session() as s:
        clusters = {c["code"]: c for c in export_state(s)["clusters"]}
    assert clusters["paid-live"] == LIVE
    assert clusters["free"] == {"code": "free", "kind": "free", "nameservers": ["ns1.free.example"]}


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"backend": "bind"}, "clusters[0].backend", "is not one of"),
        ({"api_url": None}, "clusters[0].api_url", "needs its API's URL"),
        ({"api_url": "ftp://x"}, "clusters[0].api_url", "not an http(s) URL"),
        ({"nameserver_addresses": ["ns1.example"]}, "clusters[0].nameserver_addresses[0]", "IP"),
        ({"api_key": "secret"}, "clusters[0].api_key", "unknown field"),
    ],
)
def test_a_bad_live_field_is_refused_with_its_path(db, change, path, words):
    """Backend, URL, addresses are checked; an API key has no place in the file."""
    with pytest.raises(InventoryInvalid) as caught:
        _import(db, {**LIVE, **change})
    assert any(p == path and words in m for p, m in caught.value.errors), caught.value.errors


def test_a_cluster_catalog_is_imported_and_exported(db):
    """A powerdns cluster's catalog zone comes back in the export, as an A-label."""
    _import(db, {**LIVE, "catalog": "Catalog.Paid-Live.example."})
    with db.session() as s:
        clusters = {c["code"]: c for c in export_state(s)["clusters"]}
    assert clusters["paid-live"] == {**LIVE, "catalog": "catalog.paid-live.example"}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({**LIVE, "catalog": "not a name"}, "not a valid catalog zone name"),
        (
            {
                "code": "x",
                "kind": "paid",
                "nameservers": ["ns1.x.example"],
                "catalog": "c.x.example",
            },
            "only a powerdns cluster has a catalog zone",
        ),
    ],
)
def test_a_bad_catalog_is_refused_with_its_path(db, entry, words):
    """A catalog must be a zone name, and only a powerdns cluster has one."""
    with pytest.raises(InventoryInvalid) as caught:
        _import(db, entry)
    assert any(p == "clusters[0].catalog" and words in m for p, m in caught.value.errors), (
        caught.value.errors
    )
