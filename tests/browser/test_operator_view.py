"""The operator's view in a real browser: a Prefect server on loopback with every
deployment, the daily deployment run by a worker on a seeded fleet, and the flow run
page, the fleet outlook and an instance report read in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dns_lifecycle.admin.seed import seed_fleet
from dns_lifecycle.core.db import Database, upgrade
from dns_lifecycle.core.settings import REPO_ROOT, Settings
from tests.http_sink import HttpSink, Reply
from tests.smtp_server import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("DNSL_SCREENSHOT_DIR", REPO_ROOT / "var" / "screenshots"))
AS_OF = "2026-12-01T02:00:00+08:00"

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium (.ci/run installs it)",
    ),
    pytest.mark.slow(140),
]


def _api(url: str, body: dict | None = None):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _run_daily(env: dict, api: str, *params: str) -> None:
    """Run the daily deployment with ``name=value`` parameters and wait for it."""
    _run(env, api, "daily-lifecycle/daily", *params)


def _run(env: dict, api: str, deployment: str, *params: str) -> None:
    """Run ``deployment`` with ``name=value`` parameters and wait for it to complete."""
    argv = [sys.executable, "-m", "prefect", "deployment", "run", deployment]
    for param in params:
        argv += ["--param", param]
    run = subprocess.run(
        [*argv, "--watch", "--watch-timeout", "240"],
        env={**env, "PREFECT_API_URL": api},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Completed" in run.stdout, run.stdout + run.stderr


@pytest.fixture(scope="module")
def operator_view(tmp_path_factory):
    """`scripts/operator-view.sh --detach` on a free port, over a seeded SQLite fleet."""
    state = tmp_path_factory.mktemp("operator-view")
    db_url = f"sqlite:///{state / 'fleet.db'}"
    settings = Settings(database_url=db_url, outbox_dir=state / "outbox")
    upgrade(settings)
    db = Database(settings)
    seed_fleet(db, 300, seed=11, as_of=datetime(2026, 11, 30, 18, 0, tzinfo=UTC))
    db.dispose()
    port = free_port()
    alerts = HttpSink(lambda request: Reply(200, {"ok": True}))
    alerts.__enter__()
    env = {
        **os.environ,
        "PREFECT_PORT": str(port),
        "OPERATOR_VIEW_STATE": str(state),
        "DATABASE_URL": db_url,
        "DNSL_OUTBOX_DIR": str(state / "outbox"),
        "DNSL_EMAIL_BACKEND": "file",
        "DNSL_SMS_BACKEND": "file",
        "DNSL_ALERT_WEBHOOK_URL": f"{alerts.url}/alerts",
    }
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH"):
        env.pop(name, None)
    script = REPO_ROOT / "scripts" / "operator-view.sh"
    started = subprocess.run(
        [str(script), "--detach"], env=env, capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield {
            "api": f"http://127.0.0.1:{port}/api",
            "ui": f"http://127.0.0.1:{port}",
            "env": env,
            "state": state,
            "alerts": alerts,
        }
    finally:
        alerts.__exit__(None, None, None)
        subprocess.run([str(script), "--stop"], env=env, capture_output=True, timeout=60)
        # Keep the server's and worker's logs beside the screenshots for a failed run.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for log in ("server.log", "worker.log"):
            if (state / log).exists():
                shutil.copy(state / log, SCREENSHOTS / f"operator-view-{log}")


def test_daily_deployment_runs_and_the_page_shows_it_completed_with_its_counts(operator_view):
    """Every deployment is listed with the daily schedule; a run of the daily deployment
    by the worker completes, and its page shows Completed and the summary's counts."""
    api, env = operator_view["api"], operator_view["env"]
    deployments = _api(f"{api}/deployments/filter", {})
    names = {d["name"] for d in deployments}
    assert {"daily", "shard", "rerun-auto-renewal", "renew-an-instance"} <= names
    assert len(names) == len(deployments) == 14
    daily = next(d for d in deployments if d["name"] == "daily")
    assert daily["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    assert daily["schedules"][0]["schedule"]["timezone"] == "Asia/Shanghai"

    _run_daily(env, api, f"as_of={AS_OF}")
    # The schedule has also queued the coming days' runs; ours is the one that ran.
    runs = _api(
        f"{api}/flow_runs/filter",
        {
            "flow_runs": {
                "deployment_id": {"any_": [daily["id"]]},
                "state": {"type": {"any_": ["COMPLETED"]}},
            }
        },
    )
    assert len(runs) == 1 and runs[0]["parameters"]["as_of"].startswith("2026-12-01")
    flow_run_id = runs[0]["id"]
    artifacts = _api(
        f"{api}/artifacts/filter", {"artifacts": {"key": {"any_": ["daily-lifecycle-summary"]}}}
    )
    summary = artifacts[0]["data"]
    counts = dict(re.findall(r"\| send-renewal-reminders \| (\w+) \| ([\d,]+) \|", summary))
    assert int(counts["reminders_due"].replace(",", "")) > 0

    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{operator_view['ui']}/runs/flow-run/{flow_run_id}")
        page.get_by_text("Completed").first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "daily-run.png"), full_page=True)

        page.goto(f"{operator_view['ui']}/artifacts/artifact/{artifacts[0]['id']}")
        page.get_by_text("daily-lifecycle").first.wait_for(timeout=60_000)
        page.get_by_text("reminders_due").first.wait_for(timeout=60_000)
        text = page.inner_text("body")
        page.screenshot(path=str(SCREENSHOTS / "daily-summary.png"), full_page=True)

        # The run's fleet outlook: a table row per day, from the run's first local day.
        [outlook] = _api(
            f"{api}/artifacts/filter", {"artifacts": {"key": {"any_": ["fleet-outlook"]}}}
        )
        assert "| 2026-12-01 Tue |" in outlook["data"]
        page.goto(f"{operator_view['ui']}/artifacts/artifact/{outlook['id']}")
        page.get_by_text("grace ends").first.wait_for(timeout=60_000)
        page.get_by_text("2026-12-30").first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "fleet-outlook.png"), full_page=True)
        # The UI a browser opens by default also draws the mermaid chart.
        page.goto(f"{operator_view['ui']}/v2/artifacts/artifact/{outlook['id']}")
        page.locator("svg").get_by_text("Expiries (bars)").first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "fleet-outlook-chart.png"), full_page=True)
        browser.close()
    assert counts["reminders_due"] in text
    print(f"screenshots in {SCREENSHOTS}")


