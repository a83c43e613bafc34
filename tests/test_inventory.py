"""Import and export of the inventory: strict all-or-nothing validation with every
problem listed by path, upserts on re-import, and an export in the same shape."""

from __future__ import annotations

import copy
import io
import json
import pickle
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dns_lifecycle.admin.inventory import (
    export_state,
    import_inventory,
    order_row,
    read_inventory_file,
    validate_inventory,
    write_state,
)
from dns_lifecycle.core.errors import InputError, InventoryInvalid
from models import Account, Cluster, Domain, Edition, Instance, Order, Record, Ticket, types
from models.account import AccountBase
from models.cluster import ClusterBase
from models.instance import InstanceBase
from models.order import OrderBase
from models.record import RecordBase

SAMPLE = Path(__file__).parent / "fixtures" / "inventory_small.json"
INVENTORY_SECTIONS = ("editions", "clusters", "accounts", "instances")
# The moment of the imports: after the sample's release, before its active expiries.
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def load(db, doc: Any) -> dict[str, int]:
    with db.session() as s:
        counts = import_inventory(doc, s, now=NOW)
        s.commit()
    return counts


def export(db) -> dict[str, Any]:
    with db.session() as s:
        return export_state(s)


def without_record_clusters(state: dict[str, Any]) -> dict[str, Any]:
    """The inventory sections of an export, as they were imported (no record clusters)."""
    result = {key: copy.deepcopy(state[key]) for key in INVENTORY_SECTIONS}
    for instance in result["instances"]:
        for domain in instance["domains"]:
            for record in domain["records"]:
                del record["cluster"]
    return result


def rejection(db, doc: Any) -> InventoryInvalid:
    with db.session() as s, pytest.raises(InventoryInvalid) as caught:
        import_inventory(doc, s, now=NOW)
    return caught.value


def paths(exc: InventoryInvalid) -> list[str]:
    return [path for path, _ in exc.errors]


def message_at(exc: InventoryInvalid, path: str) -> str:
    return next(message for p, message in exc.errors if p == path)


def row_counts(db) -> dict[str, int]:
    with db.session() as s:
        return {
            model.__name__: s.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (Edition, Cluster, Account, Instance, Domain, Record)
        }


# --- the sample file -------------------------------------------------------------------


def test_sample_round_trips(db):
    """Exporting an imported sample gives back the sample's inventory sections."""
    load(db, sample())
    assert without_record_clusters(export(db)) == sample()


def test_import_counts_each_kind(db):
    """The import reports how many of each kind the file held."""
    counts = load(db, sample())
    assert counts == {
        "editions": 3,
        "clusters": 2,
        "accounts": 3,
        "instances": 4,
        "domains": 5,
        "records": 14,
        "domains_removed": 0,
    }


def test_export_names_the_cluster_serving_each_record(db):
    """Records of a released instance are served by the free cluster, others by the paid one."""
    load(db, sample())
    clusters = {
        instance["id"]: {r["cluster"] for d in instance["domains"] for r in d["records"]}
        for instance in export(db)["instances"]
    }
    assert clusters == {
        "inst-a01": {"paid-east"},
        "inst-a02": {"paid-east"},
        "inst-a03": {"paid-east"},
        "inst-a04": {"free"},
    }


def test_export_imports_back_unchanged(db):
    """An export, history keys and record clusters included, imports back to the same state."""
    load(db, sample())
    before = export(db)
    load(db, before)
    assert export(db) == before


def test_write_state_streams_the_same_document(db):
    """The streaming writer produces JSON equal to export_state."""
    load(db, sample())
    out = io.StringIO()
    with db.session() as s:
        counts = write_state(s, out)
    assert json.loads(out.getvalue()) == export(db)
    assert counts["instances"] == 4 and counts["orders"] == 0


def test_export_lists_orders_notifications_and_tickets(db):
    """The history sections carry their ids, references, decimals and UTC datetimes."""
    load(db, sample())
    start = datetime(2026, 12, 5, 5, tzinfo=UTC)
    with db.session() as s:
        domain_id = s.execute(
            select(Domain.id).where(Domain.name == "alice-shop.example.com")
        ).scalar_one()
        s.add(
            Order(
                key="inst-a02:auto_renewal:2026-12-05",
                instance_id="inst-a02",
                kind="auto_renewal",
                period_start=start,
                period_end=start.replace(year=2027),
                amount=Decimal("500"),
                state="failed",
                reason="balance too low",
                created_at=start,
            )
        )
        s.add(
            Ticket(
                domain_id=domain_id,
                instance_id="inst-a02",
                reason="domain_locked",
                open_key="alice-shop.example.com:domain_locked",
                created_at=start,
            )
        )
        s.commit()
    state = export(db)
    [order] = state["orders"]
    assert order["instance"] == "inst-a02" and order["amount"] == "500.00"
    assert order["period_end"] == "2027-12-05T05:00:00+00:00"
    assert set(order) == {
        "id",
        "instance",
        "kind",
        "period_start",
        "period_end",
        "amount",
        "state",
        "reason",
    }
    with db.session() as s:
        assert order_row(s.execute(select(Order)).scalar_one()) == order
    assert state["tickets"] == [
        {
            "id": state["tickets"][0]["id"],
            "domain": "alice-shop.example.com",
            "instance": "inst-a02",
            "reason": "domain_locked",
            "state": "open",
        }
    ]
    assert state["notifications"] == []


