"""Settings from the dns-lifecycle-settings block: its form, the order of sources, a bad
value failing the run at its start, the ``settings`` artifact and ``settings show``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from pydantic import SecretStr
from sqlmodel import select

from dns_lifecycle.admin.cli import main
from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.core.secrets import MASK
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.core.settings_block import (
    GROUPS,
    SECTION_OF,
    DnsLifecycleSettings,
    EmailGroup,
    RegistrarGroup,
    RulesGroup,
    SettingsInvalid,
    load_settings,
    save_block,
    save_in_effect,
)
from flows.daily import daily_lifecycle
from flows.expire import expire_instances
from flows.reminders import send_renewal_reminders
from models import Notification
from tests.factories import make_account, make_catalog, make_instance

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _artifact_rows(state) -> list[dict[str, str]]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    (artifact,) = [a for a in artifacts if a.key == "settings"]
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def _due_reminder(db) -> None:
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1", locale="en-US", timezone="Asia/Shanghai")
        make_instance(s, "inst-1", account="acct-1", expires_at=AS_OF + timedelta(days=5))
        s.commit()


def test_every_setting_has_one_place_in_the_form_with_a_title_and_a_description():
    """Each setting is a field of exactly one section, titled and described; no other."""
    placed = [name for group in GROUPS.values() for name in group.model_fields]
    assert sorted(placed) == sorted(Settings.model_fields)
    for group in GROUPS.values():
        assert group.model_config.get("title")
        for name, field in group.model_fields.items():
            assert field.title and field.description, name
            assert "_" not in field.title, name  # a person's words, not the field's name


def test_every_secret_of_the_settings_is_a_secret_field_of_the_block():
    """The block marks each secret (and the database URL) secret, so the API masks it."""
    secret = set(DnsLifecycleSettings.model_json_schema()["secret_fields"])
    expected = {
        f"{SECTION_OF[name]}.{name}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    } | {"database.database_url"}
    assert secret == expected


def test_without_an_api_the_settings_come_from_the_environment_then_the_defaults(monkeypatch):
    """No Prefect API configured: no lookup, the environment and the defaults, as before."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("DNSL_SMTP_PORT", "2525")
    loaded = load_settings()
    assert loaded.document is None
    assert loaded.settings.smtp_port == 2525 and loaded.sources["smtp_port"] == "env"
    assert loaded.sources["grace_days"] == "default"


def test_a_document_gives_its_fields_and_an_environment_variable_overrides_one(
    prefect_harness, monkeypatch
):
    """Block fields are used; a field's environment variable wins over the block."""
    name = _name()
    base = Settings(smtp_host="mail.example.com", smtp_port=587, grace_days=9)
    save_block(name, base)
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    monkeypatch.setenv("DNSL_SMTP_PORT", "2525")
    loaded = load_settings()
    assert loaded.document == name
    assert loaded.settings.smtp_host == "mail.example.com"
    assert loaded.sources["smtp_host"] == f"block {name}"
    assert loaded.settings.grace_days == 9
    assert loaded.settings.smtp_port == 2525 and loaded.sources["smtp_port"] == "env"


def test_an_empty_field_of_the_document_takes_the_default(prefect_harness, monkeypatch):
    """A document that sets one field leaves the others to their defaults."""
    name = _name()
    DnsLifecycleSettings(rules=RulesGroup(grace_days=12)).save(name)
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    loaded = load_settings()
    assert loaded.settings.grace_days == 12 and loaded.sources["grace_days"] == f"block {name}"
    assert loaded.settings.renewal_lead_days == 7
    assert loaded.sources["renewal_lead_days"] == "default"


@pytest.mark.parametrize(
    ("group", "label"),
    [
        (RulesGroup(reminder_offsets_days=[0]), "Lifecycle rules › Reminder days before expiry"),
        (EmailGroup(smtp_port=0), "Email › SMTP port"),
        (
            RegistrarGroup.model_construct(registrar_backend="pigeon"),
            "Registrar › Registrar backend",
        ),
    ],
)
# The unknown backend is written as a stored document could hold it; pydantic warns.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_a_bad_value_in_the_block_fails_the_run_at_its_start_naming_document_and_field(
    db, flow_env, monkeypatch, group, label
):
    """The run ends Failed with one line naming the document and the field; it sends
    and changes nothing."""
    _due_reminder(db)
    name = _name()
    key = {RulesGroup: "rules", EmailGroup: "email", RegistrarGroup: "registrar"}[type(group)]
    DnsLifecycleSettings(**{key: group}).save(name)
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    state = send_renewal_reminders(as_of=AS_OF, return_state=True)
    assert state.is_failed()
    message = state.message or ""
    assert "\n" not in message
    assert f"settings block {name!r}: {label}" in message
    assert email_memory.outbox == []
    with db.session() as s:
        assert s.exec(select(Notification)).all() == []


