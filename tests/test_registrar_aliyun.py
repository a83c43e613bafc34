"""The Domain API registrar: the provider's real SDK against a stand-in on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dns_lifecycle.channels.registrar import SwitchState
from dns_lifecycle.channels.registrar.aliyun import AliyunRegistrar
from dns_lifecycle.core.errors import (
    DomainLocked,
    InputError,
    RegistrarRefused,
    RegistrarUnavailable,
)
from dns_lifecycle.core.settings import Settings
from flows.common import open_run
from flows.release import release_due
from models import Domain, Instance, Ticket
from tests.aliyun_domain_standin import ACCESS_KEY_SECRET, AliyunDomainStandIn
from tests.factories import make_instance
from tests.http_sink import Reply

PAID_NS = ["ns1.paid-1.dns-hosting.example", "ns2.paid-1.dns-hosting.example"]
FREE_NS = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]
EXPIRY = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
RELEASE = EXPIRY + timedelta(hours=168)


@pytest.fixture
def standin() -> Iterator[AliyunDomainStandIn]:
    with AliyunDomainStandIn() as server:
        server.add_domain("open.example.cn", PAID_NS)
        server.add_domain("locked.example.cn", PAID_NS, locked=True)
        yield server


def _registrar(standin: AliyunDomainStandIn, **overrides) -> AliyunRegistrar:
    return AliyunRegistrar(Settings(**{**standin.settings_fields(), **overrides}))


# --- the lock ----------------------------------------------------------------------------


def test_an_unlocked_domain_has_no_lock(standin):
    """UpdateProhibitionLock CLOSE is no lock."""
    assert _registrar(standin).lock_status("open.example.cn") is None


def test_an_open_update_lock_is_client_update_prohibited(standin):
    """UpdateProhibitionLock OPEN is the EPP status clientUpdateProhibited."""
    assert _registrar(standin).lock_status("locked.example.cn") == "clientUpdateProhibited"


def test_the_lock_is_read_with_query_domain_by_domain_name(standin):
    """One signed QueryDomainByDomainName call with the domain's name."""
    _registrar(standin).lock_status("open.example.cn")
    [request] = standin.requests
    assert request.headers["x-acs-action"] == "QueryDomainByDomainName"
    assert request.query["DomainName"] == "open.example.cn"


def test_an_unknown_domain_is_refused_with_the_providers_code(standin):
    """DomainNotExist is RegistrarRefused quoting the code and message, naming the domain."""
    with pytest.raises(RegistrarRefused) as caught:
        _registrar(standin).lock_status("nowhere.example.cn")
    message = str(caught.value)
    assert "DomainNotExist" in message and "does not exist" in message
    assert "nowhere.example.cn" in message and "HTTP 400" in message


# --- credentials -------------------------------------------------------------------------


def test_a_wrong_secret_is_refused_by_the_signature_check(standin):
    """The stand-in checks the signature: a wrong secret is SignatureDoesNotMatch."""
    registrar = _registrar(standin, aliyun_access_key_secret="not-the-secret")
    with pytest.raises(RegistrarRefused, match="SignatureDoesNotMatch"):
        registrar.lock_status("open.example.cn")


def test_an_unknown_key_is_refused(standin):
    """An access key id the provider does not know is refused, naming its code."""
    registrar = _registrar(standin, aliyun_access_key_id="LTAI-unknown")
    with pytest.raises(RegistrarRefused, match="InvalidAccessKeyId.NotFound"):
        registrar.lock_status("open.example.cn")


def test_without_an_access_key_the_backend_is_refused_at_once():
    """A missing key id or secret is an InputError naming both settings."""
    with pytest.raises(InputError, match="DNSL_ALIYUN_ACCESS_KEY_ID.*SECRET"):
        AliyunRegistrar(Settings(registrar_backend="aliyun"))


def test_the_secret_never_appears_in_errors(standin):
    """A provider that echoes the secret in its message gets it masked in the error."""
    echo = {"RequestId": "R-1", "Code": "InvalidParameter", "Message": f"bad {ACCESS_KEY_SECRET}"}
    standin.fault(None, Reply(400, echo))
    with pytest.raises(RegistrarRefused) as caught:
        _registrar(standin).lock_status("open.example.cn")
    assert ACCESS_KEY_SECRET not in str(caught.value) and "**********" in str(caught.value)
    assert ACCESS_KEY_SECRET not in repr(caught.value.args)


# --- the switch --------------------------------------------------------------------------


