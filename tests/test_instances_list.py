"""`dns-lifecycle instances list`: the fleet filtered by state, expiry and account,
soonest expiry first, with what a limit left out on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dns_lifecycle.admin.cli import main

SAMPLE = Path(__file__).parent / "fixtures" / "inventory_small.json"


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    """The CLI on this test's database, with the small sample imported; returns a
    function giving (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DNSL_OUTBOX_DIR", str(settings.outbox_dir))

    def run(*argv: str):
        try:
            code = main(list(argv))
        except SystemExit as exit:  # the argument parser's refusals
            code = exit.code
        out = capsys.readouterr()
        return code, out.out, out.err

    assert run("import", str(SAMPLE))[0] == 0
    return run


def _ids(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:]]


def test_every_instance_is_listed_soonest_expiry_first(cli):
    """Without filters every instance is listed, the soonest expiry first."""
    code, out, err = cli("instances", "list")
    assert code == 0 and err == ""
    assert _ids(out) == ["inst-a04", "inst-a03", "inst-a02", "inst-a01"]


def test_the_filters_combine(cli):
    """--state, --expiring-before and --account each narrow the list, together too."""
    assert _ids(cli("instances", "list", "--state", "active")[1]) == ["inst-a02", "inst-a01"]
    before = cli("instances", "list", "--expiring-before", "2026-12-05T13:00:00+08:00")[1]
    assert _ids(before) == ["inst-a04", "inst-a03"]
    code, out, _ = cli(
        "instances", "list", "--account", "acct-wang", "--expiring-before", "2027-01-01"
    )
    assert code == 0 and _ids(out) == ["inst-a04"]


def test_released_instances_alone_come_newest_release_first(cli, db):
    """--state released lists the most recently released first."""
    from datetime import UTC, datetime

    from models import Instance

    with db.session() as s:
        a03 = s.get(Instance, "inst-a03")
        a03.state, a03.released_at = "released", datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
        s.commit()
    assert _ids(cli("instances", "list", "--state", "released")[1]) == ["inst-a03", "inst-a04"]


def test_the_limit_says_what_it_left_out_and_the_json_stays_a_list(cli):
    """With more matches than --limit, stderr says how many were left out and how to see
    them; --json prints the listed instances as a list."""
    code, out, err = cli("instances", "list", "--limit", "3", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["inst-a04", "inst-a03", "inst-a02"]
    assert rows[0]["state"] == "released" and rows[0]["released_at"].startswith("2026-11-07")
    assert err == (
        "(the soonest expiring 3 of 4 instances: 1 more not shown; `--limit 4` shows them all)\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--state", "gone"], "invalid choice: 'gone'"),
        (["--expiring-before", "2026-02-30"], "'2026-02-30' is not a date"),
        (["--expiring-before", "2026-12-01T00:00"], "has no time zone"),
        (["--account", ""], "an empty id names nothing"),
        (["--account", "acct-nobody"], "account 'acct-nobody' does not exist"),
        (["--limit", "0"], "0 is too small"),
    ],
)
def test_bad_filters_are_refused_in_one_line(cli, argv, message):
    """A bad filter exits 2 with one line naming it, and lists nothing."""
    code, out, err = cli("instances", "list", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err
