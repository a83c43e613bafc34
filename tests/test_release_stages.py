"""The staged release's decisions, as plain functions: no database, no DNS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dns_lifecycle.lifecycle.expiry import (
    STAGES,
    change_by,
    drain_after_seen,
    drain_until,
    instance_released,
    may_delete_paid,
    next_action,
    zone_content,
)
from dns_lifecycle.lifecycle.zonefile import Rr

NOW = datetime(2027, 3, 8, 4, 0, tzinfo=UTC)


def test_each_stage_leads_to_the_next_action_in_order():
    """pending reads, read creates, created verifies ... draining deletes once over."""
    actions = [next_action(s, blocked=False, drain_until=NOW, now=NOW) for s in STAGES]
    assert actions == ["read", "create", "verify", "delegate", "poll", "drain", "delete", None]


def test_a_blocked_domain_waits_for_a_person():
    """While its ticket is open nothing happens to the domain, whatever its stage."""
    assert {next_action(s, blocked=True, drain_until=NOW, now=NOW) for s in STAGES} == {None}


def test_the_paid_copy_stays_until_the_drain_is_over():
    """A minute before the drain ends nothing is due; at its end, the deletion."""
    until = NOW + timedelta(hours=48)
    assert (
        next_action("draining", blocked=False, drain_until=until, now=until - timedelta(minutes=1))
        is None
    )
    assert next_action("draining", blocked=False, drain_until=until, now=until) == "delete"


def test_the_paid_copy_is_deleted_only_after_a_verified_free_copy():
    """The guard: unverified, or not draining, means no deletion."""
    assert may_delete_paid("draining", verified=True)
    assert not may_delete_paid("draining", verified=False)
    assert not any(may_delete_paid(s, verified=True) for s in STAGES if s != "draining")


def test_an_instance_is_released_once_every_domain_passed_the_delegation():
    """One domain still switching keeps the instance expired; no domains releases it."""
    assert instance_released(["delegated", "draining", "deleted"])
    assert not instance_released(["delegated", "switching"])
    assert instance_released([])


def test_drain_lengths_by_delegation_and_backend():
    """Switched: the NS TTL of the parent; ticketed: from the change-by date at the
    latest; a database cluster has no caches to wait for."""
    kw = {"drain_hours": 48, "manual_drain_days": 14}
    assert drain_until("switched", NOW, live=True, **kw) == NOW + timedelta(hours=48)
    assert drain_until("domain_locked", NOW, live=True, **kw) == NOW + timedelta(days=14, hours=48)
    assert change_by(NOW, 14) == NOW + timedelta(days=14)
    assert drain_until("switched", NOW, live=False, **kw) == NOW


@given(seen=st.integers(0, 30 * 24), hours=st.integers(0, 100))
def test_seeing_the_new_delegation_never_lengthens_the_drain(seen, hours):
    """The drain ends at the earlier of its planned end and seen + drain hours."""
    planned = NOW + timedelta(days=14, hours=48)
    at = NOW + timedelta(hours=seen)
    result = drain_after_seen(planned, at, hours)
    assert result <= planned and result == min(planned, at + timedelta(hours=hours))


@pytest.mark.parametrize("host", ["@", ""])
def test_zone_content_drops_soa_and_apex_ns_and_keeps_their_ttl(host):
    """The free cluster puts its own SOA and apex NS; delegations below stay."""
    records = [
        Rr("SOA", "@", "ns. host. 1 2 3 4 5", 3600),
        Rr("NS", host, "ns1.paid.example.", 172800),
        Rr("NS", "sub", "ns.elsewhere.example.", 600),
        Rr("A", "@", "192.0.2.1", 300),
    ]
    kept, ns_ttl = zone_content(records)
    assert kept == [records[2], records[3]] and ns_ttl == 172800
