"""The `dns-lifecycle` command in process: output, exit codes, and that a refusal
changes nothing. (`run` goes through Prefect and is covered by the flow tests.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dns_lifecycle.admin.cli import main

SAMPLE = Path(__file__).parent / "fixtures" / "inventory_small.json"


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    """Run the CLI against this test's database; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DNSL_OUTBOX_DIR", str(settings.outbox_dir))
    monkeypatch.setenv("DNSL_EMAIL_BACKEND", "memory")
    monkeypatch.setenv("DNSL_SMS_BACKEND", "memory")

    def run(*argv: str):
        try:
            code = main(list(argv))
        except SystemExit as exit:  # the argument parser's refusals
            code = exit.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _export(cli):
    code, out, _ = cli("export", "--json")
    assert code == 0
    return json.loads(out)


def test_import_then_export_lists_the_fleet(cli):
    """A valid file imports and shows up in the export."""
    code, out, _ = cli("import", str(SAMPLE))
    assert code == 0 and "imported" in out
    state = _export(cli)
    assert {i["id"] for i in state["instances"]} >= {"inst-a01", "inst-a02", "inst-a03"}


def test_a_bad_import_exits_2_names_every_problem_and_imports_nothing(cli, tmp_path):
    """All or nothing: two bad entries, both listed, nothing written."""
    doc = json.loads(SAMPLE.read_text())
    doc["accounts"][0]["email"] = "not an email"
    doc["instances"][0]["edition"] = "platinum"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, _, err = cli("import", str(bad))
    assert code == 2
    assert "accounts[0].email" in err and "instances[0].edition" in err
    assert _export(cli)["instances"] == []


def test_renew_prints_the_order_and_moves_the_expiry(cli):
    """`renew --periods 2` on a monthly instance buys two months."""
    cli("import", str(SAMPLE))
    code, out, _ = cli("renew", "inst-a01", "--periods", "2")
    assert code == 0 and "manual_renewal of inst-a01" in out and "paid" in out
    expiry = next(i for i in _export(cli)["instances"] if i["id"] == "inst-a01")["expires_at"]
    assert expiry.startswith("2027-03-30T16:00")  # 31 March 00:00 in Shanghai


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("renew", "inst-a04"), "released and cannot be renewed"),
        (("renew", "inst-a02", "--periods", "11"), "renews by 1 to 10 years"),
        (("renew", "inst-nope"), "instance 'inst-nope' does not exist"),
        (("upgrade", "inst-a02", "--edition", "personal"), "only upgrades"),
        (("upgrade", "inst-a02", "--edition", "enterprise-standard"), "already on edition"),
        (("auto-renew", "inst-a04", "--on"), "buy a new instance to host its domains"),
        (("top-up", "acct-nope", "--amount", "5", "--request-key", "t"), "does not exist"),
        (("top-up", "acct-bob", "--amount", "0", "--request-key", "t"), "a positive amount"),
        (
            ("top-up", "acct-wang", "--amount", "999999999999.99", "--request-key", "t"),
            "the most a balance holds; give at most ¥999,999,996,999.99",
        ),
        (("top-up", "acct-bob", "--amount", "1.005", "--request-key", "t"), "2 decimal places"),
        (("top-up", "acct-bob", "--amount", "-5", "--request-key", "t"), "no sign"),
        (("top-up", "acct-bob", "--amount", "1" * 13, "--request-key", "t"), "too large"),
        (("top-up", "acct-bob", "--amount", "5"), "required: --request-key"),
    ],
)
def test_refusals_exit_2_with_the_reason_and_change_nothing(cli, argv, message):
    """Each refusal says why on stderr, exits 2, and leaves the state as it was."""
    cli("import", str(SAMPLE))
    before = _export(cli)
    code, _, err = cli(*argv)
    assert code == 2 and message in err
    assert _export(cli) == before


@pytest.mark.parametrize(
    "argv",
    [
        ("renew", "inst-a01", "--periods", "1"),
        ("upgrade", "inst-a01", "--edition", "enterprise-ultimate"),
    ],
)
def test_a_request_key_longer_than_the_flows_take_is_refused(cli, argv):
    """A request key over 64 characters (the flows' limit) is refused in one line and
    nothing is charged, on SQLite as on PostgreSQL."""
    cli("import", str(SAMPLE))
    before = _export(cli)
    code, out, err = cli(*argv, "--request-key", "k" * 300)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and "300 characters, more than 64" in err
    assert _export(cli) == before