# --- all or nothing --------------------------------------------------------------------


def several_bad_entries() -> dict[str, Any]:
    doc = sample()
    doc["accounts"][0]["email"] = "alice.example.com"
    doc["accounts"][1]["phone"] = "+44 7700 900123"
    doc["instances"][0]["edition"] = "platinum"
    doc["instances"][1]["domains"][0]["name"] = "exa mple.com"
    doc["instances"][2]["expires_at"] = "2026-11-20T00:00:00"
    doc["instances"][3]["id"] = "inst-a01"
    return doc


def test_every_bad_entry_is_listed_with_its_path(db):
    """A file with six kinds of bad entry is refused, each one listed at its path, in order."""
    exc = rejection(db, several_bad_entries())
    assert paths(exc) == [
        "accounts[0].email",
        "accounts[1].phone",
        "instances[0].edition",
        "instances[1].domains[0].name",
        "instances[2].expires_at",
        "instances[3].id",
    ]
    assert message_at(exc, "instances[1].domains[0].name").startswith(
        "'exa mple.com' is not a valid domain name"
    )
    assert "platinum" in message_at(exc, "instances[0].edition")
    assert "naive" in message_at(exc, "instances[2].expires_at")


def test_error_text_lists_every_problem_and_what_to_do(db):
    """The exception's text has one line per problem and ends with what to do."""
    exc = rejection(db, several_bad_entries())
    lines = str(exc).splitlines()
    for path, message in exc.errors:
        assert f"  {path}: {message}" in lines
    assert "import the file again" in lines[-1]
    assert isinstance(exc, InputError)


def test_the_error_survives_pickling(db):
    """The list of problems is kept when the exception crosses a process boundary."""
    exc = rejection(db, several_bad_entries())
    copied = pickle.loads(pickle.dumps(exc))
    assert copied.errors == exc.errors and str(copied) == str(exc)


def test_a_refused_file_changes_nothing(db):
    """A refused re-import leaves every stored row as it was."""
    load(db, sample())
    before = export(db)
    doc = several_bad_entries()
    doc["editions"][0]["monthly_price"] = "11.00"
    rejection(db, doc)
    assert export(db) == before


def test_a_refused_file_writes_nothing_to_an_empty_database(db):
    """Valid entries next to a bad one are not written either."""
    rejection(db, several_bad_entries())
    assert set(row_counts(db).values()) == {0}