def test_an_instance_report_run_publishes_the_instance_as_instances_show_prints_it(
    operator_view,
):
    """instance-report/instance-report run by the worker publishes the instance's report
    under its own key, and its page shows the account, the balance and the domains."""
    from playwright.sync_api import sync_playwright

    api, env = operator_view["api"], operator_view["env"]
    _run(env, api, "instance-report/instance-report", "instance_id=inst-0000001")
    [report] = _api(
        f"{api}/artifacts/filter",
        {"artifacts": {"key": {"any_": ["instance-report-inst-0000001"]}}},
    )
    assert report["data"].startswith("# instance inst-0000001: ")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{operator_view['ui']}/artifacts/artifact/{report['id']}")
        page.get_by_text("instance inst-0000001").first.wait_for(timeout=60_000)
        page.get_by_text("balance ¥").first.wait_for(timeout=60_000)
        text = page.inner_text("body")
        page.screenshot(path=str(SCREENSHOTS / "instance-report.png"), full_page=True)
        browser.close()
    assert "domain " in text and "notice" in text


def test_a_split_daily_run_fans_out_to_shard_runs_on_the_pool(operator_view):
    """With shards=2 the daily run starts two shard runs, a worker runs them, and all
    three complete."""
    api, env = operator_view["api"], operator_view["env"]
    _run_daily(env, api, "as_of=2026-12-02T02:00:00+08:00", "shards=2")
    shard = next(d for d in _api(f"{api}/deployments/filter", {}) if d["name"] == "shard")
    runs = _api(
        f"{api}/flow_runs/filter",
        {"flow_runs": {"deployment_id": {"any_": [shard["id"]]}}},
    )
    assert sorted(r["parameters"]["shard"] for r in runs) == [0, 1]
    assert {r["state"]["type"] for r in runs} == {"COMPLETED"}