@pytest.mark.parametrize("key", ["k1 ", "a\nb", "a\u202eb", "clé"])
def test_a_request_key_with_spaces_or_invisible_characters_is_refused(cli, key):
    """A key is compared exactly: one with a space, a line break, a bidi override or a
    letter outside ASCII would look like another key where it is shown; refused."""
    cli("import", str(SAMPLE))
    code, out, err = cli("top-up", "acct-bob", "--amount", "5", "--request-key", key)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "a space or a character other than printable ASCII" in err


def test_an_empty_request_key_is_refused(cli):
    """`--request-key ""` (an unset variable) would renew anew on every repeat: refused."""
    cli("import", str(SAMPLE))
    before = _export(cli)
    code, _, err = cli("renew", "inst-a01", "--request-key", "")
    assert code == 2 and err.count("\n") == 1 and "an empty request key" in err
    assert _export(cli) == before


def test_a_renewal_repeated_with_its_request_key_says_nothing_was_charged(cli):
    """The same `renew` again with its request key names the earlier order, says nothing
    was charged now, and counts no paid order."""
    cli("import", str(SAMPLE))
    first = cli("renew", "inst-a01", "--request-key", "r-1")[1]
    assert "nothing was charged" not in first and "orders_paid: 1" in first
    code, out, _ = cli("renew", "inst-a01", "--request-key", "r-1")
    assert code == 0
    assert "by an earlier request with this request key: nothing was charged now" in out
    assert "orders_repeated: 1" in out and "orders_paid" not in out


def test_a_repeated_upgrade_is_marked_repeated_in_json(cli):
    """`upgrade --json` repeated with its request key: `repeated` is true and no order
    is counted as paid, so a script does not count the charge twice."""
    cli("import", str(SAMPLE))
    argv = ("upgrade", "inst-a01", "--edition", "enterprise-ultimate", "--request-key", "u-1")
    first = json.loads(cli(*argv, "--json")[1])
    assert first["counts"]["orders_paid"] == 1 and first["plan"][0]["repeated"] is False
    again = json.loads(cli(*argv, "--json")[1])
    assert again["counts"] == {"orders_repeated": 1}
    assert again["plan"][0]["repeated"] is True
    assert again["plan"][0]["order"] == first["plan"][0]["order"]


def test_a_top_up_repeated_with_its_request_key_says_nothing_was_added(cli):
    """`top-up` adds the money and prints the balance; the same request again, after a
    renewal charged the account, adds nothing and says so."""
    cli("import", str(SAMPLE))
    argv = ("top-up", "acct-wang", "--amount", "10.00", "--request-key", "t-1")
    code, out, _ = cli(*argv)
    assert code == 0 and "¥10.00 to account acct-wang; balance ¥3,010.00" in out
    assert cli("renew", "inst-a01", "--request-key", "r-1")[0] == 0  # ¥10.00
    code, out, _ = cli(*argv)
    assert code == 0
    assert "by an earlier request with this request key: nothing was added now" in out
    assert "balance ¥3,000.00" in out
    balance = next(a for a in _export(cli)["accounts"] if a["id"] == "acct-wang")["balance"]
    assert balance == "3000.00"


def test_a_repeated_top_up_is_marked_repeated_in_json(cli):
    """`top-up --json` repeated with its request key: `repeated` is true, same top-up."""
    cli("import", str(SAMPLE))
    argv = ("top-up", "acct-bob", "--amount", "5", "--request-key", "t-1", "--json")
    first = json.loads(cli(*argv)[1])
    assert (first["repeated"], first["amount"], first["balance"]) == (False, "5.00", "5.00")
    again = json.loads(cli(*argv)[1])
    assert again["repeated"] is True and again["id"] == first["id"]