def test_a_switch_starts_a_dns_task_and_answers_its_task_no(standin):
    """SaveBatchTaskForModifyingDomainDns with DomainName.1, DomainNameServer.N and
    AliyunDns=false; the TaskNo is the task id."""
    task_id = _registrar(standin).start_switch("open.example.cn", FREE_NS)
    save = standin.requests[-1]
    assert save.headers["x-acs-action"] == "SaveBatchTaskForModifyingDomainDns"
    assert save.query["DomainName.1"] == "open.example.cn"
    assert [save.query["DomainNameServer.1"], save.query["DomainNameServer.2"]] == FREE_NS
    assert save.query["AliyunDns"].lower() == "false"
    assert task_id in standin.tasks


def test_a_finished_task_is_done_and_the_servers_changed(standin):
    """EXECUTE_SUCCESS is done; the registrar now delegates to the new servers."""
    registrar = _registrar(standin)
    task_id = registrar.start_switch("open.example.cn", FREE_NS)
    assert registrar.switch_state(task_id) == SwitchState(done=True)
    assert standin.nameservers("open.example.cn") == FREE_NS


def test_a_pending_task_is_not_done_until_it_succeeds():
    """EXECUTING is not done and not failed; a later poll sees EXECUTE_SUCCESS."""
    with AliyunDomainStandIn(pending_polls=2) as standin:
        standin.add_domain("open.example.cn", PAID_NS)
        registrar = _registrar(standin)
        task_id = registrar.start_switch("open.example.cn", FREE_NS)
        states = [registrar.switch_state(task_id) for _ in range(3)]
    assert states == [SwitchState(done=False), SwitchState(done=False), SwitchState(done=True)]


def test_a_failed_task_gives_the_providers_reason(standin):
    """EXECUTE_FAILURE is not done, with the provider's reason for it."""
    reason = "The DNS server ns1.free.dns-hosting.example is invalid."
    standin.fail_switch("open.example.cn", reason)
    registrar = _registrar(standin)
    state = registrar.switch_state(registrar.start_switch("open.example.cn", FREE_NS))
    assert state == SwitchState(done=False, failed_reason=reason)
    assert standin.nameservers("open.example.cn") == PAID_NS


def test_a_locked_domain_is_refused_before_any_task(standin):
    """An open update lock raises DomainLocked naming the lock; no task is started."""
    with pytest.raises(DomainLocked) as caught:
        _registrar(standin).start_switch("locked.example.cn", FREE_NS)
    assert caught.value.status == "clientUpdateProhibited"
    assert "SaveBatchTaskForModifyingDomainDns" not in standin.actions


def test_a_switch_already_in_place_starts_no_task_and_is_done(standin):
    """Servers already delegated (any case, trailing dot) need no task: done at once."""
    standin.add_domain("moved.example.cn", ["NS1.free.dns-hosting.example.", FREE_NS[1]])
    registrar = _registrar(standin)
    task_id = registrar.start_switch("moved.example.cn", FREE_NS)
    assert registrar.switch_state(task_id) == SwitchState(done=True)
    assert standin.actions == ["QueryDomainByDomainName"]


def test_a_switch_asked_again_after_a_lost_answer_answers_the_task_it_created(standin):
    """The answer of SaveBatchTaskForModifyingDomainDns was lost after the provider
    applied it: asked again since then, the switch answers that task's TaskNo."""
    standin.pending_polls = 1
    standin.lose_answer("SaveBatchTaskForModifyingDomainDns")
    registrar = _registrar(standin)
    asked = datetime.now(UTC)
    with pytest.raises(RegistrarUnavailable):
        registrar.start_switch("open.example.cn", FREE_NS)
    [created] = standin.tasks
    assert registrar.start_switch("open.example.cn", FREE_NS, asked_since=asked) == created
    assert list(standin.tasks) == [created]


def test_a_switch_asked_again_with_no_task_there_starts_one(standin):
    """Asked again when the lost request never arrived (or another domain's task is
    all there is), the switch starts its task."""
    registrar = _registrar(standin)
    asked = datetime.now(UTC)
    standin.add_domain("other.example.cn", PAID_NS)
    registrar.start_switch("other.example.cn", FREE_NS)
    task_id = registrar.start_switch("open.example.cn", FREE_NS, asked_since=asked)
    assert len(standin.tasks) == 2 and standin.tasks[task_id][0].domain == "open.example.cn"


def test_an_unknown_task_is_refused(standin):
    """A TaskNo the provider has no detail for is RegistrarRefused naming it."""
    with pytest.raises(RegistrarRefused, match="knows no task T-404"):
        _registrar(standin).switch_state("T-404")


# --- faults ------------------------------------------------------------------------------


