"""Registrar gateways: the embedded one on the database, the HTTP one against a local server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from dns_lifecycle.channels.registrar import SwitchState, registrar_for
from dns_lifecycle.channels.registrar.aliyun import AliyunRegistrar
from dns_lifecycle.channels.registrar.database import DatabaseRegistrar
from dns_lifecycle.channels.registrar.http import HttpRegistrar
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.errors import (
    DomainLocked,
    NeedsPerson,
    PermanentDeliveryError,
    RegistrarRefused,
    RegistrarUnavailable,
    TransientDeliveryError,
)
from dns_lifecycle.core.settings import Settings
from models import Domain
from tests.factories import make_instance
from tests.http_sink import HttpSink, Reply

FREE_NS = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]
PAID_NS = ["ns1.paid-1.dns-hosting.example", "ns2.paid-1.dns-hosting.example"]
TOKEN = "registrar-s3cret-token"
EXPIRED = datetime(2026, 1, 1, tzinfo=UTC)


def _domain(name: str, epp_statuses: list[str]) -> dict:
    return {"name": name, "registrar": "hichina", "epp_statuses": epp_statuses, "records": []}


def _nameservers(db, name: str) -> list[str]:
    with db.session() as session:
        return session.exec(select(Domain).where(Domain.name == name)).one().nameservers


@pytest.fixture
def fleet(db):
    """One instance with an unlocked, a client-locked and a server-locked domain."""
    with db.session() as session:
        make_instance(
            session,
            "inst-1",
            expires_at=EXPIRED,
            state="expired",
            domains=[
                _domain("open.example.com", ["clientTransferProhibited"]),
                _domain("client.example.com", ["clientUpdateProhibited"]),
                _domain("server.example.com", ["serverUpdateProhibited"]),
            ],
        )
        session.commit()
    return db


# --- the embedded registrar ----------------------------------------------------------------


def test_database_registrar_switches_the_domain_on_its_own(fleet):
    """An unlocked domain is delegated to the new servers, committed without the caller."""
    DatabaseRegistrar(fleet).start_switch("open.example.com", FREE_NS)
    assert _nameservers(fleet, "open.example.com") == FREE_NS
    assert _nameservers(fleet, "client.example.com") == PAID_NS


def test_database_registrar_switch_is_done_at_once(fleet):
    """The task id of a switch answers done straight away."""
    registrar = DatabaseRegistrar(fleet)
    task_id = registrar.start_switch("open.example.com", FREE_NS)
    assert registrar.switch_state(task_id) == SwitchState(done=True)


def test_database_registrar_switch_again_is_harmless(fleet):
    """Starting the same change twice leaves the same delegation."""
    registrar = DatabaseRegistrar(fleet)
    registrar.start_switch("open.example.com", FREE_NS)
    registrar.start_switch("open.example.com", FREE_NS)
    assert _nameservers(fleet, "open.example.com") == FREE_NS


@pytest.mark.parametrize(
    ("name", "status", "fix"),
    [
        ("client.example.com", "clientUpdateProhibited", "registrar's console"),
        ("server.example.com", "serverUpdateProhibited", "registry lift"),
    ],
)
def test_database_registrar_refuses_a_locked_domain(fleet, name, status, fix):
    """Either update lock is refused with DomainLocked naming the domain, status and fix."""
    with pytest.raises(DomainLocked) as caught:
        DatabaseRegistrar(fleet).start_switch(name, FREE_NS)
    message = str(caught.value)
    assert isinstance(caught.value, NeedsPerson)
    assert (caught.value.domain, caught.value.status) == (name, status)
    assert name in message and status in message and fix in message
    assert "change its DNS servers by hand" in message and FREE_NS[0] in message
    assert _nameservers(fleet, name) == PAID_NS


def test_database_registrar_reads_the_stored_lock(fleet):
    """lock_status is the update lock among the stored EPP statuses, or None."""
    registrar = DatabaseRegistrar(fleet)
    assert registrar.lock_status("server.example.com") == "serverUpdateProhibited"
    assert registrar.lock_status("open.example.com") is None


def test_database_registrar_reads_lock_codes_in_any_case(fleet):
    """An EPP status stored in another case is still a lock, named in its RFC spelling."""
    with fleet.session() as session:
        make_instance(
            session,
            "inst-2",
            expires_at=EXPIRED,
            domains=[_domain("shout.example.com", [" CLIENTUPDATEPROHIBITED"])],
        )
        session.commit()
    registrar = DatabaseRegistrar(fleet)
    assert registrar.lock_status("shout.example.com") == "clientUpdateProhibited"
    with pytest.raises(DomainLocked):
        registrar.start_switch("shout.example.com", FREE_NS)


@pytest.mark.parametrize("call", ["lock_status", "start_switch"])
def test_database_registrar_refuses_an_unknown_domain(fleet, call):
    """A domain that is not in the database is refused permanently, naming it."""
    registrar = DatabaseRegistrar(fleet)
    args = ("nowhere.example",) if call == "lock_status" else ("nowhere.example", FREE_NS)
    with pytest.raises(RegistrarRefused, match="nowhere.example"):
        getattr(registrar, call)(*args)


def test_database_registrar_refuses_a_task_of_another_backend(fleet):
    """A task id it did not hand out is refused rather than taken for done."""
    with pytest.raises(RegistrarRefused, match="another registrar backend"):
        DatabaseRegistrar(fleet).switch_state("60d6e201-8ee5-47ab-8fdc-5a1b2c3d4e5f")


def test_database_registrar_in_a_dry_run_keeps_nothing(fleet, settings):
    """On a dry run's sandbox the switch is seen by the run and gone after it."""
    sandbox = Database.sandbox(settings)
    try:
        DatabaseRegistrar(sandbox).start_switch("open.example.com", FREE_NS)
        assert _nameservers(sandbox, "open.example.com") == FREE_NS
    finally:
        sandbox.dispose()
    assert _nameservers(fleet, "open.example.com") == PAID_NS