def test_instances_show_lists_the_top_ups_of_the_account(cli):
    """`instances show` lists each top-up of the instance's account with its key."""
    cli("import", str(SAMPLE))
    cli("top-up", "acct-wang", "--amount", "50", "--request-key", "t-1")
    code, out, _ = cli("instances", "show", "inst-a01")
    assert code == 0 and "top-up 1: ¥50.00 on " in out and "(request key t-1)" in out


def test_auto_renew_switch_reports_change_and_no_change(cli):
    """Switching off tells the account; switching off again says nothing changed."""
    cli("import", str(SAMPLE))
    assert "is now off" in cli("auto-renew", "inst-a01", "--off")[1]
    assert "already off" in cli("auto-renew", "inst-a01", "--off")[1]


def test_auto_renew_switch_says_the_email_is_queued_while_smtp_is_down(cli, monkeypatch):
    """With the SMTP server down, the switch says the email is queued and the SMS sent,
    not that the account was told."""
    cli("import", str(SAMPLE))
    monkeypatch.setenv("DNSL_EMAIL_BACKEND", "smtp")
    monkeypatch.setenv("DNSL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DNSL_SMTP_PORT", "1")  # nothing listens there
    monkeypatch.setenv("DNSL_SMTP_TIMEOUT_SECONDS", "2")
    code, out, _ = cli("auto-renew", "inst-a01", "--off")
    assert code == 0 and "is now off" in out
    assert "email queued (not sent yet; the next run sends it), SMS sent" in out
    assert "was told" not in out


def test_orders_tickets_and_instances_show(cli):
    """The listings print what the database holds."""
    cli("import", str(SAMPLE))
    assert cli("upgrade", "inst-a01", "--edition", "enterprise-ultimate")[0] == 0
    code, out, _ = cli("orders", "list")
    assert code == 0 and "upgrade" in out and "inst-a01" in out
    code, out, _ = cli("tickets", "list", "--state", "open")
    assert code == 0 and out.splitlines()[0].split()[0] == "id"
    code, out, _ = cli("instances", "show", "inst-a01")
    assert code == 0 and "example.cn" in out
    code, _, err = cli("tickets", "resolve", "999")
    assert code == 2 and "ticket 999 does not exist" in err


def test_orders_of_an_unknown_instance_are_refused(cli):
    """`orders list --instance nosuch` says the instance does not exist, as other
    commands do, instead of an empty list."""
    cli("import", str(SAMPLE))
    code, out, err = cli("orders", "list", "--instance", "inst-nope")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "instance 'inst-nope' does not exist" in err


def test_orders_of_an_empty_instance_id_are_refused(cli):
    """`orders list --instance ""` (an unset variable) is refused, not every order."""
    cli("import", str(SAMPLE))
    assert cli("renew", "inst-a01")[0] == 0
    code, out, err = cli("orders", "list", "--instance", "")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "an empty id names nothing" in err


def test_orders_list_shows_the_newest_first_and_says_how_many_the_limit_left_out(cli):
    """With more orders than --limit, the newest are listed and stderr says how many
    older ones there are and how to see them; the JSON stays a list."""
    cli("import", str(SAMPLE))
    for _ in range(3):
        assert cli("renew", "inst-a01")[0] == 0
    code, out, err = cli("orders", "list", "--limit", "2")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["3", "2"]
    assert err == "(the newest 2 of 3 orders: 1 older not shown; `--limit 3` shows them all)\n"
    code, out, err = cli("orders", "list", "--limit", "2", "--json")
    assert [o["id"] for o in json.loads(out)] == [3, 2] and "1 older not shown" in err
    assert cli("orders", "list")[2] == ""


def test_a_bad_as_of_is_refused_before_anything_runs(cli):
    """A date that is not a date names the field and the expected form."""
    code, _, err = cli("run", "--as-of", "tomorrow")
    assert code == 2 and "as_of 'tomorrow' is not a date" in err


def test_preview_emails_writes_a_gallery(cli, tmp_path):
    """The gallery's index is written and named."""
    code, out, _ = cli("preview-emails", str(tmp_path / "gallery"))
    assert code == 0 and (tmp_path / "gallery" / "index.html").exists()
    assert "index.html" in out


