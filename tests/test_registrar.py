"""Registrar gateways: the embedded one on the database, the HTTP one against a local server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from dns_lifecycle.channels.registrar import DatabaseRegistrar, HttpRegistrar, registrar_for
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


def test_database_registrar_switches_the_domain(fleet):
    """An unlocked domain is delegated to the new name servers once the caller commits."""
    with fleet.session() as session:
        DatabaseRegistrar().set_nameservers(
            session, "open.example.com", FREE_NS, ["clientTransferProhibited"]
        )
        session.commit()
    assert _nameservers(fleet, "open.example.com") == FREE_NS
    assert _nameservers(fleet, "client.example.com") == PAID_NS


def test_database_registrar_does_not_commit(fleet):
    """The change is part of the caller's transaction: a rollback undoes it."""
    with fleet.session() as session:
        DatabaseRegistrar().set_nameservers(session, "open.example.com", FREE_NS, [])
        session.rollback()
    assert _nameservers(fleet, "open.example.com") == PAID_NS


def test_database_registrar_updates_the_loaded_row(fleet):
    """A Domain already loaded in the session shows the new name servers at once."""
    with fleet.session() as session:
        domain = session.exec(select(Domain).where(Domain.name == "open.example.com")).one()
        DatabaseRegistrar().set_nameservers(session, "open.example.com", FREE_NS, [])
        assert domain.nameservers == FREE_NS


@pytest.mark.parametrize(
    ("name", "status", "fix"),
    [
        ("client.example.com", "clientUpdateProhibited", "registrar's console"),
        ("server.example.com", "serverUpdateProhibited", "registry lift"),
    ],
)
def test_database_registrar_refuses_a_locked_domain(fleet, name, status, fix):
    """Either update lock is refused with DomainLocked naming the domain, status and fix."""
    with fleet.session() as session, pytest.raises(DomainLocked) as caught:
        DatabaseRegistrar().set_nameservers(session, name, FREE_NS, [status])
    message = str(caught.value)
    assert isinstance(caught.value, NeedsPerson)
    assert (caught.value.domain, caught.value.status) == (name, status)
    assert name in message and status in message and fix in message
    assert "change its DNS servers by hand" in message and FREE_NS[0] in message
    assert _nameservers(fleet, name) == PAID_NS


def test_database_registrar_reads_lock_codes_in_any_case(fleet):
    """An EPP status spelled in another case is still a lock."""
    with fleet.session() as session, pytest.raises(DomainLocked):
        DatabaseRegistrar().set_nameservers(
            session, "client.example.com", FREE_NS, ["CLIENTUPDATEPROHIBITED"]
        )


def test_database_registrar_refuses_an_unknown_domain(fleet):
    """A domain that is not in the database is refused permanently."""
    with fleet.session() as session, pytest.raises(RegistrarRefused, match="nowhere.example"):
        DatabaseRegistrar().set_nameservers(session, "nowhere.example", FREE_NS, [])


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


def _set(registrar: HttpRegistrar, epp_statuses: list[str] | None = None) -> None:
    registrar.set_nameservers(None, "example.com", FREE_NS, epp_statuses or [])


def test_http_200_is_done_and_sends_the_request():
    """A 200 means done; the request is a PUT of the name servers with the bearer token."""
    with HttpSink(lambda _r: Reply(200, {"ok": True})) as sink:
        _set(_http(sink))
    [request] = sink.requests
    assert (request.method, request.path) == ("PUT", "/api/domains/example.com/nameservers")
    assert request.json() == {"nameservers": FREE_NS}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


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
    """409 and 423 mean the domain is locked; the lock is named from its EPP statuses."""
    with HttpSink(lambda _r: Reply(status, "locked")) as sink, pytest.raises(DomainLocked) as e:
        _set(_http(sink), ["serverUpdateProhibited"])
    assert e.value.status == "serverUpdateProhibited"
    assert "example.com" in str(e.value)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("clientUpdateProhibited", "clientUpdateProhibited"),
        ("serverUpdateProhibited", "serverUpdateProhibited"),
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


def test_http_does_not_pre_check_epp_statuses():
    """The registrar decides: a domain we think is locked is still sent, and may succeed."""
    with HttpSink(lambda _r: Reply(200)) as sink:
        _set(_http(sink), ["clientUpdateProhibited"])
    assert len(sink.requests) == 1


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


def test_registrar_for_picks_the_backend():
    """registrar_backend selects the embedded or the HTTP registrar."""
    assert isinstance(registrar_for(Settings()), DatabaseRegistrar)
    assert isinstance(registrar_for(Settings(registrar_backend="http")), HttpRegistrar)
