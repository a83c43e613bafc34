"""The moment a run evaluates: readable, within the calendar, and never ahead of the clock
for a real run (the CLI and the Prefect flows refuse the same way)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from dns_lifecycle.core.errors import InputError
from flows.common import (
    FUTURE_SLACK,
    change_as_of,
    open_run,
    resolve_as_of,
    run_as_of,
    wall_clock,
)
from tests.test_cli import cli  # noqa: F401  (the fixture)

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01",
        "9999-12-31",
        "0001-01-01T00:00:00+08:00",
        "9999-12-31T23:59:59-05:00",
        date(1, 1, 1),
        datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=8))),
    ],
    ids=str,
)
def test_a_moment_at_the_ends_of_the_calendar_is_refused_clearly(value):
    """Years 1 and 9999 are an InputError naming the allowed years, not an OverflowError."""
    with pytest.raises(InputError, match="outside the years 1970-2999"):
        resolve_as_of(value, clock)


def test_a_real_run_refuses_a_moment_ahead_of_the_clock():
    """More than the slack ahead of now: refused, saying to use a dry run."""
    ahead = NOW + FUTURE_SLACK + timedelta(seconds=1)
    with pytest.raises(InputError, match="is in the future .* use a dry run to plan ahead"):
        run_as_of(ahead, False, clock)


def test_a_real_run_accepts_a_moment_within_the_slack_and_a_dry_run_any_moment():
    """Within the slack a real run goes ahead; a dry run plans any moment."""
    assert run_as_of(NOW + FUTURE_SLACK, False, clock) == NOW + FUTURE_SLACK
    far = datetime(2999, 1, 1, tzinfo=UTC)
    assert run_as_of(far, True, clock) == far


def test_opening_a_real_run_in_the_future_is_refused(settings):
    """Every flow opens its run through open_run: a future real run never starts."""
    with (
        pytest.raises(InputError, match="in the future"),
        open_run(wall_clock() + timedelta(days=1), False, None, settings=settings),
    ):
        pass  # pragma: no cover - never reached


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--as-of", "0001-01-01"),
        ("run", "--as-of", "9999-12-31"),
        ("run", "--as-of", "2999-06-01"),
        ("upgrade", "inst-a01", "--edition", "enterprise-standard", "--as-of", "9999-12-31"),
        ("upgrade", "inst-a01", "--edition", "enterprise-standard", "--as-of", "2999-06-01"),
        ("upgrade", "inst-a01", "--edition", "enterprise-standard", "--as-of", "2020-01-01"),
        ("seed", "--instances", "3", "--as-of", "0001-01-01"),
    ],
    ids=lambda argv: " ".join(argv),
)
def test_the_cli_refuses_a_bad_as_of_in_one_line(cli, argv):  # noqa: F811
    """Exit 2 and one line on stderr, no traceback, for a year out of range or the future."""
    code, out, err = cli(*argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dns-lifecycle: error: as_of")
    assert "Traceback" not in err + out


def test_the_daily_flow_refuses_a_future_moment_for_a_real_run(flow_env):
    """The Prefect flow (as the Custom run form starts it) fails with the one-line reason
    before any step runs."""
    from flows.daily import daily_lifecycle

    state = daily_lifecycle(
        as_of=wall_clock() + timedelta(hours=6), dry_run=False, return_state=True
    )
    assert state.is_failed()
    assert "is in the future" in state.message
    with pytest.raises(InputError):
        state.result()


# --- an upgrade takes effect now ----------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "side"),
    [(-(FUTURE_SLACK + timedelta(seconds=1)), "in the past"), (timedelta(days=3), "in the future")],
    ids=["past", "future"],
)
def test_an_upgrade_refuses_a_moment_away_from_the_clock_either_way(offset, side):
    """More than the slack before or after now: refused in one line saying an upgrade
    takes effect now, without pointing to a dry run the upgrade does not have."""
    with pytest.raises(InputError) as refused:
        change_as_of(NOW + offset, "an upgrade", clock)
    message = str(refused.value)
    assert side in message and message.endswith(": an upgrade takes effect now; leave as_of empty")
    assert "dry run" not in message and "\n" not in message


def test_an_upgrade_takes_the_clock_or_a_moment_within_the_slack():
    """No as_of is now; a moment within the slack either way (clocks differ) is kept."""
    assert change_as_of(None, "an upgrade", clock) == NOW
    assert change_as_of(NOW - FUTURE_SLACK, "an upgrade", clock) == NOW - FUTURE_SLACK
    assert change_as_of(NOW + FUTURE_SLACK, "an upgrade", clock) == NOW + FUTURE_SLACK


def test_the_cli_refuses_to_upgrade_as_of_before_an_expiry_that_has_passed(cli, settings):  # noqa: F811
    """An instance that expired two days ago (no run has marked it yet) cannot be upgraded
    by giving a moment before its expiry: refused in one line, nothing charged; without
    --as-of it is refused too, saying to renew it first."""
    from dns_lifecycle.core.db import Database
    from models import Instance
    from tests.test_cli import SAMPLE

    cli("import", str(SAMPLE))
    expired = wall_clock() - timedelta(days=2)
    db = Database(settings)
    with db.session() as s:
        s.get(Instance, "inst-a01").expires_at = expired
        s.commit()
    db.dispose()
    before = cli("export", "--json")[1]
    argv = ("upgrade", "inst-a01", "--edition", "enterprise-ultimate")
    code, out, err = cli(*argv, "--as-of", (expired - timedelta(hours=1)).isoformat())
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "in the past" in err and "takes effect now" in err
    code, _, err = cli(*argv)
    assert code == 2 and "renew it first" in err
    assert cli("export", "--json")[1] == before


def test_the_upgrade_flow_refuses_a_past_moment_and_its_form_says_why(flow_env):
    """The Prefect flow ends Failed with the one-line reason; the form's help for as_of
    says an upgrade takes effect now, and offers no dry run."""
    from prefect.utilities.callables import parameter_schema

    from flows.on_demand import upgrade_instance

    state = upgrade_instance(
        instance_id="inst-1",
        edition="enterprise-standard",
        as_of=wall_clock() - timedelta(days=1),
        return_state=True,
    )
    assert state.is_failed()
    assert "an upgrade takes effect now; leave as_of empty" in state.message
    help_text = parameter_schema(upgrade_instance).model_dump()["properties"]["as_of"]
    assert "takes effect now" in help_text["description"]
    assert "dry run" not in help_text["description"]


def test_the_cli_refuses_to_upgrade_within_the_slack_after_an_expiry(cli, settings):  # noqa: F811
    """An instance whose expiry passed a minute ago, upgraded --as-of four minutes ago
    (inside the slack, before the expiry): judged at the clock, refused in one line,
    nothing charged."""
    from dns_lifecycle.core.db import Database
    from models import Instance
    from tests.test_cli import SAMPLE

    cli("import", str(SAMPLE))
    now = wall_clock()
    db = Database(settings)
    with db.session() as s:
        s.get(Instance, "inst-a01").expires_at = now - timedelta(seconds=60)
        s.commit()
    db.dispose()
    before = cli("export", "--json")[1]
    argv = ("upgrade", "inst-a01", "--edition", "enterprise-ultimate")
    code, out, err = cli(*argv, "--as-of", (now - timedelta(seconds=240)).isoformat())
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "renew it first" in err
    assert cli("export", "--json")[1] == before