def test_renewing_past_the_grace_period_exits_2_with_its_end_and_charges_nothing(cli):
    """inst-a03 expired 20 Nov 2026 (London): its grace ended 27 Nov; a renewal today is
    refused in one line naming that date, and nothing changes."""
    cli("import", str(SAMPLE))
    before = _export(cli)
    code, out, err = cli("renew", "inst-a03", "--request-key", "late")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "grace period ended on 2026-11-27T00:00+00:00" in err
    assert _export(cli) == before


def test_renewing_past_the_last_year_an_expiry_can_reach_exits_2_naming_the_instance(cli, db):
    """An instance expiring in 9998 (the import takes that) renewed by two years is refused
    in one line, and nothing changes."""
    from datetime import UTC, datetime

    from tests.factories import make_instance

    with db.session() as s:
        make_instance(
            s, "inst-far", billing_cycle="yearly", expires_at=datetime(9998, 6, 1, tzinfo=UTC)
        )
        s.commit()
    before = _export(cli)
    code, out, err = cli("renew", "inst-far", "--periods", "2")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and "cannot renew instance inst-far by 2 years" in err
    assert _export(cli) == before


@pytest.mark.parametrize(
    "argv",
    [
        ("auto-renew", "inst-a03", "--on"),
        ("upgrade", "inst-a03", "--edition", "enterprise-ultimate"),
    ],
)
def test_a_change_past_the_grace_period_exits_2_without_asking_to_renew(cli, argv):
    """inst-a03's grace ended 27 Nov 2026: switching auto-renewal on or upgrading it is
    refused in one line saying it can no longer be renewed, not to renew it first (that
    renewal would be refused too), and nothing changes."""
    cli("import", str(SAMPLE))
    before = _export(cli)
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "grace period ended on 2026-11-27T00:00+00:00" in err
    assert "can no longer be renewed" in err and "renew it" not in err
    assert _export(cli) == before


def test_instances_show_gives_the_account_the_notices_and_the_tickets(cli, db):
    """`instances show` prints the account (balance, time zone, language), each notice
    with its kind, channel, state, creation time and error, and each ticket."""
    from datetime import UTC, datetime

    from models import Ticket

    cli("import", str(SAMPLE))
    assert cli("upgrade", "inst-a01", "--edition", "enterprise-ultimate")[0] == 0
    export = _export(cli)
    instance = next(i for i in export["instances"] if i["id"] == "inst-a01")
    account = next(a for a in export["accounts"] if a["id"] == instance["account"])
    with db.session() as s:
        from sqlmodel import select

        from models import Domain, Notification

        domain = s.exec(select(Domain).where(Domain.instance_id == "inst-a01")).first()
        sms = s.exec(select(Notification).where(Notification.channel == "sms")).one()
        sms.state, sms.error = "failed", "provider said isv.MOBILE_NUMBER_ILLEGAL"
        s.add(sms)
        s.add(
            Ticket(
                domain_id=domain.id,
                instance_id="inst-a01",
                reason="domain_locked",
                details={"domain": domain.name},
                created_at=datetime(2026, 11, 2, tzinfo=UTC),
            )
        )
        s.commit()
    code, out, _ = cli("instances", "show", "inst-a01")
    assert code == 0
    assert f"time zone {account['timezone']}, language {account['locale']}" in out
    assert "balance ¥" in out
    assert "2 notices:" in out
    lines = [line.split() for line in out.splitlines()]
    assert ["upgraded", "email", "sent"] in [line[1:4] for line in lines if len(line) >= 4]
    assert any(
        line[1:4] == ["upgraded", "sms", "failed"] and "isv.MOBILE_NUMBER_ILLEGAL)" in line
        for line in lines
    )
    assert f"domain_locked for {domain.name}, open, opened 2026-11-02T00:00:00+00:00" in out


def test_an_instance_without_notices_says_so(cli):
    """No notice yet: '0 notices', with no empty list after it."""
    cli("import", str(SAMPLE))
    code, out, _ = cli("instances", "show", "inst-a02")
    assert code == 0 and out.splitlines().count("  0 notices") == 1


