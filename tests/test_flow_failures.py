"""How an expected failure shows in Prefect: the run ends Failed with one line that
says what to do, its logs hold no traceback, and a failed daily run still reports what
it did."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from flows.base import report_of
from flows.daily import DailyReport, daily_lifecycle
from flows.on_demand import renew_instance

AS_OF = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def test_a_refused_on_demand_run_ends_failed_with_one_line_and_no_traceback(db, flow_env, caplog):
    """Renewing an id that does not exist: Failed, the reason in one line, no traceback."""
    caplog.set_level(logging.INFO)
    state = renew_instance(instance_id="inst-nowhere", periods=1, return_state=True)
    assert state.is_failed()
    assert "inst-nowhere" in state.message and "\n" not in state.message
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "inst-nowhere" in logged
    assert "Traceback" not in logged and "Traceback" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)


def test_a_daily_run_with_a_failed_step_reports_every_step_and_names_the_failure(
    db, flow_env, monkeypatch, caplog
):
    """A step that fails by design does not hide the others' counts: the state carries
    the whole day's report, the failure is named, and no traceback is logged."""
    from dns_lifecycle.admin.seed import seed_fleet

    caplog.set_level(logging.INFO)
    seed_fleet(db, 120, seed=3, as_of=AS_OF)
    # An SMTP server that is not there: every email of the day fails to send.
    monkeypatch.setenv("DNSL_EMAIL_BACKEND", "smtp")
    monkeypatch.setenv("DNSL_SMTP_PORT", "1")
    monkeypatch.setenv("DNSL_SMTP_TIMEOUT_SECONDS", "2")
    state = daily_lifecycle(as_of=AS_OF, return_state=True)
    assert state.is_failed()
    report = report_of(state)
    assert isinstance(report, DailyReport)
    assert [s.step for s in report.steps] == [
        "auto-renew",
        "expire-instances",
        "send-renewal-reminders",
        "release-instances",
        "verify-delegations",
        "deliver-pending-notices",
    ]
    assert report.failed_steps and "deliveries failed" in report.failed_steps[0]
    assert sum(s.counts.get("sms_sent", 0) for s in report.steps) > 0
    assert not [r.getMessage() for r in caplog.records if r.exc_info]
    # Ledger keys read as typed: ":email:" would be an emoji in Prefect's console.
    assert report.failures and not any(":email:" in f for f in report.failures)
    assert "Traceback" not in caplog.text


def test_the_command_prints_what_a_failed_run_did_then_its_failures(
    db, flow_env, monkeypatch, capsys
):
    """`dns-lifecycle run` on a failing day: the summary on stdout, then the failures
    on stderr, exit 1, no traceback."""
    from dns_lifecycle.admin.cli import main
    from dns_lifecycle.admin.seed import seed_fleet

    seed_fleet(db, 120, seed=3, as_of=AS_OF)
    monkeypatch.setenv("DNSL_EMAIL_BACKEND", "smtp")
    monkeypatch.setenv("DNSL_SMTP_PORT", "1")
    code = main(["run", "--as-of", AS_OF.isoformat()])
    out, err = capsys.readouterr()
    assert code == 1
    assert "send-renewal-reminders" in out and "sms_sent" in out
    assert "the run ended Failed" in err and "deliveries failed" in err
    assert "Traceback" not in out + err


def test_a_run_on_a_database_never_migrated_fails_with_the_command_to_run(
    flow_env, monkeypatch, tmp_path, caplog
):
    """A worker pointed at an empty database: Failed, one line naming `db upgrade`."""
    from flows.expire import expire_instances

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    state = expire_instances(as_of=AS_OF, return_state=True)
    assert state.is_failed()
    assert "dns-lifecycle db upgrade" in state.message
    assert "Traceback" not in caplog.text


def test_too_many_failures_says_which_wait_for_the_next_run_and_which_for_a_person():
    """A permanent failure is not retried: the message does not promise it will be."""
    from dns_lifecycle.core.errors import TooManyFailures
    from flows.artifacts import check_failures
    from flows.common import StepReport

    report = StepReport(step="send-renewal-reminders", as_of=datetime.now(UTC), dry_run=False)
    report.add("email_sent", 8)
    report.add("email_permanent", 1)
    report.add("sms_transient", 1)
    with pytest.raises(TooManyFailures) as caught:
        check_failures(report, 0.05)
    text = str(caught.value)
    assert "2 of 10 deliveries failed" in text
    assert "Transient delivery failures stay pending and are retried by the next run" in text
    assert "permanent ones (an address or content the other side refuses) wait for a person" in text


def test_failed_releases_alone_are_named_without_deliveries():
    """Releases failed and nothing was delivered: the message says so, with no "0 of 0
    deliveries" and no advice about deliveries."""
    from dns_lifecycle.core.errors import TooManyFailures
    from flows.artifacts import check_failures
    from flows.common import StepReport

    report = StepReport(step="release-instances", as_of=datetime.now(UTC), dry_run=False)
    report.add("release_failures", 3)
    report.fail("instance inst-1: domain a.cn: cluster free could not be reached")
    with pytest.raises(TooManyFailures) as caught:
        check_failures(report, 0.05)
    text = str(caught.value)
    assert text.startswith("release-instances: 3 releases failed: instance inst-1: domain a.cn")
    assert "deliveries" not in text and "delivery" not in text
    assert "A failed release is taken up by the next run at its recorded stage" in text


def test_a_task_failing_with_an_expected_error_logs_no_traceback(db, flow_env, monkeypatch, caplog):
    """A step's task that raises one of the project's errors is logged in one line, its
    traceback left out."""
    from dns_lifecycle.core.errors import LifecycleError
    from flows import verify

    def refuse(ctx, instance_ids=None):
        raise LifecycleError("no free cluster is configured")

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(verify, "verify_open_tickets", refuse)
    state = verify.verify_delegations(as_of=AS_OF, dry_run=True, return_state=True)
    assert state.is_failed()
    assert "no free cluster is configured" in caplog.text
    assert "Traceback" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)


def test_a_run_started_by_hand_is_tagged_manual_and_its_steps_are_not(db, flow_env):
    """A daily run started from the command line (not by a schedule) carries the tag
    'manual', never 'scheduled'; its step runs are left as they are."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    state = daily_lifecycle(as_of=AS_OF, dry_run=True, return_state=True)
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(run_id).tags
        steps = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])
            )
        )
    assert "manual" in tags and "scheduled" not in tags
    assert steps and all("manual" not in s.tags for s in steps)


def test_the_daily_artifact_marks_a_failed_step_instead_of_nothing_to_do():
    """In the daily-lifecycle-summary artifact a step that failed without counts reads
    'failed', not 'nothing to do'."""
    from datetime import UTC, datetime

    from flows.artifacts import daily_markdown
    from flows.common import StepReport

    moment = datetime(2026, 12, 1, tzinfo=UTC)
    step = StepReport(step="verify-delegations", as_of=moment, dry_run=True)
    text = daily_markdown(moment, True, [step], ["verify-delegations: no free cluster"])
    assert "| verify-delegations | failed (see Failures) | 0 |" in text
    assert "nothing to do" not in text
