"""The report of one instance: the same text in `instances show` and, as markdown, in
the instance-report flow's artifact keyed by the instance."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from prefect.artifacts import Artifact

from dns_lifecycle.admin.cli import main
from dns_lifecycle.admin.instance_report import build_report, markdown_escape
from flows.on_demand import instance_report, report_key
from models import Order
from tests.factories import make_account, make_instance

EXPIRES = datetime(2026, 12, 20, 4, 0, tzinfo=UTC)


def _fleet(db, name: str = "Customer acct-1") -> None:
    with db.session() as s:
        make_account(s, "acct-1", balance=Decimal("42.50"), name=name)
        make_instance(s, "inst-1", expires_at=EXPIRES, auto_renew=True)
        s.add(
            Order(
                key="manual_renewal:inst-1:1",
                instance_id="inst-1",
                kind="manual_renewal",
                period_start=EXPIRES,
                period_end=datetime(2027, 1, 20, 4, 0, tzinfo=UTC),
                amount=Decimal("10.00"),
                state="failed",
                reason="balance too low",
                created_at=EXPIRES,
            )
        )
        s.commit()


def test_the_flow_publishes_the_report_keyed_by_the_instance(db, flow_env):
    """instance-report publishes the account and balance, the domains and the orders
    under the key instance-report-<id>."""
    _fleet(db)
    state = instance_report(instance_id="inst-1", return_state=True)
    assert state.is_completed()
    artifact = Artifact.get("instance-report-inst-1")
    assert artifact is not None and artifact.type == "markdown"
    text = str(artifact.data)
    assert text.startswith("# instance inst-1: active")
    assert "balance ¥42.50" in text
    assert "- domain inst-1.example.com at hichina" in text
    assert "- order 1: manual\\_renewal failed (balance too low) ¥10.00" in text


def test_the_flow_and_the_cli_say_the_same_lines(db, flow_env, capsys):
    """Each line `instances show` prints is a line of the artifact, in the same order."""
    _fleet(db)
    assert main(["instances", "show", "inst-1"]) == 0
    printed = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    instance_report(instance_id="inst-1")
    published = str(Artifact.get("instance-report-inst-1").data).splitlines()  # type: ignore[union-attr]
    unescaped = [
        re.sub(r"\\(.)", r"\1", line.strip().removeprefix("# ").removeprefix("- "))
        for line in published
        if line.strip()
    ]
    assert unescaped == printed


def test_an_unknown_instance_fails_the_run_in_one_line(db, flow_env):
    """An id that names no instance: Failed, one line naming it, no artifact."""
    state = instance_report(instance_id="inst-nowhere", return_state=True)
    assert state.is_failed()
    assert "instance 'inst-nowhere' does not exist" in state.message
    assert "\n" not in state.message
    assert Artifact.get("instance-report-inst-nowhere") is None


def test_customer_text_shows_as_text_in_markdown(db):
    """An account name with markdown or HTML in it is shown as written, not rendered."""
    _fleet(db, name="[click](http://evil.example) <b>*x*</b>")
    with db.session() as s:
        markdown = build_report(s, "inst-1").markdown()
    assert "\\[click\\](http://evil.example) \\<b\\>\\*x\\*\\</b\\>" in markdown
    assert markdown_escape("a_b|c") == "a\\_b\\|c"


def test_ids_that_differ_only_in_characters_a_key_cannot_hold_get_different_keys():
    """Artifact keys hold lower-case letters, digits and dashes: 'Inst.1' and 'inst_1'
    each get a key of their own, and a plain id is kept as it is."""
    keys = {report_key(i) for i in ("Inst.1", "inst_1", "inst-1", "INST-1")}
    assert len(keys) == 4
    assert report_key("inst-1") == "instance-report-inst-1"
    assert all(re.fullmatch(r"[a-z0-9-]+", k) for k in keys)