@pytest.mark.parametrize(
    ("n", "noun", "shown"),
    [
        (1, "edition", "1 edition"),
        (3, "edition", "3 editions"),
        (1, "editions", "1 edition"),
        (2000, "instance", "2,000 instances"),
        (0, "tickets", "0 tickets"),
        (1, "notice", "1 notice"),
        (2, "top_ups", "2 top-ups"),
    ],
)
def test_counts_are_printed_with_the_noun_agreeing(n, noun, shown):
    """Counts say '1 edition', '3 editions', '2,000 instances'."""
    from dns_lifecycle.admin.cli_support import counted

    assert counted(n, noun) == shown


def test_seed_prints_its_counts_in_proper_plurals(cli):
    """`seed` prints '3 editions', '12 instances', never '3 edition'."""
    code, out, _ = cli("seed", "--instances", "12", "--as-of", "2026-11-01")
    assert code == 0
    assert out.startswith("seeded 3 editions, ")
    assert "12 instances" in out and " edition," not in out and " instance," not in out


def test_import_prints_its_counts_in_proper_plurals(cli, tmp_path):
    """An inventory of one account prints '1 account'."""
    doc = json.loads(SAMPLE.read_text())
    account = doc["accounts"][0]["id"]
    doc["instances"] = [i for i in doc["instances"] if i["account"] == account][:1]
    doc["accounts"] = doc["accounts"][:1]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(doc))
    code, out, _ = cli("import", str(one))
    assert code == 0 and "1 account, 1 instance," in out


def test_a_bad_console_url_exits_2_naming_the_setting(cli, monkeypatch):
    """DNSL_CONSOLE_URL with another placeholder is refused in one line before anything runs."""
    monkeypatch.setenv("DNSL_CONSOLE_URL", "https://console.example.com/{account_id}")
    code, out, err = cli("export")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "DNSL_CONSOLE_URL" in err and "only one allowed is {instance_id}" in err


def test_preview_emails_shows_the_console_links_when_set(cli, tmp_path, monkeypatch):
    """With DNSL_CONSOLE_URL set, the gallery's notices carry the console link; unset,
    the command says they carry none."""
    code, _, err = cli("preview-emails", str(tmp_path / "plain"))
    assert code == 0 and "DNSL_CONSOLE_URL is not set" in err
    assert "console.example.com" not in (tmp_path / "plain" / "index.html").read_text()
    monkeypatch.setenv("DNSL_CONSOLE_URL", "https://console.example.com/i/{instance_id}")
    code, _, err = cli("preview-emails", str(tmp_path / "linked"))
    assert code == 0 and err == ""
    page = (tmp_path / "linked" / "reminder-manual.en-US.html").read_text()
    assert 'href="https://console.example.com/i/dns-cn-7f3k2q9x"' in page


def test_the_default_prefect_home_is_made_with_its_parents(tmp_path, monkeypatch):
    """With the database elsewhere nothing makes var/, and Prefect makes its home
    without parents: the command makes var/prefect itself before Prefect starts."""
    from dns_lifecycle.admin import cli

    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path / "checkout")
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    cli._prefect_defaults()
    home = tmp_path / "checkout" / "var" / "prefect"
    assert home.is_dir()
    assert os.environ["PREFECT_HOME"] == str(home)


def test_the_summary_marks_a_failed_step_instead_of_nothing_to_do(settings):
    """A step that failed without counts reads 'failed', not 'nothing to do'."""
    from dns_lifecycle.admin.runs_cli import render_summary

    summary = {
        "dry_run": True,
        "as_of": "2026-12-01T00:00:00Z",
        "steps": [{"step": "verify-delegations", "duration_seconds": 0.1, "counts": {}}],
        "failed_steps": ["verify-delegations: no free cluster is configured"],
    }
    text = render_summary(summary, settings)
    assert "failed: see below" in text and "nothing to do" not in text


def test_the_summary_shows_each_steps_notes(settings):
    """A step's notes (what to set, what was left to another run) are printed under it."""
    from dns_lifecycle.admin.runs_cli import render_summary

    note = "2 domain(s) with an open ticket not checked: set DNSL_DNS_RESOLVERS"
    summary = {
        "dry_run": False,
        "as_of": "2026-12-01T00:00:00Z",
        "steps": [
            {
                "step": "verify-delegations",
                "duration_seconds": 0.1,
                "counts": {"domains_unchecked_no_resolvers": 2},
                "notes": [note],
            }
        ],
    }
    assert f"    note: {note}" in render_summary(summary, settings).splitlines()