# --- the HTTP registrar --------------------------------------------------------------------


def _http(sink: HttpSink | str, token: str | None = TOKEN, timeout: float = 5.0) -> HttpRegistrar:
    url = sink if isinstance(sink, str) else sink.url
    return HttpRegistrar(
        Settings(
            registrar_backend="http",
            registrar_url=url + "/api/",
            registrar_token=token,
            registrar_timeout_seconds=timeout,
        )
    )


def _set(registrar: HttpRegistrar) -> str:
    try:
        return registrar.start_switch("example.com", FREE_NS)
    finally:
        registrar.close()


def test_http_200_is_done_and_sends_the_request():
    """A 200 means done; the request is a PUT of the name servers with the bearer token."""
    with HttpSink(lambda _r: Reply(200, {"ok": True})) as sink:
        registrar = _http(sink)
        assert registrar.switch_state(registrar.start_switch("example.com", FREE_NS)).done
        registrar.close()
    [request] = sink.requests
    assert (request.method, request.path) == ("PUT", "/api/domains/example.com/nameservers")
    assert request.json() == {"nameservers": FREE_NS}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_http_switch_asked_again_is_not_sent_when_the_first_was_applied():
    """After a lost answer (``asked_since``), a registrar that says the domain has the
    free name servers already gets no second PUT."""
    held = {"epp_statuses": [], "nameservers": [n.upper() + "." for n in FREE_NS]}
    with HttpSink(lambda r: Reply(200, held if r.method == "GET" else {"ok": True})) as sink:
        registrar = _http(sink)
        task = registrar.start_switch("example.com", FREE_NS, asked_since=datetime.now(UTC))
        registrar.close()
    assert registrar.switch_state(task).done
    assert [r.method for r in sink.requests] == ["GET"]


@pytest.mark.parametrize(
    "held",
    [
        {"epp_statuses": [], "nameservers": ["ns1.paid.example", "ns2.paid.example"]},
        {"epp_statuses": []},  # a registrar that does not say its name servers
    ],
)
def test_http_switch_asked_again_is_sent_unless_applied(held):
    """After a lost answer, a domain not (or not known to be) on the free name servers
    gets the PUT again; without ``asked_since`` there is no read at all."""
    with HttpSink(lambda r: Reply(200, held if r.method == "GET" else {"ok": True})) as sink:
        registrar = _http(sink)
        registrar.start_switch("example.com", FREE_NS, asked_since=datetime.now(UTC))
        registrar.start_switch("example.com", FREE_NS)
        registrar.close()
    assert [r.method for r in sink.requests] == ["GET", "PUT", "PUT"]


def test_http_204_is_done():
    """A 204 with no body means done."""
    with HttpSink(lambda _r: Reply(204)) as sink:
        _set(_http(sink))
    assert len(sink.requests) == 1


def test_http_without_token_sends_no_authorization():
    """Without a token there is no Authorization header."""
    with HttpSink(lambda _r: Reply(200)) as sink:
        _set(_http(sink, token=None))
    assert "authorization" not in sink.requests[0].headers


@pytest.mark.parametrize("status", [409, 423])
def test_http_conflict_or_locked_is_domain_locked(status):
    """409 and 423 mean the domain is locked, by a lock the answer does not name."""
    with HttpSink(lambda _r: Reply(status, "locked")) as sink, pytest.raises(DomainLocked) as e:
        _set(_http(sink))
    assert e.value.status is None
    assert "example.com" in str(e.value) and "a registrar lock" in str(e.value)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("clientUpdateProhibited", "clientUpdateProhibited"),
        ("SERVERUPDATEPROHIBITED", "serverUpdateProhibited"),
        ("domain_locked", None),
    ],
)
def test_http_lock_code_in_json_is_domain_locked(code, status):
    """A JSON body whose code names a lock means locked, whatever the HTTP status."""
    with (
        HttpSink(lambda _r: Reply(400, {"code": code, "message": "no"})) as sink,
        pytest.raises(DomainLocked) as e,
    ):
        _set(_http(sink))
    assert e.value.status == status


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_http_server_error_is_unavailable(status):
    """A 5xx (or throttling) is transient: RegistrarUnavailable."""
    with (
        HttpSink(lambda _r: Reply(status, "busy")) as sink,
        pytest.raises(RegistrarUnavailable, match=f"HTTP {status}"),
    ):
        _set(_http(sink))