def put(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a path written as in the error messages, e.g. ``a[0].b``."""
    steps: list[Any] = [
        int(step) if step.isdigit() else step for step in re.findall(r"[^.\[\]]+", path)
    ]
    parent: Any = doc
    for step in steps[:-1]:
        parent = parent[step]
    parent[steps[-1]] = value


RECORD = "instances[0].domains[0].records[0]"


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("editions[0].monthly_price", "-1.00", "negative"),
        ("editions[0].yearly_price", "1e3", "not a valid amount"),
        ("editions[0].yearly_price", 100, "decimal string"),
        ("editions[0].yearly_price", "1.005", "not a valid amount"),
        ("editions[0].rank", True, "whole number"),
        ("editions[1].rank", 1, "also the rank"),
        ("editions[1].yearly_price", "50.00", "prices may not fall as rank rises"),
        ("clusters[1].kind", "cheap", "not one of"),
        ("clusters[1].nameservers", [], "empty"),
        ("accounts[0].timezone", "Mars/Olympus", "IANA"),
        ("accounts[0].timezone", "../../etc/passwd", "IANA"),
        ("accounts[0].locale", "fr-FR", "not one of"),
        ("accounts[0].balance", "-5.00", "negative"),
        ("accounts[0].name", "x" * 201, "longer than 200"),
        ("accounts[0].colour", "red", "unknown field"),
        ("accounts[0].phone", "+1415555", "E.164"),
        ("accounts[0].phone", "+１４１５５５５０１２３", "E.164"),
        ("accounts[0].email", "alice@@example.com", "exactly one @"),
        ("accounts[0].email", "alice@localhost", "dot"),
        ("accounts[0].email", "a..b@example.com", "two dots in a row"),
        ("accounts[0].email", ".alice@example.com", "starts or ends with a dot"),
        ("accounts[0].email", "alice.@example.com", "starts or ends with a dot"),
        ("accounts[0].name", "Alice \u202egnp.exe", "U+202E"),
        ("accounts[0].name", "Alice\u200b Smith", "U+200B"),
        ("accounts[0].name", "Alice\u2066Smith", "U+2066"),
        ("editions[0].monthly_price", "-0.00", "negative"),
        ("instances[0].domains[0].registrar", "go\u202edaddy", "U+202E"),
        ("instances[0].id", "inst/../a01", "not a valid id"),
        ("instances[0].billing_cycle", "weekly", "not one of"),
        ("instances[0].account", "acct-nobody", "unknown account"),
        ("instances[0].cluster", "free", "free cluster"),
        ("instances[0].anchor_day", 15, "does not fit"),
        ("instances[0].anchor_time", "02:30", "does not fit expires_at (00:00:00 in"),
        ("instances[0].anchor_time", "00:00+08:00", "has an offset"),
        ("instances[0].expires_at", "2027-01-31", "naive"),
        ("instances[0].expires_at", 1700000000, "ISO 8601"),
        ("instances[0].released_at", "2027-02-08T00:00:00+00:00", "only a released instance"),
        ("instances[0].domains[0].epp_statuses[0]", "locked", "EPP status"),
        ("instances[0].domains[0].name", "1.2.3.4", "not a valid domain name"),
        ("instances[0].domains[0].name", "localhost", "not a valid domain name"),
        ("instances[1].domains[1].name", "ALICE-BLOG.example.net.", "also listed"),
        (f"{RECORD}.ttl", 0, "out of range"),
        (f"{RECORD}.ttl", 2**31, "out of range"),
        (f"{RECORD}.type", "SPF", "not a record type"),
        (f"{RECORD}.value", "300.1.1.1", "IPv4"),
        (f"{RECORD}.host", "www.example.cn.", "ends with a dot"),
        (f"{RECORD}.cluster", "free", "does not serve"),
        ("instances[0].domains[0].records[1].value", "-bad-.example", "host name"),
        ("instances[0].domains[0].records[2].value", "mail.example.cn", "preference host"),
        ("instances[0].domains[0].records[3].value", "x" * 4001, "longer than 4000"),
        ("extras", [], "unknown section"),
    ],
)
def test_each_kind_of_bad_value_is_named(db, path, value, words):
    """Each kind of bad value is refused at its path with a message that says why."""
    doc = sample()
    put(doc, path, value)
    exc = rejection(db, doc)
    assert exc.errors == [(path, exc.errors[0][1])]
    assert words in exc.errors[0][1]


def test_an_email_whose_name_is_not_ascii_is_refused(db):
    """An address with full-width dots before @ is refused at its path: plain SMTP cannot
    send to it."""
    doc = sample()
    doc["accounts"][0]["email"] = "a\uff0e\uff0eb@x.com"
    exc = rejection(db, doc)
    assert paths(exc) == ["accounts[0].email"]
    assert "the part before @ has characters other than ASCII" in str(exc)


def test_every_problem_of_one_entry_is_listed_in_field_order(db):
    """A bad value does not hide an unknown reference or a repeated id in the same entry."""
    doc = sample()
    instance = doc["instances"][1]
    instance.update(id="inst-a01", account="acct-nobody", expires_at="soon", edition="gold")
    exc = rejection(db, doc)
    assert paths(exc) == [
        "instances[1].id",
        "instances[1].account",
        "instances[1].edition",
        "instances[1].expires_at",
    ]


def test_reference_to_a_stored_entry_is_accepted(db):
    """An instance may name an account, edition and cluster that are only in the database."""
    load(db, sample())
    doc = {"instances": [dict(sample()["instances"][2], id="inst-b01", domains=[])]}
    load(db, doc)
    assert any(i["id"] == "inst-b01" for i in export(db)["instances"])


def test_a_domain_of_another_stored_instance_is_refused(db):
    """A domain already hosted on an instance not in the file is refused."""
    load(db, sample())
    instance = dict(sample()["instances"][2], id="inst-b01")
    exc = rejection(db, {"instances": [instance]})
    assert paths(exc) == ["instances[0].domains[0].name"]
    assert "already belongs to the instance 'inst-a03'" in exc.errors[0][1]


def test_a_released_instance_needs_a_free_cluster(db):
    """A released instance is refused when no free cluster exists to serve its records."""
    doc = sample()
    doc["clusters"] = [c for c in doc["clusters"] if c["kind"] == "paid"]
    doc["instances"][3]["domains"][0]["nameservers"] = []
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[3].state"]


def test_a_second_free_cluster_is_refused(db):
    """There is one free cluster."""
    load(db, sample())
    exc = rejection(
        db, {"clusters": [{"code": "free-2", "kind": "free", "nameservers": ["ns.x.example"]}]}
    )
    assert paths(exc) == ["clusters[0].kind"]


# --- hostile input ---------------------------------------------------------------------


def test_crlf_in_a_domain_name_is_refused_and_escaped(db):
    """A domain name with CR/LF is refused, and the message shows it escaped."""
    doc = sample()
    doc["instances"][0]["domains"][0]["name"] = "example.cn\r\nBcc: victim@example.org"
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[0].domains[0].name"]
    assert "\r" not in str(exc) and "\n" not in exc.errors[0][1]
    assert "\\r\\n" in exc.errors[0][1]


def test_crlf_in_an_account_name_is_refused(db):
    """An account name with a line break is refused."""
    doc = sample()
    doc["accounts"][0]["name"] = "Alice\nSmith"
    assert paths(rejection(db, doc)) == ["accounts[0].name"]


def test_joiners_in_a_name_are_accepted(db):
    """Zero-width joiners, which shape some scripts and emoji, are not format tricks."""
    doc = sample()
    doc["accounts"][0]["name"] = "Alice \U0001f469\u200d\U0001f4bb \u0645\u200c\u0646"
    load(db, doc)
    assert export(db)["accounts"][0]["name"] == doc["accounts"][0]["name"]


def test_nul_and_lone_surrogates_are_refused(db):
    """Characters no database column can hold are refused, not passed to the driver."""
    doc = sample()
    doc["accounts"][0]["name"] = "Alice\x00"
    doc["instances"][0]["domains"][0]["records"][3]["value"] = "v=spf1 \ud800"
    assert paths(rejection(db, doc)) == [
        "accounts[0].name",
        "instances[0].domains[0].records[3].value",
    ]


def test_idn_is_stored_as_punycode(db):
    """A Unicode domain name is stored as its lower-case A-label."""
    doc = sample()
    doc["instances"][0]["domains"][0]["name"] = "例子.测试"
    load(db, doc)
    with db.session() as s:
        names = set(s.execute(select(Domain.name)).scalars())
    assert "xn--fsqu00a.xn--0zwm56d" in names


def test_punycode_and_unicode_spellings_are_one_domain(db):
    """The same IDN in punycode (any case) and in Unicode is a duplicate."""
    doc = sample()
    doc["instances"][0]["domains"][0]["name"] = "XN--FSQU00A.xn--0zwm56d"
    doc["instances"][2]["domains"][0]["name"] = "例子.测试"
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[2].domains[0].name"]


def json_values(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
        | st.sampled_from(["", "personal", "paid-east", "free", "acct-bob", "2027-01-01", "A"])
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def positions(value: Any, trail: tuple = ()) -> list[tuple]:
    """Every place in a document where a value sits, as a trail of keys and indexes."""
    found = [trail]
    if isinstance(value, dict):
        for key, child in value.items():
            found += positions(child, (*trail, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += positions(child, (*trail, i))
    return found


SAMPLE_POSITIONS = positions(sample())[1:]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_value_at_any_position_never_gives_a_traceback(db, data):
    """Replacing any part of a valid file by any JSON value is accepted or refused cleanly."""
    doc = sample()
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        trail = data.draw(st.sampled_from(SAMPLE_POSITIONS))
        parent = doc
        try:
            for step in trail[:-1]:
                parent = parent[step]
            parent[trail[-1]] = data.draw(json_values())
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this position
    with db.session() as s:
        try:
            import_inventory(doc, s, now=NOW)
        except InventoryInvalid as exc:
            assert exc.errors and all(path or message for path, message in exc.errors)
        s.rollback()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(doc=json_values(max_leaves=12) | st.fixed_dictionaries({"instances": json_values()}))
def test_any_document_never_gives_a_traceback(db, doc):
    """Any JSON document at all is accepted or refused with a listed reason."""
    with db.session() as s:
        try:
            validate_inventory(doc, s, now=NOW)
        except InventoryInvalid as exc:
            assert exc.errors


# --- re-import -------------------------------------------------------------------------


def test_reimport_updates_by_key(db):
    """Re-importing the same codes and ids updates them instead of adding rows."""
    load(db, sample())
    doc = sample()
    doc["editions"][0]["monthly_price"] = "12.00"
    doc["accounts"][1]["email"] = "bob@example.net"
    doc["instances"][1]["auto_renew"] = False
    load(db, doc)
    state = export(db)
    assert state["editions"][0]["monthly_price"] == "12.00"
    assert state["accounts"][1]["email"] == "bob@example.net"
    assert state["instances"][1]["auto_renew"] is False
    assert row_counts(db)["Instance"] == 4 and row_counts(db)["Record"] == 14


def test_reimport_replaces_the_domains_and_records_of_an_instance(db):
    """An instance's listed domains replace its stored ones, records re-created."""
    load(db, sample())
    with db.session() as s:
        old_id = s.execute(
            select(Domain.id).where(Domain.name == "alice-shop.example.com")
        ).scalar_one()
        s.add(
            Ticket(
                domain_id=s.execute(
                    select(Domain.id).where(Domain.name == "alice-blog.example.net")
                ).scalar_one(),
                instance_id="inst-a02",
                reason="external_registrar",
                created_at=datetime(2026, 12, 12, tzinfo=UTC),
            )
        )
        s.commit()
    doc = sample()
    shop = doc["instances"][1]["domains"][1]
    shop["records"] = [{"type": "A", "host": "@", "value": "198.51.100.99", "ttl": 300}]
    doc["instances"][1]["domains"] = [shop]
    counts = load(db, doc)
    assert counts["domains_removed"] == 1
    [instance] = [i for i in export(db)["instances"] if i["id"] == "inst-a02"]
    assert [d["name"] for d in instance["domains"]] == ["alice-shop.example.com"]
    assert instance["domains"][0]["records"] == [
        {"type": "A", "host": "@", "value": "198.51.100.99", "ttl": 300, "cluster": "paid-east"}
    ]
    with db.session() as s:
        # The kept domain keeps its row, so what refers to it stays valid.
        assert (
            s.execute(select(Domain.id).where(Domain.name == "alice-shop.example.com")).scalar_one()
            == old_id
        )


def test_an_instance_without_domains_keeps_them(db):
    """Leaving out "domains" keeps the stored domains; their records follow a release."""
    load(db, sample())
    doc = sample()
    instance = doc["instances"][2]
    del instance["domains"]
    instance["state"] = "released"
    load(db, {"instances": [instance]})
    [exported] = [i for i in export(db)["instances"] if i["id"] == "inst-a03"]
    assert [d["name"] for d in exported["domains"]] == ["bobs-garage.example.org"]
    assert {r["cluster"] for r in exported["domains"][0]["records"]} == {"free"}


def test_a_domain_moves_between_instances_of_one_file(db):
    """A domain listed under another instance of the same file moves there."""
    load(db, sample())
    doc = sample()
    moved = doc["instances"][1]["domains"].pop(0)
    doc["instances"][2]["domains"].append(moved)
    load(db, doc)
    owners = {d["name"]: i["id"] for i in export(db)["instances"] for d in i["domains"]}
    assert owners["alice-blog.example.net"] == "inst-a03"


def renewed(db, instance_id: str, until: datetime, amount: str) -> int:
    """Renews an instance as a run does: a paid order up to ``until``, the expiry moved
    there, the account charged. Returns the order's id."""
    with db.session() as s:
        instance = s.get(Instance, instance_id)
        order = Order(
            key=f"{instance_id}:auto_renewal:{until.date()}",
            instance_id=instance_id,
            kind="auto_renewal",
            period_start=instance.expires_at,
            period_end=until,
            amount=Decimal(amount),
            state="paid",
            created_at=instance.expires_at,
            paid_at=instance.expires_at,
        )
        s.add(order)
        instance.expires_at, instance.state = until, "active"
        s.get(Account, instance.account_id).balance -= Decimal(amount)
        s.commit()
        assert order.id is not None
        return order.id


def test_a_stale_expiry_before_a_paid_period_is_refused(db):
    """Re-importing a file older than a renewal, which would move the expiry back before
    the paid period ends, is refused at that expiry, naming the order."""
    load(db, sample())
    order_id = renewed(db, "inst-a01", datetime(2027, 2, 27, 16, tzinfo=UTC), "0.00")
    before = export(db)
    exc = rejection(db, sample())
    assert paths(exc) == ["instances[0].expires_at"]
    assert f"2027-02-27 16:00 UTC, the end of the period paid by order {order_id}" in str(exc)
    assert export(db) == before


def test_a_balance_charged_by_paid_orders_is_not_reset(db):
    """A file whose balance differs from the stored one of an account with paid orders is
    refused, so that a stale file does not refund what the orders charged."""
    load(db, sample())
    renewed(db, "inst-a01", datetime(2027, 2, 27, 16, tzinfo=UTC), "20.00")
    exc = rejection(db, {"accounts": sample()["accounts"]})
    assert paths(exc) == ["accounts[2].balance"]
    assert "'3000.00' is not the stored balance '2980.00', which 1 paid order charged" in str(exc)
    assert "add money with `dns-lifecycle top-up ACCOUNT" in str(exc)


def test_a_balance_topped_up_is_not_reset_by_a_file_older_than_the_top_up(db):
    """A top-up counts as the orders do: a file whose balance differs from the stored
    one of a topped-up account is refused, so the money added is not erased."""
    from dns_lifecycle.store.top_ups import top_up

    load(db, sample())
    with db.session() as s:
        top_up(s, account_id="acct-bob", amount=Decimal("50"), request_key="pay-1", now=NOW)
        s.commit()
    exc = rejection(db, {"accounts": sample()["accounts"]})
    assert paths(exc) == ["accounts[1].balance"]
    assert "'0.00' is not the stored balance '50.00', which 1 top-up added" in str(exc)
    assert export(db)["accounts"][1]["balance"] == "50.00"


def test_a_top_up_in_a_file_is_refused_pointing_to_the_top_up_command(db):
    """An account entry with "top_up" is refused at it: a file imported twice would add
    the money twice; the refusal names the command that adds it once."""
    load(db, sample())
    wang = dict(sample()["accounts"][2], top_up="50.00")
    exc = rejection(db, {"accounts": [wang]})
    assert paths(exc) == ["accounts[0].top_up"]
    assert "`dns-lifecycle top-up ACCOUNT --amount X --request-key K`" in str(exc)
    assert export(db)["accounts"][2]["balance"] == "3000.00"


def test_a_balance_past_what_the_column_holds_is_refused(db):
    """A balance of 13 digits before the point is refused saying the most it can be,
    not taken (SQLite) nor left to the database to refuse (PostgreSQL)."""
    doc = sample()
    doc["accounts"][1]["balance"] = "1000000000000.00"
    exc = rejection(db, doc)
    assert paths(exc) == ["accounts[1].balance"]
    assert "more than an amount can be: at most '999999999999.99'" in str(exc)


def test_an_expired_instance_is_not_made_active_by_a_stale_file(db):
    """A file that says active for an instance stored as expired, with no later expiry,
    is refused at its state."""
    load(db, sample())
    doc = sample()
    doc["instances"][2]["state"] = "active"
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[2].state"]
    assert "'expired' in the database, expired at 2026-11-20 00:00 UTC" in str(exc)


def test_an_expired_instance_with_a_later_expiry_becomes_active(db):
    """An expired instance given a later expiry (a renewal recorded by file) is active."""
    load(db, sample())
    doc = sample()
    doc["instances"][2].update(state="active", expires_at="2026-12-20T00:00:00+00:00")
    load(db, doc)
    assert export(db)["instances"][2]["state"] == "active"


def test_an_expired_instance_becomes_active_only_with_an_expiry_after_now(db):
    """An expired instance given a later expiry that is still past is refused at its
    state: it would be active with no time left, and its expiry then movable back."""
    load(db, sample())
    doc = sample()
    doc["instances"][2].update(state="active", expires_at="2026-11-20T00:00:01+00:00")
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[2].state"]
    assert "only with an expires_at after now (2026-12-01 00:00 UTC)" in str(exc)


def test_an_instance_with_paid_orders_stays_with_the_account_that_paid_them(db):
    """Moving an instance with paid orders to another account is refused at its account:
    its old account would then seem to have no charges, and its balance be settable."""
    load(db, sample())
    order_id = renewed(db, "inst-a01", datetime(2027, 2, 27, 16, tzinfo=UTC), "20.00")
    instance = sample()["instances"][0]
    del instance["anchor_day"]
    instance.update(account="acct-bob", expires_at="2027-02-27T16:00:00+00:00")
    exc = rejection(db, {"instances": [instance]})
    assert paths(exc) == ["instances[0].account"]
    assert f"'acct-wang', which paid its orders (the latest order {order_id}" in str(exc)


def upgraded(db, instance_id: str, edition: str, amount: str) -> int:
    """Upgrades an instance as ``dns-lifecycle upgrade`` does: a paid order for the time
    until its expiry, the edition changed, the account charged. Returns the order's id."""
    with db.session() as s:
        instance = s.get(Instance, instance_id)
        order = Order(
            key=f"upgrade:{instance_id}:{edition}",
            instance_id=instance_id,
            kind="upgrade",
            period_start=NOW,
            period_end=instance.expires_at,
            amount=Decimal(amount),
            state="paid",
            edition_code=edition,
            created_at=NOW,
            paid_at=NOW,
        )
        s.add(order)
        instance.edition_code = edition
        s.get(Account, instance.account_id).balance -= Decimal(amount)
        s.commit()
        assert order.id is not None
        return order.id


def test_a_stale_edition_does_not_undo_a_paid_upgrade(db):
    """A file older than a paid upgrade, giving the old edition, is refused at the
    edition, naming the upgrade's order."""
    load(db, sample())
    order_id = upgraded(db, "inst-a01", "enterprise-ultimate", "168.00")
    doc = sample()
    del doc["accounts"]
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[0].edition"]
    assert f"order {order_id} paid the upgrade to 'enterprise-ultimate'" in str(exc)


@pytest.mark.parametrize("state", ["expired", "released"])
def test_an_instance_with_time_left_is_not_ended_by_import(db, state):
    """An instance whose stored expiry is after now cannot be made expired or released
    by a file: its time is paid for."""
    load(db, sample())
    doc = sample()
    doc["instances"][1]["state"] = state
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[1].state"]
    assert "until 2026-12-05 05:00 UTC, after now (2026-12-01 00:00 UTC)" in str(exc)


def test_a_release_after_now_is_refused(db):
    """A released_at after the moment of the import is refused: a release is recorded
    once it has happened."""
    doc = sample()
    doc["instances"][3]["released_at"] = "2026-12-24T00:00:00+00:00"
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[3].released_at"]
    assert "2026-12-24 00:00 UTC is after now (2026-12-01 00:00 UTC)" in str(exc)


def test_a_release_before_the_grace_period_ends_is_refused(db):
    """An instance given as released before its 7 days of grace are over (by its state,
    or by a released_at inside them) is refused: the lifecycle releases it then."""
    doc = sample()
    doc["instances"][2]["state"] = "released"  # expired 2026-11-20: grace until 11-27
    doc["instances"][3]["released_at"] = "2026-11-05T00:00:00+00:00"  # expired 10-30 16:00
    doc["instances"][2]["expires_at"] = "2026-11-28T00:00:00+00:00"  # London: the 28th
    doc["instances"][2]["anchor_day"] = 28
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[2].state", "instances[3].released_at"]
    assert "'released' before the grace period ends (2026-12-05 00:00 UTC" in str(exc)
    assert "before the end of the grace period (2026-11-06 16:00 UTC" in str(exc)


def test_an_instance_expired_before_its_expiry_is_refused(db):
    """A new instance given as expired with its expiry still ahead is refused."""
    doc = sample()
    doc["instances"][2]["expires_at"] = "2026-12-20T00:00:00+00:00"  # anchor day 20
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[2].state"]
    assert "'expired' with expires_at 2026-12-20 00:00 UTC after now" in str(exc)


def test_a_released_instance_cannot_be_changed_by_import(db):
    """Any change to an instance stored as released is refused at the changed field,
    naming the release; the same entry as stored is accepted."""
    load(db, sample())
    doc = sample()
    doc["instances"][3].update(edition="personal", auto_renew=True)
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[3].edition", "instances[3].auto_renew"]
    assert "released on 2026-11-07 16:00 UTC" in message_at(exc, "instances[3].auto_renew")
    load(db, sample())


def test_the_records_of_a_released_instance_cannot_be_changed_by_import(db):
    """A released instance's domains listed with other records are refused."""
    load(db, sample())
    doc = sample()
    doc["instances"][3]["domains"][0]["records"][0]["ttl"] = 60
    exc = rejection(db, doc)
    assert paths(exc) == ["instances[3].domains[0]"]
    assert "its records differ" in str(exc)


def test_editions_may_trade_ranks(db):
    """Two stored editions can swap ranks in one import."""
    load(db, sample())
    doc = {"editions": sample()["editions"][:2]}
    doc["editions"][0]["rank"], doc["editions"][1]["rank"] = 2, 1
    # Their prices follow them: a higher rank never costs less.
    for price in ("monthly_price", "yearly_price"):
        doc["editions"][0][price], doc["editions"][1][price] = (
            doc["editions"][1][price],
            doc["editions"][0][price],
        )
    load(db, doc)
    assert [e["code"] for e in export(db)["editions"]][:2] == ["enterprise-standard", "personal"]


def test_an_edition_cheaper_than_a_stored_lower_one_is_refused(db):
    """A new edition ranked above a stored one but with a lower monthly price is refused
    at its path, naming the stored edition; nothing is imported."""
    load(db, sample())
    doc = {
        "editions": [
            {"code": "cheap-top", "rank": 4, "monthly_price": "100.00", "yearly_price": "3000.00"}
        ]
    }
    exc = rejection(db, doc)
    assert paths(exc) == ["editions[0].monthly_price"]
    assert "less than the 200.00 of the stored edition 'enterprise-ultimate'" in message_at(
        exc, "editions[0].monthly_price"
    )
    assert len(export(db)["editions"]) == 3


def test_an_anchor_time_skipped_on_the_expiry_day_imports_and_exports_back(db):
    """New York, expiring 14 Mar 2027 03:30 EDT (02:30 skipped that day), anchored at
    02:30: accepted, stored, and exported as given."""
    doc = sample()
    instance = next(i for i in doc["instances"] if i["account"] == "acct-alice")
    instance.update(expires_at="2027-03-14T07:30:00+00:00", anchor_day=14, anchor_time="02:30:00")
    load(db, doc)
    exported = next(i for i in export(db)["instances"] if i["id"] == instance["id"])
    assert (exported["expires_at"], exported["anchor_time"]) == (
        "2027-03-14T07:30:00+00:00",
        "02:30:00",
    )


def test_an_account_balance_left_out_is_kept(db):
    """Re-importing an account without "balance" leaves its balance alone."""
    load(db, sample())
    account = sample()["accounts"][2]
    del account["balance"]
    bob = dict(sample()["accounts"][1], balance="7.00")
    load(db, {"accounts": [account, bob, dict(account, id="acct-new")]})
    balances = {a["id"]: a["balance"] for a in export(db)["accounts"]}
    assert balances == {
        "acct-alice": "25.00",
        "acct-bob": "7.00",
        "acct-wang": "3000.00",
        "acct-new": "0.00",
    }


def test_anchor_day_defaults_to_the_day_of_expiry_in_the_accounts_zone(db):
    """Without anchor_day, the anchor is the expiry's day of month in the account's zone
    (here Shanghai), not in UTC."""
    doc = sample()
    instance = doc["instances"][0]
    del instance["anchor_day"]
    instance["expires_at"] = "2027-02-01T00:30:00+08:00"  # 31 January in UTC
    load(db, doc)
    assert export(db)["instances"][0]["anchor_day"] == 1


def test_anchor_day_must_fit_the_local_day_of_expiry(db):
    """An anchor that fits the UTC day but not the day in the account's zone is refused."""
    doc = sample()
    doc["instances"][0]["expires_at"] = "2027-01-31T16:00:00+00:00"  # 1 Feb in Shanghai
    with pytest.raises(InventoryInvalid, match=r"anchor_day: 31 does not fit .*Asia/Shanghai"):
        load(db, doc)


def test_a_new_time_zone_must_fit_the_accounts_stored_instances(db):
    """An account moved to a zone where the anchor days of its stored instances, not
    listed in the file, no longer fit is refused at its time zone, one line each."""
    load(db, sample())
    wang = dict(sample()["accounts"][2], timezone="America/Los_Angeles")
    exc = rejection(db, {"accounts": [wang]})
    assert paths(exc) == ["accounts[0].timezone", "accounts[0].timezone"]
    assert ["'inst-a01'" in exc.errors[0][1], "'inst-a04'" in exc.errors[1][1]] == [True, True]
    assert "(day 30 in America/Los_Angeles)" in exc.errors[0][1]


def test_a_new_time_zone_that_fits_the_stored_instances_is_accepted(db):
    """An account's zone may change when its stored instances keep fitting their anchors."""
    load(db, sample())
    load(db, {"accounts": [dict(sample()["accounts"][1], timezone="Europe/Paris")]})
    assert export(db)["accounts"][1]["timezone"] == "Europe/Paris"


# --- reading the file ------------------------------------------------------------------


def test_bad_json_names_the_file_line_and_column(tmp_path):
    """A JSON syntax error is reported with the file, line and column."""
    path = tmp_path / "broken.json"
    path.write_text('{\n  "editions": [,]\n}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.json.*line 2, column 16"):
        read_inventory_file(path)


def test_missing_file_is_a_clear_error(tmp_path):
    """A missing file is an InputError naming it."""
    with pytest.raises(InputError, match="nowhere.json: no such file"):
        read_inventory_file(tmp_path / "nowhere.json")


def test_duplicate_keys_and_nan_are_refused(tmp_path):
    """JSON that Python would read loosely (a key twice, NaN) is refused."""
    path = tmp_path / "loose.json"
    path.write_text('{"editions": [], "editions": []}', encoding="utf-8")
    with pytest.raises(InputError, match="appears twice"):
        read_inventory_file(path)
    path.write_text('{"editions": NaN}', encoding="utf-8")
    with pytest.raises(InputError, match="NaN"):
        read_inventory_file(path)


def test_a_number_of_thousands_of_digits_gets_the_projects_own_message(tmp_path):
    """A number too long for any field is refused with its place in the file, not with
    Python's advice about its conversion limit."""
    path = tmp_path / "long.json"
    path.write_text('{"editions": [\n  {"rank": ' + "9" * 5000 + "}]}", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_inventory_file(path)
    message = str(caught.value)
    assert "5000 digits at line 2, column 12" in message
    assert "sys." not in message and "\n" not in message


def test_sample_file_reads(tmp_path):
    """The sample file parses to the document the tests use."""
    assert read_inventory_file(SAMPLE) == sample()


# --- vocabularies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "vocabulary"),
    [
        ("accounts[0].locale", types.LOCALES),
        ("instances[0].billing_cycle", types.BILLING_CYCLES),
        ("clusters[1].kind", ("paid",)),
    ],
)
def test_the_import_takes_the_words_the_models_declare(db, path, vocabulary):
    """Each word of a column's vocabulary is accepted; any other is refused with the list."""
    for word in vocabulary:
        doc = sample()
        put(doc, path, word)
        with db.session() as s:
            validate_inventory(doc, s, now=NOW)
    doc = sample()
    put(doc, path, "other")
    [(where, message)] = rejection(db, doc).errors
    assert where == path
    assert all(repr(word) in message for word in get_args(_column_type(path)))


def _column_type(path: str) -> Any:
    field = path.rsplit(".", 1)[1]
    model = {"accounts": AccountBase, "instances": InstanceBase, "clusters": ClusterBase}[
        path.split("[", 1)[0]
    ]
    return model.model_fields[field].annotation


@pytest.mark.parametrize(
    ("model", "field", "vocabulary"),
    [
        (AccountBase, "locale", types.LOCALES),
        (ClusterBase, "kind", types.CLUSTER_KINDS),
        (InstanceBase, "billing_cycle", types.BILLING_CYCLES),
        (InstanceBase, "state", types.INSTANCE_STATES),
        (OrderBase, "kind", types.ORDER_KINDS),
        (OrderBase, "state", types.ORDER_STATES),
        (RecordBase, "type", types.RECORD_TYPES),
    ],
)
def test_the_models_declare_the_shared_vocabularies(model, field, vocabulary):
    """A vocabulary column is typed with the one definition that import, rendering and
    the calendar read."""
    assert get_args(model.model_fields[field].annotation) == vocabulary
