"""A backend is one module plus one registry line: a backend registered here, in the test
alone, is accepted by the settings and used by a delivery run like the shipped ones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlmodel import select

from dns_lifecycle.admin.inventory import export_state, import_inventory
from dns_lifecycle.channels import DeliveryResult, ResultSink, counting
from dns_lifecycle.channels.clusters import BACKENDS as CLUSTER_BACKENDS
from dns_lifecycle.channels.email import BACKENDS as EMAIL_BACKENDS
from dns_lifecycle.channels.registrar import BACKENDS as REGISTRAR_BACKENDS
from dns_lifecycle.channels.registry import Backend
from dns_lifecycle.channels.sms import BACKENDS, SmsMessage
from dns_lifecycle.channels.tickets import BACKENDS as TICKET_SINKS
from dns_lifecycle.core import settings_block
from dns_lifecycle.core.errors import InventoryInvalid
from dns_lifecycle.core.settings import Settings
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.reminders import plan_reminders
from models import Notification
from tests.conftest import make_settings
from tests.factories import make_account, make_catalog, make_instance
from tests.http_sink import HttpSink, Reply, SeenRequest

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


class WebhookSms:
    """An SMS backend that POSTs each message as JSON to a URL (the module a new
    backend would be)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(
        self, batch: list[SmsMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        results = []
        async with httpx.AsyncClient(timeout=5) as client:
            for m in batch:
                response = await client.post(
                    self.url, json={"key": m.key, "phone": m.phone, "text": m.text}
                )
                state = "sent" if response.status_code == 200 else "failed"
                results.append(DeliveryResult(m.key, state))  # type: ignore[arg-type]
        return results


def _accept(request: SeenRequest) -> Reply:
    return Reply(200, {"ok": True})


@pytest.fixture
def webhook() -> Iterator[HttpSink]:
    """An SMS backend named "webhook" registered for the test, posting to a sink."""
    with HttpSink(_accept) as sink:
        url = f"http://127.0.0.1:{sink.port}/sms"
        # The registry line a new backend adds.
        BACKENDS.register("webhook", Backend(lambda s: WebhookSms(url), True, dry_run=counting))
        try:
            yield sink
        finally:
            BACKENDS.unregister("webhook")


def test_a_registered_sms_backend_delivers_a_runs_messages(webhook, database_url, tmp_path, db):
    """Chosen by name in the settings, the registered backend receives the run's SMS."""
    settings = make_settings(tmp_path, database_url, sms_backend="webhook")
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1", phone="+8613800138000")
        make_instance(s, "inst-1", account="acct-1", expires_at=AS_OF + timedelta(days=5))
        s.commit()
    with open_run(AS_OF, False, None, settings=settings) as ctx:
        plan_reminders(ctx)
        deliver_pending(ctx)
    posted = [r.json() for r in webhook.requests]
    assert [(p["phone"], p["key"].split(":")[0]) for p in posted] == [
        ("+8613800138000", "reminder")
    ]
    with db.session() as s:
        sms = [n.state for n in s.exec(select(Notification)) if n.channel == "sms"]
    assert sms == ["sent"]


def test_a_backend_name_not_registered_is_refused_with_the_choices():
    """The settings refuse an SMS backend no registry line names, listing those that are."""
    with pytest.raises(ValidationError, match="names no SMS backend: use one of file, memory"):
        Settings(sms_backend="webhook")


class Folder(BaseModel):
    """The options of a cluster backend registered for the test."""

    model_config = ConfigDict(extra="forbid")
    path: str


@pytest.fixture
def folder_clusters() -> Iterator[None]:
    """A cluster backend named "folder" with its own options model, for the test."""
    CLUSTER_BACKENDS.register("folder", Backend(lambda *a: None, options=Folder, external=True))
    try:
        yield
    finally:
        CLUSTER_BACKENDS.unregister("folder")


def _cluster(options: dict) -> dict:
    return {
        "code": "paid-f",
        "kind": "paid",
        "nameservers": ["ns1.paid-f.example"],
        "backend": "folder",
        "options": options,
    }


def test_a_registered_cluster_backends_options_are_imported_and_exported(folder_clusters, db):
    """The import keeps the options its model accepts, and the export gives them back."""
    with db.session() as s:
        import_inventory({"clusters": [_cluster({"path": "/srv/zones"})]}, s, now=AS_OF)
        s.commit()
    with db.session() as s:
        (exported,) = export_state(s)["clusters"]
    assert exported["backend"] == "folder" and exported["options"] == {"path": "/srv/zones"}


def test_a_registered_cluster_backends_model_refuses_bad_options(folder_clusters, db):
    """Options its model does not accept are refused at their path."""
    with db.session() as s, pytest.raises(InventoryInvalid) as caught:
        import_inventory({"clusters": [_cluster({})]}, s, now=AS_OF)
    assert [p for p, _ in caught.value.errors] == ["clusters[0].options.path"]


@pytest.mark.parametrize(
    ("group", "field", "registry"),
    [
        ("EmailGroup", "email_backend", EMAIL_BACKENDS),
        ("SmsGroup", "sms_backend", BACKENDS),
        ("RegistrarGroup", "registrar_backend", REGISTRAR_BACKENDS),
        ("TicketsGroup", "ticket_sink", TICKET_SINKS),
    ],
)
def test_the_settings_form_offers_the_registered_names_as_a_select(group, field, registry):
    """The settings block's form lists a backend field's choices from its registry."""
    schema = getattr(settings_block, group).model_json_schema()
    assert schema["properties"][field]["enum"] == list(registry.names())
