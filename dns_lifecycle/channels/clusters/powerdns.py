"""A PowerDNS Authoritative server through its HTTP API, on one kept-alive connection.

    GET    /api/v1/servers/{server_id}/zones/{zone}          read (404/422: no such zone)
    POST   /api/v1/servers/{server_id}/zones                 create (409: exists already),
                                                             in the cluster's catalog if any
    PATCH  /api/v1/servers/{server_id}/zones/{zone}          replace the apex NS rrset
    DELETE /api/v1/servers/{server_id}/zones/{zone}          delete (404/422: gone already)
    PUT    /api/v1/servers/{server_id}/cache/flush?domain=   forget cached answers

    GET    /api/v1/servers/{server_id}                       does the server exist (on a 404)

PowerDNS writes its own SOA (and rewrites its serial), so SOA never crosses this
interface. A timeout, a dropped connection, a 5xx or a 429 is ``ClusterUnavailable``;
a refused API key (401/403) or a 404 for the server itself is ``ClusterMisconfigured``,
a fault of the run's settings, not of the zone; any other refusal is ``ClusterRefused``
with the server's own words (never the key). A 500 "database is locked" (its SQLite
backend takes one writer at a time, whoever else writes) is tried again a few times,
with back-off, before it counts. Each server's ``Breaker`` stops the calls to a server
that stopped answering, or whose settings are wrong, for the rest of the run.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, ValidationError

from dns_lifecycle.channels.clusters import ClusterConfig, WriteLock
from dns_lifecycle.channels.clusters.breaker import (
    CLOSED,
    KEY_REFUSED,
    NO_ANSWER,
    NO_SERVER,
    Breaker,
)
from dns_lifecycle.channels.registry import first_error
from dns_lifecycle.core.errors import (
    ClusterError,
    ClusterMisconfigured,
    ClusterRefused,
    ClusterSwitchedOff,
    ClusterUnavailable,
    InputError,
    ZoneFileError,
)
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.zonefile import Rr, from_presentation, presentation

if TYPE_CHECKING:
    from dns_lifecycle.core.db import Database

_SNIPPET = 300
# The waits before each new try of a write that found the server's SQLite database
# locked by another writer (another run, a person's pdnsutil): about 6 s in all, far
# longer than one write holds the lock.
LOCKED_BACKOFF = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


def fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def rrsets(zone: str, records: list[Rr], nameservers: list[str], ns_ttl: int) -> list[dict]:
    """The API's rrsets for ``records`` plus the apex NS set of ``nameservers``.

    A DNS rrset has one TTL and no repeated value: repeated values are served once, and
    values of one host and type with different TTLs are refused as ``ZoneFileError``.
    Disabled records and the set's comments go as they came.
    """
    sets: dict[tuple[str, str], dict[str, Any]] = {}
    ttls: dict[tuple[str, str], set[int]] = defaultdict(set)
    for rr in records:
        owner, rtype, content = presentation(rr, zone)
        key = (owner, rtype)
        entry = sets.setdefault(
            key, {"name": owner, "type": rtype, "ttl": rr.ttl, "records": [], "comments": []}
        )
        ttls[key].add(rr.ttl)
        record = {"content": content, "disabled": rr.disabled}
        if record not in entry["records"]:
            entry["records"].append(record)
        for account, text in rr.comments:
            comment = {"account": account, "content": text}
            if comment not in entry["comments"]:
                entry["comments"].append(comment)
    for (owner, rtype), seen in ttls.items():
        if len(seen) > 1:
            raise ZoneFileError(
                f"domain {zone}: the {rtype} records of {owner} have different TTLs "
                f"({', '.join(map(str, sorted(seen)))}), which DNS cannot serve as one set; "
                "give them one TTL and run the step again"
            )
    apex = fqdn(zone)
    sets[(apex, "NS")] = {
        "name": apex,
        "type": "NS",
        "ttl": ns_ttl,
        "records": [{"content": fqdn(ns), "disabled": False} for ns in nameservers],
    }
    return list(sets.values())


def _http_url(value: str) -> str:
    # The inventory's own rules for the values a document gives (one rule, one place).
    from dns_lifecycle.admin.inventory.values import http_url

    return http_url(value) or value


def _ident(value: str) -> str:
    from dns_lifecycle.admin.inventory.values import ident

    return ident(value)


def _zone(value: str | None) -> str | None:
    from dns_lifecycle.admin.inventory.values import catalog_zone

    return catalog_zone(value)


class PowerDnsOptions(BaseModel):
    """A PowerDNS cluster's options (its inventory entry's ``options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The server's HTTP API, e.g. http://127.0.0.1:8081 (its key: DNSL_CLUSTER_API_KEYS).
    api_url: Annotated[str, AfterValidator(_http_url)]
    server_id: Annotated[str, AfterValidator(_ident)] = "localhost"
    # The catalog (producer) zone, RFC 9432, that the cluster's zones join, for its
    # secondaries; None: no secondaries fed by a catalog.
    catalog: Annotated[str | None, AfterValidator(_zone)] = None