def test_a_server_error_is_unavailable(standin):
    """An HTTP 500 is RegistrarUnavailable quoting the provider's code."""
    standin.fault(
        "QueryTaskDetailList",
        Reply(500, {"RequestId": "R-5", "Code": "InternalError", "Message": "try later"}),
    )
    registrar = _registrar(standin)
    task_id = registrar.start_switch("open.example.cn", FREE_NS)
    with pytest.raises(RegistrarUnavailable, match="HTTP 500.*InternalError"):
        registrar.switch_state(task_id)


def test_an_html_error_page_is_unavailable(standin):
    """A 502 whose body is not the API's JSON is RegistrarUnavailable."""
    standin.fault(None, Reply(502, "<html>Bad Gateway</html>"))
    with pytest.raises(RegistrarUnavailable):
        _registrar(standin).lock_status("open.example.cn")


def test_throttling_is_unavailable(standin):
    """The API's flow control (Throttling.User) is RegistrarUnavailable, not a refusal."""
    standin.throttle("SaveBatchTaskForModifyingDomainDns")
    with pytest.raises(RegistrarUnavailable, match="throttled"):
        _registrar(standin).start_switch("open.example.cn", FREE_NS)


def test_a_timeout_is_unavailable(standin):
    """No answer within registrar_timeout_seconds is RegistrarUnavailable."""
    standin.fault(None, Reply(200, delay=10))
    registrar = _registrar(standin, registrar_timeout_seconds=0.3)
    with pytest.raises(RegistrarUnavailable, match="did not answer .* within 0.3 s"):
        registrar.lock_status("open.example.cn")


def test_a_dropped_connection_is_unavailable(standin):
    """A connection closed without an answer is RegistrarUnavailable."""
    standin.fault(None, Reply(drop=True))
    with pytest.raises(RegistrarUnavailable, match="could not be reached"):
        _registrar(standin).lock_status("open.example.cn")


def test_a_closed_port_is_unavailable():
    """An endpoint where nothing listens is RegistrarUnavailable."""
    with AliyunDomainStandIn() as standin:
        fields = standin.settings_fields()
    with pytest.raises(RegistrarUnavailable, match="could not be reached"):
        AliyunRegistrar(Settings(**fields)).lock_status("open.example.cn")


# --- in the release --------------------------------------------------------------------


def _expired(db, domains):
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY, state="expired", domains=domains)
        s.commit()


def _release(settings, standin):
    real = Settings(**{**settings.model_dump(), **standin.settings_fields()})
    with open_run(RELEASE, False, None, settings=real) as ctx:
        return release_due(ctx)


def test_release_switches_at_the_provider_and_records_the_delegation(db, settings, standin):
    """An unlocked HiChina domain is switched by the Domain API and its stored
    delegation follows; a domain locked there gets a ticket."""
    _expired(
        db,
        [
            {"name": "open.example.cn", "registrar": "hichina", "records": []},
            {"name": "locked.example.cn", "registrar": "hichina", "records": []},
        ],
    )
    report = _release(settings, standin)
    assert report.counts["instances_released"] == 1
    assert standin.nameservers("open.example.cn") == FREE_NS
    with db.session() as s:
        stored = {d.name: d.nameservers for d in s.execute(select(Domain)).scalars()}
        tickets = {(t.details["domain"], t.reason) for t in s.execute(select(Ticket)).scalars()}
    assert stored["open.example.cn"] == FREE_NS and stored["locked.example.cn"] == PAID_NS
    assert tickets == {("locked.example.cn", "domain_locked")}


def test_a_pending_switch_is_recorded_and_finished_by_the_next_run(db, settings):
    """A task the provider has not finished leaves the domain switching, its task number
    recorded; the next run polls that task (no second one) and finishes the release."""
    _expired(db, [{"name": "open.example.cn", "registrar": "hichina", "records": []}])
    with AliyunDomainStandIn(pending_polls=1) as standin:
        standin.add_domain("open.example.cn", PAID_NS)
        first = _release(settings, standin)
        assert "instances_released" not in first.counts
        with db.session() as s:
            assert s.get(Instance, "inst-1").state == "expired"
        second = _release(settings, standin)
        assert second.counts["instances_released"] == 1
        assert len(standin.tasks) == 1
        assert standin.nameservers("open.example.cn") == FREE_NS


def test_a_switch_the_provider_fails_opens_a_ticket_with_its_reason(db, settings, standin):
    """EXECUTE_FAILURE: the owner is asked to change the name servers by hand, and the
    ticket carries the provider's reason."""
    _expired(db, [{"name": "open.example.cn", "registrar": "hichina", "records": []}])
    standin.fail_switch("open.example.cn", "Registry rejected the name servers.")
    _release(settings, standin)
    with db.session() as s:
        ticket = s.execute(select(Ticket)).scalar_one()
        assert ticket.reason == "registrar_failed"
        assert "Registry rejected the name servers." in ticket.details["problem"]