def test_a_change_saved_in_the_block_is_used_by_the_next_run(db, flow_env, monkeypatch):
    """Two runs in one process, the block changed between them: each uses its values."""
    name = _name()
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    DnsLifecycleSettings(rules=RulesGroup(grace_days=5)).save(name)
    first = expire_instances(as_of=AS_OF, return_state=True)
    DnsLifecycleSettings(rules=RulesGroup(grace_days=11)).save(name, overwrite=True)
    second = expire_instances(as_of=AS_OF, return_state=True)
    values = [
        {row["setting"]: row["value"] for row in _artifact_rows(state)}["grace_days"]
        for state in (first, second)
    ]
    assert values == ["5", "11"]


def test_each_run_publishes_its_settings_with_their_sources_and_secrets_masked(
    db, flow_env, monkeypatch
):
    """The `settings` artifact lists every setting with its value and source."""
    name = _name()
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    DnsLifecycleSettings(
        email=EmailGroup(smtp_password=SecretStr("blk-Pa55"), smtp_host="mx.example.com")
    ).save(name)
    state = expire_instances(as_of=AS_OF, return_state=True)
    rows = {row["setting"]: row for row in _artifact_rows(state)}
    assert set(rows) == set(Settings.model_fields)
    assert rows["smtp_host"]["value"] == "mx.example.com"
    assert rows["smtp_host"]["source"] == f"block {name}"
    assert rows["smtp_password"]["value"] == MASK.replace("*", "\\*")  # Markdown-escaped
    assert rows["email_backend"]["source"] == "env"  # flow_env sets it
    assert rows["grace_days"]["source"] == "default"


def test_settings_show_prints_each_setting_its_value_and_source(monkeypatch, capsys):
    """`settings show --json`: one row per setting, secrets masked."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("DNSL_SMTP_PASSWORD", "env-Pa55")
    monkeypatch.setenv("DATABASE_URL", "postgresql://dns:db-Pa55@127.0.0.1/dns")
    assert main(["settings", "show", "--json"]) == 0
    rows = {row["setting"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["smtp_password"] == {"setting": "smtp_password", "value": MASK, "source": "env"}
    assert rows["database_url"]["value"] == f"postgresql://dns:{MASK}@127.0.0.1/dns"
    assert rows["grace_days"]["source"] == "default"


def test_save_block_writes_the_settings_in_effect_into_the_document(
    prefect_harness, monkeypatch, capsys
):
    """`settings save-block NAME` stores the environment's values; a run then reads them."""
    name = _name()
    monkeypatch.setenv("DNSL_SMTP_HOST", "relay.example.com")
    assert main(["settings", "save-block", name]) == 0
    monkeypatch.delenv("DNSL_SMTP_HOST")
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    loaded = load_settings()
    assert loaded.settings.smtp_host == "relay.example.com"
    assert loaded.sources["smtp_host"] == f"block {name}"
    assert loaded.sources["grace_days"] == f"block {name}"  # a default, written too


def test_save_block_leaves_a_path_that_only_has_its_local_default_empty(
    prefect_harness, monkeypatch
):
    """The database URL and the folders go into the document only when set: a default
    that is a path on this machine would be wrong on a worker."""
    name = _name()
    for variable in ("DATABASE_URL", "DNSL_DATABASE_URL", "DNSL_TEMPLATES_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DNSL_OUTBOX_DIR", "/srv/dns-lifecycle/outbox")
    save_in_effect(name)
    monkeypatch.delenv("DNSL_OUTBOX_DIR")
    monkeypatch.setenv("DNSL_SETTINGS_BLOCK", name)
    sources = load_settings().sources
    assert sources["outbox_dir"] == f"block {name}"
    assert sources["database_url"] == sources["templates_dir"] == "default"


def test_save_block_refuses_a_name_prefect_would_not_take(prefect_harness, capsys):
    """A document name with capitals or spaces is refused in one line, exit 2."""
    assert main(["settings", "save-block", "My Settings"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'My Settings' is not valid" in err


def test_a_bad_environment_variable_is_one_line_naming_it(monkeypatch):
    """A bad value from the environment names the variable, not the block."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("DNSL_SMTP_PORT", "0")
    with pytest.raises(SettingsInvalid, match=r"^setting DNSL_SMTP_PORT: "):
        load_settings()


def test_the_steps_of_a_daily_run_use_the_settings_the_daily_run_read(db, flow_env):
    """One `settings` artifact for a daily run: its steps do not read the settings again."""
    _due_reminder(db)
    state = daily_lifecycle(as_of=AS_OF, dry_run=True, return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        parent = state.state_details.flow_run_id
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )
        )
        ids = [parent, *(r.id for r in runs)]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=ids),
                key=ArtifactFilterKey(any_=["settings"]),
            )
        )
    assert len(runs) >= 5
    assert [a.flow_run_id for a in artifacts] == [parent]