def open_cluster(
    config: ClusterConfig,
    settings: Settings,
    db: Database,
    write_lock: WriteLock | None,
    breaker: Breaker | None,
) -> PowerDnsCluster:
    """The backend as the cluster registry builds it, with the cluster's API key."""
    key = settings.cluster_api_keys.get(config.code)
    if key is None:
        raise InputError(
            f"cluster {config.code} is a powerdns cluster without an API key: add "
            f'"{config.code}" to DNSL_CLUSTER_API_KEYS'
        )
    return PowerDnsCluster(
        config,
        key,
        settings.cluster_timeout_seconds,
        write_lock,
        breaker or Breaker(settings.cluster_breaker_timeouts),
    )


class PowerDnsCluster:
    def __init__(
        self,
        config: ClusterConfig,
        api_key: SecretStr,
        timeout: float,
        write_lock: WriteLock | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        try:
            self.options = PowerDnsOptions.model_validate(config.options)
        except ValidationError as exc:
            raise ClusterRefused(
                f"cluster {config.code} has bad powerdns options ({first_error(exc)}): fix "
                "the cluster's inventory entry"
            ) from None
        self.config = config
        # PowerDNS's SQLite backend takes one writer and has no busy timeout: the
        # threads (and processes, sharing ``write_lock``) of a run write one at a time.
        self._write_lock: WriteLock = write_lock or threading.Lock()
        # A process of the run that died mid-write never releases a shared lock: the
        # others give up waiting for their turn after a while, as for a server that
        # does not answer, instead of hanging the run.
        self._turn_timeout = max(30.0, 3 * timeout)
        self._breaker = breaker or Breaker(
            Settings.model_fields["cluster_breaker_timeouts"].default
        )
        self._server_seen = False
        self._catalog_seen = False
        self._base = f"/api/v1/servers/{quote(self.options.server_id, safe='')}"
        self._key = api_key
        self._client = httpx.Client(
            base_url=self.options.api_url.rstrip("/"),
            headers={"X-API-Key": api_key.get_secret_value(), "Accept": "application/json"},
            timeout=timeout,
        )

    # --- the interface ------------------------------------------------------------

    def read_zone(self, zone: str) -> list[Rr] | None:
        response = self._call("GET", self._zone_path(zone), zone, absent_ok=True)
        if response is None:
            return None
        records: list[Rr] = []
        unreadable: list[str] = []
        for rrset in response.json().get("rrsets", []):
            if rrset["type"] == "SOA":
                continue
            comments = tuple(
                sorted(
                    (c.get("account", ""), c.get("content", "")) for c in rrset.get("comments", [])
                )
            )
            for r in rrset.get("records", []):
                try:
                    rr = from_presentation(
                        rrset["name"], rrset["type"], rrset["ttl"], r["content"], zone
                    )
                except ZoneFileError as exc:
                    unreadable.append(str(exc))
                    continue
                disabled = bool(r.get("disabled"))
                records.append(replace(rr, disabled=disabled, comments=comments))
        if unreadable:
            # Every record that cannot move, named at once: one ticket, not one per fix.
            more = f" (and {len(unreadable) - 3} more)" if len(unreadable) > 3 else ""
            raise ZoneFileError(
                "; ".join(unreadable[:3])
                + more
                + ": correct or remove it on the paid cluster, then resolve this ticket"
            )
        return records

    def create_zone(self, zone: str, records: list[Rr], ns_ttl: int) -> bool:
        body: dict[str, Any] = {
            "name": fqdn(zone),
            "kind": "Native",
            "rrsets": rrsets(zone, records, list(self.config.nameservers), ns_ttl),
        }
        if self.options.catalog:
            self._check_catalog(zone)
            # A hidden primary: the zone joins the cluster's catalog, from which every
            # secondary (an RFC 9432 consumer) learns to copy it by zone transfer, and
            # is a Master so that the secondaries are notified of it. Deleting the zone
            # takes it out of the catalog, and so off the secondaries.
            body["kind"] = "Master"
            body["catalog"] = fqdn(self.options.catalog)
        response = self._call("POST", f"{self._base}/zones", zone, json=body, conflict_ok=True)
        return response is not None

    def replace_apex_ns(self, zone: str, nameservers: list[str], ttl: int) -> None:
        apex = fqdn(zone)
        body = {
            "rrsets": [
                {
                    "name": apex,
                    "type": "NS",
                    "ttl": ttl,
                    "changetype": "REPLACE",
                    "records": [{"content": fqdn(ns), "disabled": False} for ns in nameservers],
                }
            ]
        }
        self._call("PATCH", self._zone_path(zone), zone, json=body)

    def delete_zone(self, zone: str) -> bool:
        return self._call("DELETE", self._zone_path(zone), zone, absent_ok=True) is not None

    def flush(self, zone: str) -> None:
        self._call("PUT", f"{self._base}/cache/flush", zone, params={"domain": fqdn(zone)})

    def close(self) -> None:
        self._client.close()

    # --- helpers --------------------------------------------------------------------

    def _zone_path(self, zone: str) -> str:
        return f"{self._base}/zones/{quote(fqdn(zone), safe='')}"

    def _call(
        self,
        method: str,
        path: str,
        zone: str,
        *,
        absent_ok: bool = False,
        conflict_ok: bool = False,
        **kwargs: Any,
    ) -> httpx.Response | None:
        where = self._where
        response = self._send(method, path, zone, **kwargs)
        for delay in LOCKED_BACKOFF:
            if not _locked(response):
                break
            time.sleep(delay)
            response = self._send(method, path, zone, **kwargs)
        status = response.status_code
        if 200 <= status < 300:
            return response
        text = self._masked(_snippet(response))
        if status in (401, 403):
            self._breaker.open(KEY_REFUSED)
            raise self._switched_off(KEY_REFUSED)
        if status == 404 and not self._server_exists():
            self._breaker.open(NO_SERVER)
            raise self._switched_off(NO_SERVER)
        if absent_ok and (
            status == 404 or (status == 422 and "could not find domain" in text.lower())
        ):
            return None
        if conflict_ok and status == 409:
            return None
        if status >= 500 or status == 429:
            raise ClusterUnavailable(
                f"{where} answered HTTP {status} to {method} of zone {zone}: {text}; the "
                "next run tries again",
                cause=f"{where} answered HTTP {status}: {text}; the next run tries again",
            )
        raise ClusterRefused(
            f"{where} refused {method} of zone {zone}: HTTP {status}: {text}. Check the "
            "zone's records"
        )

    @property
    def _where(self) -> str:
        return f"cluster {self.config.code} ({self.options.api_url})"

    def _send(self, method: str, path: str, zone: str, **kwargs: Any) -> httpx.Response:
        """One request, unless the server's breaker is open; the breaker learns whether
        the server answered."""
        where = self._where
        # Only what writes the server's database waits for the write turn (a cache flush
        # does not), and it waits with its request built: the turn is the run's
        # bottleneck, so it is held for the call alone.
        writes = method in ("POST", "PATCH", "DELETE")
        request = self._client.build_request(method, path, **kwargs)
        self._check_breaker()
        if writes and not self._write_lock.acquire(True, self._turn_timeout):
            raise ClusterUnavailable(
                f"{where}: no turn to {method} zone {zone} within {self._turn_timeout:g} s "
                "(another process of the run kept the server's write turn); the next run "
                "tries again",
                cause=f"{where}: no write turn within {self._turn_timeout:g} s (another "
                "process of the run kept it); the next run tries again",
            )
        try:
            # A write that waited for its turn behind a server that stopped answering
            # does not go out once the breaker opened.
            self._check_breaker()
            response = self._client.send(request)
        except httpx.TimeoutException:
            self._breaker.missed()
            raise ClusterUnavailable(
                f"{where} did not answer {method} for zone {zone} in time; the next run "
                "tries again",
                cause=f"{where} did not answer in time; the next run tries again",
            ) from None
        except httpx.TransportError as exc:
            self._breaker.missed()
            raise ClusterUnavailable(
                f"{where} could not be reached for {method} of zone {zone} "
                f"({type(exc).__name__}); the next run tries again",
                cause=f"{where} could not be reached ({type(exc).__name__}); the next run "
                "tries again",
            ) from None
        finally:
            if writes:
                self._write_lock.release()
        self._breaker.answered()
        return response

    def _check_breaker(self) -> None:
        state = self._breaker.state
        if state != CLOSED:
            raise self._switched_off(state)

    def _switched_off(self, state: int) -> ClusterError:
        """The one message of a run whose calls to this server stopped (the same in each
        of its processes, so that the report can say it once)."""
        where = self._where
        code = self.config.code
        if state == KEY_REFUSED:
            message = (
                f"{where} refused the API key (HTTP 401/403): set the key of {code} in "
                "DNSL_CLUSTER_API_KEYS (and check that the server's webserver-allow-from "
                "lets this host in); no more calls went to it in this run, no domain was "
                "ticketed, and the next run goes on"
            )
            return ClusterMisconfigured(message, cause=message)
        if state == NO_SERVER:
            message = (
                f"{where} has no server {self.options.server_id!r} (HTTP 404 for "
                f"{self._base}): correct the server_id (or the api_url) of cluster {code} "
                "in the inventory; no more calls went to it in this run, no domain was "
                "ticketed, and the next run goes on"
            )
            return ClusterMisconfigured(message, cause=message)
        assert state == NO_ANSWER
        message = (
            f"{where} did not answer {self._breaker.threshold} calls in a row: no more "
            "calls went to it in this run (DNSL_CLUSTER_BREAKER_TIMEOUTS); its domains "
            "wait where they are, and the next run tries again"
        )
        return ClusterSwitchedOff(message, cause=message)

    def _check_catalog(self, zone: str) -> None:
        """Refuses, as a fault of the run, to create zones in a catalog the server does
        not have: PowerDNS accepts such a member, and no secondary would ever copy it.
        Asked once per run and cluster."""
        if self._catalog_seen:
            return
        assert self.options.catalog
        if self._call("GET", self._zone_path(self.options.catalog), zone, absent_ok=True) is None:
            message = (
                f"{self._where} has no catalog zone {fqdn(self.options.catalog)}: create it "
                "there (kind Producer, soa_edit_api EPOCH) or correct the catalog of "
                f"cluster {self.config.code} in the inventory; no zone was created, no "
                "domain was ticketed, and the next run goes on"
            )
            raise ClusterMisconfigured(message, cause=message)
        self._catalog_seen = True

    def _server_exists(self) -> bool:
        """Whether the API knows ``server_id``: a 404 then means the zone is missing,
        not the server. Asked once per run and cluster (PowerDNS has one server,
        "localhost", so a wrong server_id makes every zone look missing)."""
        if self._server_seen:
            return True
        try:
            response = self._send("GET", self._base, "-")
        except ClusterError:
            return True  # not known to be missing: the zone's answer stands
        if response.status_code == 404:
            return False
        self._server_seen = True
        return True

    def _masked(self, text: str) -> str:
        if secret := self._key.get_secret_value():
            # A server echoing the request must not put the key into a ticket or a log.
            text = text.replace(secret, "**********")
        return text


def _locked(response: httpx.Response) -> bool:
    """A 500 from PowerDNS's SQLite backend finding the database locked by another
    writer: nothing was written, and the same call succeeds once the writer is done."""
    return response.status_code == 500 and "database is locked" in response.text.lower()


def _snippet(response: httpx.Response) -> str:
    try:
        body = response.json()
        text = body.get("error", "") if isinstance(body, dict) else str(body)
    except ValueError:
        text = response.text
    text = " ".join(str(text).split())
    return (text[:_SNIPPET] + "...") if len(text) > _SNIPPET else (text or "(empty body)")
