"""Registrar gateways: point a domain at other name servers (rule 7).

Two backends, chosen by ``registrar_backend``:

- ``DatabaseRegistrar`` (the default) records the delegation in the project's own
  database, and refuses a locked domain as a real registrar would;
- ``HttpRegistrar`` calls a registrar's API:
  ``PUT {registrar_url}/domains/{name}/nameservers`` with ``{"nameservers": [...]}``.

Both raise, for a change that did not happen:

    DomainLocked(NeedsPerson)                  the domain's EPP status forbids updates:
                                               a person unlocks it or sets the servers
    RegistrarUnavailable(TransientDeliveryError)
                                               no answer, a timeout, a 5xx, a 429: the
                                               next run tries again
    RegistrarRefused(PermanentDeliveryError)   any other refusal (unknown domain, bad
                                               token, bad request): trying again will
                                               not help until someone fixes the cause

Neither commits: the caller's transaction covers the change with the rest of the
release.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

import httpx
from sqlmodel import Session, select

from dns_lifecycle.core.errors import (
    DomainLocked,
    RegistrarRefused,
    RegistrarUnavailable,
)
from dns_lifecycle.core.settings import Settings
from models import Domain

__all__ = [
    "LOCK_STATUSES",
    "DatabaseRegistrar",
    "HttpRegistrar",
    "is_locked",
    "registrar_for",
]

# EPP statuses (RFC 5731) that forbid changing a domain's name servers.
LOCK_STATUSES = ("clientUpdateProhibited", "serverUpdateProhibited")
_LOCK_BY_LOWER = {s.lower(): s for s in LOCK_STATUSES}
# Error codes in a registrar's JSON answer that mean "locked".
_LOCK_CODES = set(_LOCK_BY_LOWER) | {"domain_locked"}

# Characters of a registrar's answer quoted in an error (the ledger keeps 1000).
_SNIPPET = 300


def is_locked(epp_statuses: Iterable[str]) -> str | None:
    """The first update lock among ``epp_statuses`` (any case), in its RFC spelling, or None."""
    return next(
        (_LOCK_BY_LOWER[s.lower()] for s in epp_statuses if s.lower() in _LOCK_BY_LOWER), None
    )


class DatabaseRegistrar:
    """The embedded registrar: the delegation lives in ``domain.nameservers``."""

    def set_nameservers(
        self,
        session: Session,
        domain_name: str,
        nameservers: list[str],
        epp_statuses: list[str],
    ) -> None:
        """Record that ``domain_name`` is delegated to ``nameservers``; no commit.

        Raises ``DomainLocked`` when ``epp_statuses`` holds an update lock, and
        ``RegistrarRefused`` when no domain has that name.
        """
        lock = is_locked(epp_statuses)
        if lock is not None:
            raise DomainLocked(domain_name, lock, nameservers)
        domain = session.exec(select(Domain).where(Domain.name == domain_name)).one_or_none()
        if domain is None:
            raise RegistrarRefused(
                f"domain {domain_name} is not in the database, so its name servers cannot "
                "be set: import it with its instance first"
            )
        # A new list, so the JSON column sees the change.
        domain.nameservers = list(nameservers)
        session.add(domain)
        session.flush()


class HttpRegistrar:
    """A registrar's HTTP API (see the module docstring for the call)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.registrar_url.rstrip("/")
        self.timeout = settings.registrar_timeout_seconds
        self._token = settings.registrar_token

    def set_nameservers(
        self,
        session: Session | None,
        domain_name: str,
        nameservers: list[str],
        epp_statuses: list[str],
    ) -> None:
        """Ask the registrar to delegate ``domain_name`` to ``nameservers``.

        The registrar decides whether the domain is locked: ``epp_statuses`` only
        names the lock in the error when the registrar's answer does not. ``session``
        is unused (the change happens at the registrar).
        """
        url = f"{self.url}/domains/{quote(domain_name, safe='')}/nameservers"
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        try:
            with httpx.Client(timeout=self.timeout) as client:
                response = client.put(url, json={"nameservers": nameservers}, headers=headers)
        except httpx.UnsupportedProtocol:
            raise RegistrarRefused(
                f"cannot set the name servers of {domain_name}: the registrar URL "
                f"{self._where()} is not http(s); fix DNSL_REGISTRAR_URL"
            ) from None
        except httpx.TimeoutException:
            raise RegistrarUnavailable(
                f"the registrar at {self._where()} did not answer within {self.timeout:g} s "
                f"when setting the name servers of {domain_name}; the next run tries again"
            ) from None
        except httpx.TransportError as exc:
            raise RegistrarUnavailable(
                f"the registrar at {self._where()} could not be reached to set the name "
                f"servers of {domain_name} ({type(exc).__name__}); the next run tries again"
            ) from None

        status = response.status_code
        if 200 <= status < 300:
            return
        snippet = self._snippet(response.text)
        code = _body_code(response)
        if status in (409, 423) or (code is not None and code.lower() in _LOCK_CODES):
            lock = is_locked([code or ""]) or is_locked(epp_statuses)
            raise DomainLocked(domain_name, lock, nameservers)
        if status >= 500 or status == 429:
            raise RegistrarUnavailable(
                f"the registrar at {self._where()} answered HTTP {status} when setting the "
                f"name servers of {domain_name}: {snippet}; the next run tries again"
            )
        raise RegistrarRefused(
            f"the registrar at {self._where()} refused to set the name servers of "
            f"{domain_name}: HTTP {status}: {snippet}. Check that the domain is managed by "
            "this registrar account and that DNSL_REGISTRAR_TOKEN may change it"
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


def _body_code(response: httpx.Response) -> str | None:
    """The ``code`` of a JSON error body, if there is one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def registrar_for(
    settings: Settings, *, dry_run: bool = False
) -> DatabaseRegistrar | HttpRegistrar:
    """The registrar backend that ``registrar_backend`` names.

    A dry run never calls a registrar: the database backend stands in, refusing
    locked domains as a registrar would, and its writes are rolled back with the rest.
    """
    if settings.registrar_backend == "http" and not dry_run:
        return HttpRegistrar(settings)
    return DatabaseRegistrar()
