"""The lock vocabulary and the registrar we act at (rule 7), as plain functions."""

from __future__ import annotations

import pytest

from dns_lifecycle.lifecycle.nameservers import (
    LOCK_STATUSES,
    is_hichina,
    lock_of,
    nameserver_action,
)


def test_the_update_locks_are_the_two_rfc_statuses():
    """Exactly clientUpdateProhibited and serverUpdateProhibited forbid an NS change."""
    assert set(LOCK_STATUSES) == {"clientUpdateProhibited", "serverUpdateProhibited"}


@pytest.mark.parametrize(
    ("statuses", "lock"),
    [
        (["clientUpdateProhibited"], "clientUpdateProhibited"),
        (["SERVERUPDATEPROHIBITED"], "serverUpdateProhibited"),
        ([" clientupdateprohibited "], "clientUpdateProhibited"),
        (["ok", "clientTransferProhibited"], None),
        ([], None),
    ],
)
def test_lock_of_reads_any_case_and_answers_the_rfc_spelling(statuses, lock):
    """A lock in any case or with blanks is found, and named as RFC 5731 spells it."""
    assert lock_of(statuses) == lock


def test_lock_of_answers_the_first_lock():
    """With both locks, the first listed is the one named."""
    assert lock_of(["serverUpdateProhibited", "clientUpdateProhibited"]) == (
        "serverUpdateProhibited"
    )


@pytest.mark.parametrize("name", ["hichina", "HiChina", "hichina ", " HICHINA"])
def test_hichina_in_any_case_and_spacing_is_hichina(name):
    """HiChina is recognised trimmed and case-folded."""
    assert is_hichina(name)


@pytest.mark.parametrize("name", ["godaddy", "hichina-reseller", ""])
def test_other_registrars_are_not_hichina(name):
    """Any other name, including one that merely starts alike, is another registrar."""
    assert not is_hichina(name)


def test_a_lock_in_another_case_still_stops_the_switch():
    """A HiChina domain whose lock is spelled in capitals is locked, not switched."""
    assert nameserver_action("HiChina ", ["CLIENTUPDATEPROHIBITED"]) == "domain_locked"
