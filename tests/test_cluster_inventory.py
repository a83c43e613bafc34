"""A cluster entry's live fields in the inventory: checked at import (its options by
its backend's own model), kept, exported in the ``options`` shape; the top-level
options of earlier files still imported; API keys never accepted there."""

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
# The same cluster as an export writes it: the backend's options in one object.
EXPORTED = {
    "code": "paid-live",
    "kind": "paid",
    "nameservers": ["ns1.paid-live.example"],
    "backend": "powerdns",
    "options": {"api_url": "http://127.0.0.1:8081", "server_id": "localhost"},
    "nameserver_addresses": ["127.0.0.1:5301", "127.0.0.2"],
}


def _import(db, *clusters):
    with db.session() as s:
        import_inventory({"clusters": list(clusters)}, s, now=NOW)
        s.commit()


def test_a_live_cluster_of_an_earlier_file_is_exported_with_its_options(db):
    """Top-level api_url and server_id are imported and come back under options."""
    _import(db, LIVE, {"code": "free", "kind": "free", "nameservers": ["ns1.free.example"]})
    with db.session() as s:
        clusters = {c["code"]: c for c in export_state(s)["clusters"]}
    assert clusters["paid-live"] == EXPORTED
    assert clusters["free"] == {"code": "free", "kind": "free", "nameservers": ["ns1.free.example"]}


def test_an_exported_live_cluster_imports_as_it_was(db):
    """A cluster in the export's shape comes back in the export unchanged."""
    _import(db, EXPORTED)
    with db.session() as s:
        clusters = {c["code"]: c for c in export_state(s)["clusters"]}
    assert clusters["paid-live"] == EXPORTED


def test_options_beside_top_level_options_are_refused(db):
    """A file gives a cluster's options one way: in options, or at the top level."""
    with pytest.raises(InventoryInvalid) as caught:
        _import(db, {**EXPORTED, "server_id": "other"})
    assert any(
        p == "clusters[0].options" and "put them in options" in m for p, m in caught.value.errors
    ), caught.value.errors


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"backend": "bind"}, "clusters[0].backend", "names no cluster backend"),
        ({"api_url": None}, "clusters[0].api_url", "needs its api_url"),
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


@pytest.mark.parametrize(
    ("options", "path", "words"),
    [
        ({"server_id": "localhost"}, "clusters[0].options.api_url", "needs its api_url"),
        ({"api_url": "ftp://x"}, "clusters[0].options.api_url", "not an http(s) URL"),
        ({**EXPORTED["options"], "zone": "x"}, "clusters[0].options.zone", "takes no zone"),
    ],
)
def test_bad_options_are_refused_by_the_backends_model(db, options, path, words):
    """The backend's own model checks the options object, each error at its path."""
    with pytest.raises(InventoryInvalid) as caught:
        _import(db, {**EXPORTED, "options": options})
    assert any(p == path and words in m for p, m in caught.value.errors), caught.value.errors


def test_a_cluster_catalog_is_imported_and_exported(db):
    """A powerdns cluster's catalog zone comes back in the export, as an A-label."""
    _import(db, {**LIVE, "catalog": "Catalog.Paid-Live.example."})
    with db.session() as s:
        clusters = {c["code"]: c for c in export_state(s)["clusters"]}
    assert clusters["paid-live"]["options"] == {
        **EXPORTED["options"],
        "catalog": "catalog.paid-live.example",
    }


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
            "a database cluster takes no catalog",
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