def test_http_timeout_is_unavailable():
    """No answer within the timeout is RegistrarUnavailable."""
    with (
        HttpSink(lambda _r: Reply(200, delay=5)) as sink,
        pytest.raises(RegistrarUnavailable, match="did not answer within 0.2 s") as e,
    ):
        _set(_http(sink, timeout=0.2))
    assert isinstance(e.value, TransientDeliveryError)


def test_http_dropped_connection_is_unavailable():
    """A connection closed without an answer is RegistrarUnavailable."""
    with HttpSink(lambda _r: Reply(drop=True)) as sink, pytest.raises(RegistrarUnavailable):
        _set(_http(sink))


def test_http_refused_connection_is_unavailable():
    """A registrar that is not listening is RegistrarUnavailable."""
    with HttpSink(lambda _r: Reply(200)) as sink:
        url = sink.url
    # The sink is closed: nothing listens on its port any more.
    with pytest.raises(RegistrarUnavailable, match="could not be reached"):
        _set(_http(url))


def test_http_client_error_is_refused_with_status_and_body():
    """Another 4xx is RegistrarRefused, quoting the status and the start of the body."""
    with (
        HttpSink(lambda _r: Reply(400, {"code": "invalid_nameserver", "message": "bad ns"})) as s,
        pytest.raises(RegistrarRefused) as e,
    ):
        _set(_http(s))
    assert isinstance(e.value, PermanentDeliveryError)
    assert "HTTP 400" in str(e.value) and "invalid_nameserver" in str(e.value)


@pytest.mark.parametrize("status", [401, 500, 423])
def test_token_never_appears_in_errors(status):
    """Even a registrar that echoes the request headers never gets the token into an error."""

    def echo(request):
        return Reply(status, {"echo": request.headers.get("authorization")})

    with HttpSink(echo) as sink, pytest.raises(Exception) as e:
        _set(_http(sink))
    assert TOKEN not in str(e.value)
    assert TOKEN not in repr(e.value.args)


def _lock(reply: Reply) -> tuple[str | None, HttpSink]:
    with HttpSink(lambda _r: reply) as sink:
        registrar = _http(sink)
        try:
            return registrar.lock_status("example.com"), sink
        finally:
            registrar.close()


def test_http_lock_status_reads_the_registrars_epp_statuses():
    """GET /domains/NAME answers the statuses; the update lock among them is returned."""
    lock, sink = _lock(Reply(200, {"epp_statuses": ["ok", "serverupdateprohibited"]}))
    assert lock == "serverUpdateProhibited"
    [request] = sink.requests
    assert (request.method, request.path) == ("GET", "/api/domains/example.com")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_http_lock_status_is_none_without_a_lock():
    """Statuses without an update lock mean no lock."""
    assert _lock(Reply(200, {"epp_statuses": ["clientTransferProhibited"]}))[0] is None


def test_http_lock_status_of_an_unknown_domain_is_refused():
    """A 404 for the domain is RegistrarRefused naming it."""
    with pytest.raises(RegistrarRefused, match="HTTP 404.*example.com|example.com.*HTTP 404"):
        _lock(Reply(404, {"code": "not_found"}))


def test_http_lock_status_without_statuses_is_refused():
    """An answer without a list of epp_statuses is refused, not taken for unlocked."""
    with pytest.raises(RegistrarRefused, match="epp_statuses"):
        _lock(Reply(200, {"name": "example.com"}))


def test_http_lock_status_server_error_is_unavailable():
    """A 5xx to the lock query is RegistrarUnavailable."""
    with pytest.raises(RegistrarUnavailable, match="HTTP 503"):
        _lock(Reply(503, "busy"))


def test_http_refuses_a_task_of_another_backend():
    """A task id it did not hand out is refused rather than taken for done."""
    registrar = _http("http://127.0.0.1:9")
    with pytest.raises(RegistrarRefused, match="another registrar backend"):
        registrar.switch_state("database:example.com")
    registrar.close()


def test_registrar_for_picks_the_backend(db):
    """registrar_backend selects the embedded, the HTTP or the Domain API registrar."""
    assert isinstance(registrar_for(Settings(), db), DatabaseRegistrar)
    assert isinstance(registrar_for(Settings(registrar_backend="http"), db), HttpRegistrar)
    aliyun = Settings(
        registrar_backend="aliyun",
        aliyun_access_key_id="LTAI-id",
        aliyun_access_key_secret="s3cret",
    )
    assert isinstance(registrar_for(aliyun, db), AliyunRegistrar)
