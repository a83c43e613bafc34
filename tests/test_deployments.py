"""What an operator sees of the deployments before running one: every parameter of
every form has help and a type, the internal ones stay hidden, and the alert
automation in the repo is one Prefect accepts."""

from __future__ import annotations

import importlib
from uuid import uuid4

import pytest
import yaml
from prefect.events.schemas.automations import AutomationCore
from prefect.utilities.callables import parameter_schema

from dns_lifecycle.admin.alerts import DEFAULT_FILE, load
from dns_lifecycle.core.settings import REPO_ROOT

DEPLOYMENTS = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]


def _flow(entrypoint: str):
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: f"{d['entrypoint']}:{d['name']}")
def test_every_form_field_has_a_description_and_a_type(deployment):
    """The Custom run form shows help and a typed input for each parameter."""
    schema = parameter_schema(_flow(deployment["entrypoint"])).model_dump()
    assert schema["properties"], deployment["entrypoint"]
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{deployment['entrypoint']} {name}: no description"
        assert prop.get("type"), f"{deployment['entrypoint']} {name}: no single type ({prop})"


def test_no_two_deployments_share_a_name():
    """Each deployment has a name of its own, so the deployment list tells them apart."""
    names = [d["name"] for d in DEPLOYMENTS]
    assert sorted(n for n in names if names.count(n) > 1) == []


def test_the_daily_form_does_not_offer_the_internal_shard():
    """`shard` is set by a split run only: the daily deployment's form has no such field."""
    daily = next(d for d in DEPLOYMENTS if d["name"] == "daily")
    assert "shard" not in parameter_schema(_flow(daily["entrypoint"])).model_dump()["properties"]


def test_the_alert_automation_file_is_valid_for_prefect():
    """automations.yaml holds a Failed/Crashed trigger on the daily run that notifies."""
    automations = load(DEFAULT_FILE)
    assert automations
    for spec in automations:
        actions = [
            {**{k: v for k, v in a.items() if k != "block"}, "block_document_id": str(uuid4())}
            for a in spec["actions"]
        ]
        automation = AutomationCore.model_validate({**spec, "actions": actions})
        assert automation.actions[0].type == "send-notification"
    daily = automations[0]["trigger"]
    assert set(daily["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert "daily-lifecycle" in daily["match_related"]["prefect.resource.name"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: f"{d['entrypoint']}:{d['name']}")
def test_an_empty_form_validates_as_prefect_validates_it(deployment):
    """Optional fields left empty pass Prefect's own parameter validation (a constraint
    on an optional field must not be applied to its empty value)."""
    flow = _flow(deployment["entrypoint"])
    required = {
        "instance_id": "inst-1",
        "account_id": "acct-1",
        "amount": "50.00",
        "edition": "enterprise-standard",
        "on": True,
        "since": "2026-12-01T00:00:00+00:00",
        "as_of": "2026-12-01T00:00:00+00:00",
        "shard": 0,
        "shards": 2,
    }
    schema = parameter_schema(flow).model_dump()
    params = {k: v for k, v in required.items() if k in schema.get("required", [])}
    defaults = {k: None for k, p in schema["properties"].items() if p.get("default", 0) is None}
    flow.validate_parameters({**defaults, **params})


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: f"{d['entrypoint']}:{d['name']}")
def test_no_deployment_tags_its_runs_as_started_one_way(deployment):
    """A deployment's tags go on every run of it, scheduled or started by hand: none of
    them says what started the run (the run tags itself)."""
    from flows.base import MANUAL, SCHEDULED

    assert not {SCHEDULED, MANUAL} & set(deployment.get("tags", []))


@pytest.mark.parametrize(
    ("tags", "started"),
    [(["auto-scheduled", "lifecycle"], "scheduled"), (["lifecycle"], "manual"), ([], "manual")],
)
def test_a_run_is_tagged_by_what_started_it(tags, started):
    """A run Prefect's scheduler made (tagged auto-scheduled) is 'scheduled'; any other
    top-level run is 'manual'."""
    from flows.base import started_by

    assert started_by(tags) == started