def _all_parsers(parser):
    """``parser`` and every subcommand's parser below it."""
    import argparse

    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_no_parser_accepts_an_abbreviated_option():
    """Every parser and subparser takes options only as written in full."""
    from dns_lifecycle.admin.cli import build_parser

    parsers = list(_all_parsers(build_parser()))
    assert len(parsers) > 10
    assert [p.prog for p in parsers if p.allow_abbrev] == []


def test_renew_refuses_an_abbreviated_periods_option(cli):
    """`renew ID --period 1` is refused in one line, not read as `--periods 1`."""
    code, _, err = cli("renew", "inst-0000001", "--period", "1")
    assert code == 2
    assert "unrecognized arguments: --period" in err


def test_tickets_resolve_tells_the_account(cli, db):
    """`tickets resolve ID` of a manual-action ticket closes it and sends the account
    its 'ticket resolved' notice by email and SMS."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from dns_lifecycle.channels.email import memory as email_memory
    from dns_lifecycle.channels.sms import memory as sms_memory
    from models import Domain, Ticket
    from tests.factories import make_instance

    with db.session() as s:
        make_instance(
            s,
            "inst-t",
            expires_at=datetime(2026, 3, 1, tzinfo=UTC),
            state="released",
            domains=[{"name": "locked.cn", "records": []}],
        )
        domain_id = s.execute(select(Domain.id)).scalar_one()
        s.add(
            Ticket(
                domain_id=domain_id,
                instance_id="inst-t",
                reason="domain_locked",
                open_key=f"{domain_id}:domain_locked",
                created_at=datetime(2026, 3, 8, tzinfo=UTC),
            )
        )
        s.commit()
        ticket_id = s.execute(select(Ticket.id)).scalar_one()
    code, out, _ = cli("tickets", "resolve", str(ticket_id))
    assert code == 0
    assert out.strip() == f"ticket {ticket_id} resolved; the account was told"
    assert [m.key for m in email_memory.outbox] == [f"ticket_resolved:{ticket_id}:email"]
    assert len(sms_memory.outbox) == 1


def test_a_run_through_its_temporary_api_ends_without_a_logging_error(
    tmp_path, _sqlite_template, monkeypatch, capsys
):
    """`dns-lifecycle run` with no Prefect API configured hands its last log lines to
    its temporary API before stopping it: stderr has no "Error logging to API"."""
    import os
    import shutil
    import subprocess
    import sys

    from dns_lifecycle.core.settings import REPO_ROOT

    database = tmp_path / "cli.db"
    shutil.copy(_sqlite_template, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DNSL_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DATABASE_URL": f"sqlite:///{database}",
            "DNSL_OUTBOX_DIR": str(tmp_path / "outbox"),
        }
    )
    # The fleet is seeded in this process: only the run is about the process.
    for name in ("DATABASE_URL", "DNSL_OUTBOX_DIR"):
        monkeypatch.setenv(name, env[name])
    assert main(["seed", "--instances", "20", "--seed", "1"]) == 0
    capsys.readouterr()
    done = subprocess.run(
        [sys.executable, "-m", "dns_lifecycle.admin.cli", "run"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Finished in state Completed" in done.stderr
    assert "Error logging to API" not in done.stderr, done.stderr[-2000:]


def test_tickets_list_says_what_each_ticket_asks_for():
    """`tickets list` gives a delegation ticket the name servers the owner is to set,
    and a ticket that stops a release its problem, not name servers it never asked for."""
    from types import SimpleNamespace

    from dns_lifecycle.admin.tickets_cli import _to_do

    ns = ["ns1.free.example", "ns2.free.example"]
    locked = SimpleNamespace(reason="domain_locked", details={"set_nameservers": ns})
    conflict = SimpleNamespace(
        reason="free_zone_conflict",
        details={"problem": "the free cluster free already has a zone x.cn", "set_nameservers": ns},
    )
    assert _to_do(locked) == "set name servers ns1.free.example, ns2.free.example"
    assert _to_do(conflict) == "the free cluster free already has a zone x.cn"
