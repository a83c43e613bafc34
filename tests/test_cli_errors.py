"""The command's expected failures: one line on stderr naming what to do, exit 2, no
traceback; and output that ends quietly when its reader goes away."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dns_lifecycle.admin.cli import main

SAMPLE = Path(__file__).parent / "fixtures" / "inventory_small.json"


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    """Run the CLI in process against this test's database: (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DNSL_OUTBOX_DIR", str(settings.outbox_dir))

    def run(*argv: str, **env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        try:
            code = main(list(argv))
        except SystemExit as exit:  # the argument parser's refusals
            code = exit.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_database_never_migrated_says_to_run_db_upgrade(cli, tmp_path):
    """A database file without the schema is refused with the command that fixes it."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, _, err = cli("orders", "list", DATABASE_URL=url)
    assert code == 2
    assert "run `dns-lifecycle db upgrade`" in _one_line(err)


def test_a_database_that_does_not_exist_names_db_upgrade_and_the_demo(cli, tmp_path):
    """A missing SQLite file is refused with both ways to create it."""
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    code, _, err = cli("orders", "list", DATABASE_URL=url)
    line = _one_line(err)
    assert code == 2
    assert "does not exist yet" in line and "./scripts/demo.sh" in line


@pytest.mark.parametrize("where", ["afile/db.sqlite", "."])
def test_db_upgrade_of_a_database_that_cannot_be_made_is_refused_in_one_line(cli, tmp_path, where):
    """`db upgrade` where no database file can be made (its folder under a file, or the
    path a folder) exits 2 in one line naming DATABASE_URL."""
    (tmp_path / "afile").write_text("not a folder\n")
    url = f"sqlite:///{(tmp_path / where).resolve()}"
    code, _, err = cli("db", "upgrade", DATABASE_URL=url)
    assert code == 2
    assert "DATABASE_URL" in _one_line(err)


def test_a_run_with_an_outbox_that_cannot_be_made_is_refused_before_it_starts(cli, tmp_path):
    """`run` with DNSL_OUTBOX_DIR under a file exits 2 in one line, before Prefect or
    any step starts."""
    (tmp_path / "afile").write_text("not a folder\n")
    code, out, err = cli("run", DNSL_OUTBOX_DIR=str(tmp_path / "afile" / "outbox"))
    assert code == 2
    assert "DNSL_OUTBOX_DIR" in _one_line(err) and out == ""


def test_a_renewal_with_an_outbox_that_cannot_be_made_is_refused_and_charges_nothing(cli, tmp_path):
    """`renew` with DNSL_OUTBOX_DIR under a file exits 2 in one line before any order is
    made: the renewal's notice could not be sent."""
    cli("import", str(SAMPLE))
    (tmp_path / "afile").write_text("not a folder\n")
    outbox = str(tmp_path / "afile" / "outbox")
    code, _, err = cli("renew", "inst-a01", DNSL_OUTBOX_DIR=outbox)
    assert code == 2
    assert "DNSL_OUTBOX_DIR" in _one_line(err)
    assert cli("orders", "list", "--json")[1].strip() == "[]"


def test_a_database_an_older_revision_says_to_run_db_upgrade(cli, settings):
    """A schema behind the code's migrations is refused, not queried."""
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        code, _, err = cli("tickets", "list")
    finally:  # the PostgreSQL schema is shared by the session's tests
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        engine.dispose()
    assert code == 2
    assert "older schema" in _one_line(err) and "db upgrade" in err


def test_an_unreachable_database_is_named_without_its_password(cli):
    """A server that does not answer: the URL is shown with the password hidden."""
    url = "postgresql://admin:s3cret-pw@127.0.0.1:1/fleet"
    code, _, err = cli("orders", "list", DATABASE_URL=url)
    line = _one_line(err)
    assert code == 2
    assert "127.0.0.1:1/fleet" in line and "s3cret-pw" not in line
    assert "check DATABASE_URL" in line


def test_a_url_of_an_unknown_kind_says_which_urls_work(cli):
    """A URL scheme no driver serves is refused with the forms that work."""
    code, _, err = cli("orders", "list", DATABASE_URL="mongodb://127.0.0.1/fleet")
    assert code == 2
    assert "sqlite:///PATH or postgresql://" in _one_line(err)


def test_export_to_a_folder_that_does_not_exist_is_refused(cli, tmp_path):
    """`export --output` into a missing folder names the path and what to give."""
    target = tmp_path / "missing" / "state.json"
    code, _, err = cli("export", "--output", str(target))
    assert code == 2
    assert str(target) in _one_line(err) and "existing" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["tickets", "resolve", "99999999999999999999999"],
        ["tickets", "resolve", str(2**31)],
        ["orders", "list", "--limit", "99999999999999999999999"],
    ],
)
def test_a_number_too_large_for_the_database_is_refused_in_one_line(cli, argv):
    """An id or limit no database column can hold is refused before any query."""
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert "is too large: give at most" in _one_line(err)