def test_the_custom_run_form_shows_each_parameter_with_its_help(operator_view):
    """Run -> Custom run of the daily deployment: the fields carry their descriptions,
    and the internal shard index is not offered."""
    from playwright.sync_api import sync_playwright

    api = operator_view["api"]
    daily = next(d for d in _api(f"{api}/deployments/filter", {}) if d["name"] == "daily")
    assert "shard" not in daily["parameter_openapi_schema"]["properties"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{operator_view['ui']}/deployments/deployment/{daily['id']}/run")
        page.get_by_text("Evaluate the lifecycle as of this moment").first.wait_for(timeout=60_000)
        page.get_by_text("Split the run into this many shard runs").first.wait_for(timeout=60_000)
        text = page.inner_text("body")
        page.screenshot(path=str(SCREENSHOTS / "daily-custom-run.png"), full_page=True)
        browser.close()
    assert "Property is type" not in text
    assert "The shard this run works on" not in text


def test_a_failed_daily_run_alerts_through_the_declared_automation(operator_view):
    """The automation from automations.yaml exists, and a daily run entering Failed posts
    the alert to DNSL_ALERT_WEBHOOK_URL."""
    api, alerts = operator_view["api"], operator_view["alerts"]
    automations = _api(f"{api}/automations/filter", {})
    assert [a["name"] for a in automations] == ["daily-lifecycle failed"]
    assert automations[0]["enabled"] is True
    daily = next(d for d in _api(f"{api}/deployments/filter", {}) if d["name"] == "daily")
    # A run scheduled for later (no worker takes it), then failed as a crashed run's
    # engine would report it: the server emits prefect.flow-run.Failed.
    later = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
    run = _api(
        f"{api}/deployments/{daily['id']}/create_flow_run",
        {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}}},
    )
    _api(
        f"{api}/flow_runs/{run['id']}/set_state",
        {
            "state": {"type": "FAILED", "message": "auto-renew: 3 of 40 deliveries failed"},
            "force": True,
        },
    )

    def ours() -> list[dict]:
        posted = [r.json() for r in alerts.requests]
        return [a for a in posted if run["name"] in a["subject"]]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ours():
        time.sleep(0.5)
    assert ours(), f"no alert for {run['name']} within 60 s: {alerts.requests}"
    alert = ours()[0]
    assert "Failed" in alert["subject"]
    assert "3 of 40 deliveries failed" in alert["body"]


def test_the_settings_block_form_and_a_runs_settings_artifact(operator_view):
    """`settings save-block default` makes a grouped form of titled fields in the UI,
    the SMTP password masked; the next run's `settings` artifact lists each setting with
    its source, secrets masked."""
    from playwright.sync_api import sync_playwright

    api, env = operator_view["api"], operator_view["env"]
    password = "ui-Pa55-w0rd-3Kd"
    env = {**env, "PREFECT_API_URL": api, "DNSL_SMTP_PASSWORD": password}
    saved = subprocess.run(
        [sys.executable, "-m", "dns_lifecycle.admin.cli", "settings", "save-block", "default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stdout + saved.stderr
    document = _api(f"{api}/block_types/slug/dns-lifecycle-settings/block_documents/name/default")
    ran = subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "run", "expire-instances/rerun-expiry"]
        + ["--param", f"as_of={AS_OF}", "--param", "dry_run=true"]
        + ["--watch", "--watch-timeout", "240"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Completed" in ran.stdout, ran.stdout + ran.stderr
    (artifact,) = _api(
        f"{api}/artifacts/latest/filter", {"artifacts": {"key": {"any_": ["settings"]}}}
    )

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{operator_view['ui']}/blocks/block/{document['id']}/edit")
        page.get_by_text("SMTP password").first.wait_for(timeout=60_000)
        form = page.inner_text("body")
        page.screenshot(path=str(SCREENSHOTS / "settings-block-form.png"), full_page=True)

        page.goto(f"{operator_view['ui']}/artifacts/artifact/{artifact['latest_id']}")
        page.get_by_text("block default").first.wait_for(timeout=60_000)
        table = page.inner_text("body")
        page.screenshot(path=str(SCREENSHOTS / "settings-artifact.png"), full_page=True)
        browser.close()
    for section in ("Database", "Email", "Lifecycle rules", "Registrar", "Tickets"):
        assert section in form
    assert "Reminder days before expiry" in form and password not in form
    assert "smtp_password" in table and "**********" in table and password not in table
    assert "block default" in table and "SMTP password" not in table  # names, not titles
