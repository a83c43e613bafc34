"""The back-off of a release waiting for a cluster's secondaries."""

from __future__ import annotations

import pytest

from dns_lifecycle.channels.clusters.catchup import delays


def test_the_waits_grow_to_their_cap_and_fit_in_the_budget():
    """Each wait doubles up to the cap, and all of them add up to the budget exactly."""
    waits = list(delays(60, first=0.5, factor=2, cap=10))
    assert waits[:6] == [0.5, 1, 2, 4, 8, 10]
    assert sum(waits) == pytest.approx(60) and max(waits) == 10


def test_no_budget_means_no_wait():
    """A wait of 0 seconds asks no second time."""
    assert list(delays(0)) == []
