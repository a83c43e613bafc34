"""A registrar's plain HTTP API.

Two calls, under ``{registrar_url}`` (``DNSL_REGISTRAR_URL``), each with
``Authorization: Bearer {registrar_token}`` when a token is set:

``GET /domains/{name}``
    The domain as the registrar holds it, JSON: ``{"epp_statuses": [...],
    "nameservers": [...], ...}`` (other fields are ignored). The update lock is read
    from ``epp_statuses``; ``nameservers`` (optional) is read only before a switch asked
    for again after a lost answer: if they are already the ones asked for, the first
    request was applied and no second one is sent.
``PUT /domains/{name}/nameservers`` with ``{"nameservers": [...]}``
    Sets the delegation; any 2xx means it is applied (so a switch is done at once).
    409 or 423, or a JSON body ``{"code": ...}`` naming a lock (an EPP update lock or
    ``domain_locked``), means the domain is locked.

Answers, for both: a timeout, no connection, a 5xx or a 429 is ``RegistrarUnavailable``;
any other status is ``RegistrarRefused`` quoting the status and the start of the body,
with the token masked. ``name`` is the domain's A-label, percent-encoded.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from dns_lifecycle.channels.registrar import SwitchState, done_at_once
from dns_lifecycle.core.errors import DomainLocked, RegistrarRefused, RegistrarUnavailable
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.nameservers import lock_of

if TYPE_CHECKING:
    from dns_lifecycle.core.db import Database

# Error codes in a registrar's JSON answer that mean "locked", besides the EPP locks.
_LOCK_CODE = "domain_locked"
# Characters of a registrar's answer quoted in an error (the ledger keeps 1000).
_SNIPPET = 300
# Task ids of this backend: the prefix, then the domain's name (a PUT applies at once).
TASK_PREFIX = "http:"


class HttpRegistrar:
    """A registrar's HTTP API (see the module docstring for the calls)."""

    # A switch is a request to another system: recorded before the next one is asked.
    external = True

    def __init__(self, settings: Settings) -> None:
        self.url = settings.registrar_url.rstrip("/")
        self.timeout = settings.registrar_timeout_seconds
        self._token = settings.registrar_token
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        self._client = httpx.Client(timeout=self.timeout, headers=headers)

    def lock_status(self, domain: str) -> str | None:
        """The update lock among the ``epp_statuses`` the registrar holds, or None."""
        response = self._call("GET", f"/domains/{_path(domain)}", domain, "read the lock of")
        body = _json(response)
        statuses = body.get("epp_statuses") if isinstance(body, dict) else None
        if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
            raise RegistrarRefused(
                f"the registrar at {self._where()} answered the lock query for {domain} "
                f"without a list of epp_statuses: {self._snippet(response.text)}. Check "
                "that DNSL_REGISTRAR_URL points at a registrar API of this kind"
            )
        return lock_of(statuses)

    def start_switch(
        self, domain: str, nameservers: list[str], *, asked_since: datetime | None = None
    ) -> str:
        """PUT the name servers; the registrar decides whether the domain is locked.
        After a lost answer (``asked_since``) the domain is read first: a switch already
        applied is not asked for a second time (a registrar that does not say its name
        servers gets the PUT again, which sets the same servers)."""
        if asked_since is not None and self._delegated_to(domain, nameservers):
            return TASK_PREFIX + domain
        self._call(
            "PUT",
            f"/domains/{_path(domain)}/nameservers",
            domain,
            "set the name servers of",
            body={"nameservers": nameservers},
            nameservers=nameservers,
        )
        return TASK_PREFIX + domain

    def _delegated_to(self, domain: str, nameservers: list[str]) -> bool:
        """Whether the registrar says ``domain`` is delegated to ``nameservers`` already."""
        response = self._call("GET", f"/domains/{_path(domain)}", domain, "read")
        body = _json(response)
        held = body.get("nameservers") if isinstance(body, dict) else None
        if not isinstance(held, list) or not all(isinstance(n, str) for n in held):
            return False
        return _names(held) == _names(nameservers)

    def switch_state(self, task_id: str) -> SwitchState:
        """Done: the registrar applied the change when it accepted the PUT."""
        return done_at_once(task_id, TASK_PREFIX, "HTTP registrar")

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        method: str,
        path: str,
        domain: str,
        doing: str,
        *,
        body: Any = None,
        nameservers: list[str] | None = None,
    ) -> httpx.Response:
        """One request; a 2xx answer, or the error that says why not."""
        try:
            response = self._client.request(method, self.url + path, json=body)
        except httpx.UnsupportedProtocol:
            raise RegistrarRefused(
                f"cannot {doing} {domain}: the registrar URL {self._where()} is not "
                "http(s); fix DNSL_REGISTRAR_URL"
            ) from None
        except httpx.TimeoutException:
            raise RegistrarUnavailable(
                f"the registrar at {self._where()} did not answer within {self.timeout:g} s "
                f"when asked to {doing} {domain}; the next run tries again"
            ) from None
        except httpx.TransportError as exc:
            raise RegistrarUnavailable(
                f"the registrar at {self._where()} could not be reached to {doing} "
                f"{domain} ({type(exc).__name__}); the next run tries again"
            ) from None

        status = response.status_code
        if 200 <= status < 300:
            return response
        snippet = self._snippet(response.text)
        if nameservers is not None:
            code = _body_code(response)
            lock = lock_of([code or ""])
            if status in (409, 423) or lock is not None or (code or "").lower() == _LOCK_CODE:
                raise DomainLocked(domain, lock, nameservers)
        if status >= 500 or status == 429:
            raise RegistrarUnavailable(
                f"the registrar at {self._where()} answered HTTP {status} when asked to "
                f"{doing} {domain}: {snippet}; the next run tries again"
            )
        raise RegistrarRefused(
            f"the registrar at {self._where()} refused to {doing} {domain}: HTTP {status}: "
            f"{snippet}. Check that the domain is managed by this registrar account and "
            "that DNSL_REGISTRAR_TOKEN may change it"
        )

    def _where(self) -> str:
        """The registrar's address without any user:password in the URL."""
        try:
            parts = urlsplit(self.url)
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return "DNSL_REGISTRAR_URL"
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"

    def _snippet(self, text: str) -> str:
        text = " ".join(text.split())
        if self._token is not None and (secret := self._token.get_secret_value()):
            # A registrar echoing the request must not leak the token into the ledger.
            text = text.replace(secret, "**********")
        return (text[:_SNIPPET] + "...") if len(text) > _SNIPPET else (text or "(empty body)")


def _path(domain: str) -> str:
    return quote(domain, safe="")


def _names(nameservers: list[str]) -> set[str]:
    return {n.lower().rstrip(".") for n in nameservers}


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def _body_code(response: httpx.Response) -> str | None:
    """The ``code`` of a JSON error body, if there is one."""
    body = _json(response)
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def from_settings(settings: Settings, database: Database) -> HttpRegistrar:
    """The backend as the registry builds it."""
    return HttpRegistrar(settings)