@pytest.mark.parametrize("periods", ["99999999999999999999999", "9" * 5000, "37", "0"])
def test_periods_out_of_every_cycles_range_are_refused_with_the_real_bounds(cli, periods):
    """`renew --periods` beyond what any subscription renews by states the limits of a
    monthly and of a yearly one, not the largest number a column holds."""
    code, out, err = cli("renew", "inst-a01", "--periods", periods)
    assert code == 2 and out == ""
    line = _one_line(err)
    assert "give 1-36 months for a monthly subscription, 1-10 years for a yearly one" in line
    assert "9,223" not in line


@pytest.mark.parametrize(
    "argv",
    [["export", "--output", ""], ["preview-emails", ""], ["import", ""]],
)
def test_an_empty_path_is_refused_in_one_line(cli, tmp_path, monkeypatch, argv):
    """An empty file or folder name is refused, not taken for the current folder or for
    the option left out, and nothing is written."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert "an empty path names no" in _one_line(err)
    assert list(here.iterdir()) == []


LONG = "x" * 5000


@pytest.mark.parametrize(
    "argv",
    [
        ["instances", "show", LONG],
        ["renew", LONG],
        ["upgrade", LONG, "--edition", "personal"],
        ["auto-renew", LONG, "--on"],
        ["orders", "list", "--instance", LONG],
        ["clusters", "load-zones", LONG],
        ["upgrade", "inst-a01", "--edition", LONG],
    ],
)
def test_an_unknown_id_of_thousands_of_characters_is_cut_short_in_the_refusal(cli, argv):
    """An id that does not exist is quoted by its first characters, as a request key is,
    not echoed in full."""
    cli("import", str(SAMPLE))
    code, out, err = cli(*argv)
    line = _one_line(err)
    assert code == 2 and out == ""
    assert f"'{'x' * 60}...' does not exist" in line and len(line) < 250


def test_the_largest_id_a_row_can_have_is_looked_up(cli):
    """An id at the top of the range is a plain unknown ticket, on every database."""
    code, _, err = cli("tickets", "resolve", str(2**31 - 1))
    assert code == 2
    assert f"ticket {2**31 - 1} does not exist" in _one_line(err)


def test_retrying_an_unknown_ticket_is_refused_in_one_line(cli):
    """`tickets retry` of an id that does not exist: exit 2, one line naming it."""
    code, out, err = cli("tickets", "retry", "424242")
    assert code == 2 and out == ""
    assert "ticket 424242 does not exist" in _one_line(err)


@pytest.mark.parametrize("periods", ["1_0", " 10", "+10", "10 ", "\u0661\u0660", "-1"])
def test_a_whole_number_not_written_in_plain_digits_is_refused(cli, periods):
    """`--periods 1_0` is not read as 10: only the digits 0-9 make a number, nothing is
    charged."""
    cli("import", str(SAMPLE))
    before = cli("export", "--json")[1]
    code, out, err = cli("renew", "inst-a01", "--periods", periods)
    assert code == 2 and out == ""
    assert "is not a whole number: write it in the digits 0-9 only" in _one_line(err)
    assert cli("export", "--json")[1] == before


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_export_to_a_full_device_is_refused_in_one_line(cli):
    """A write that fails (no space left) names the file instead of a traceback."""
    code, _, err = cli("export", "--output", "/dev/full")
    assert code == 2
    assert "cannot write /dev/full: No space left on device" in _one_line(err)


def _failing_write(session, out):
    """An export that runs out of room halfway."""
    out.write('{"editions": [')
    out.flush()
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_export_leaves_the_earlier_one_as_it_was(cli, tmp_path, monkeypatch):
    """The export is written beside the file and renamed once complete: a write that
    fails leaves the earlier export whole and no partial file next to it."""
    (tmp_path / "exports").mkdir()
    target = tmp_path / "exports" / "state.json"
    assert cli("export", "--output", str(target))[0] == 0
    earlier = target.read_text()
    monkeypatch.setattr("dns_lifecycle.admin.inventory.write_state", _failing_write)
    code, _, err = cli("export", "--output", str(target))
    assert code == 2 and f"cannot write {target}" in _one_line(err)
    assert target.read_text() == earlier
    assert list(target.parent.iterdir()) == [target]


def test_a_failed_export_leaves_no_file(cli, tmp_path, monkeypatch):
    """An export that fails before it is complete leaves nothing behind."""
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    monkeypatch.setattr("dns_lifecycle.admin.inventory.write_state", _failing_write)
    code, _, err = cli("export", "--output", str(out_dir / "state.json"))
    assert code == 2 and "No space left on device" in _one_line(err)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("afile", "it is a file, not a folder"),
        ("afile/sub", "a part of that path is a file"),
        ("/proc/dns-lifecycle-gallery", "give a folder that can be made and written"),
    ],
)
def test_preview_emails_into_a_folder_that_cannot_be_made_is_refused(cli, tmp_path, where, says):
    """A file, a path under a file, or a place no folder can be made: one line naming it."""
    if where.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    (tmp_path / "afile").write_text("not a folder\n")
    target = tmp_path / where
    code, out, err = cli("preview-emails", str(target))
    assert code == 2 and out == ""
    line = _one_line(err)
    assert f"cannot write the gallery into {target}" in line and says in line
    assert (tmp_path / "afile").read_text() == "not a folder\n"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DNSL_REMINDER_OFFSETS_DAYS", "not json", "DNSL_REMINDER_OFFSETS_DAYS"),
        ("DNSL_BATCH_SIZE", "0", "DNSL_BATCH_SIZE"),
        ("DNSL_EMAIL_BACKEND", "pigeon", "DNSL_EMAIL_BACKEND"),
    ],
)
def test_a_malformed_setting_names_the_variable(cli, name, value, expected):
    """A setting that cannot be read is named by its environment variable."""
    code, _, err = cli("orders", "list", **{name: value})
    assert code == 2
    assert expected in _one_line(err)


@pytest.mark.parametrize("argv", [["export", "--json"], ["orders", "list"]])
def test_output_into_a_closed_pipe_ends_quietly(settings, argv):
    """`dns-lifecycle export --json | head -1` prints no BrokenPipeError."""
    from dns_lifecycle.admin.seed import seed_fleet
    from dns_lifecycle.core.db import Database

    db = Database(settings)
    seed_fleet(db, 300, seed=3, as_of=datetime(2026, 11, 30, tzinfo=UTC))
    db.dispose()
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    shell = f"{sys.executable} -m dns_lifecycle.admin.cli {' '.join(argv)} | head -c 20 >/dev/null"
    done = subprocess.run(
        ["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
