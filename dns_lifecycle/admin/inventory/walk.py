"""The walk of an inventory document: its instances, their domains and records.

``_Walk`` goes on from ``sections._Sections``: each instance is checked against the
document and against what is stored (its lifecycle, its release), each domain against
its owner, each record against the others of its name.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

from dns_lifecycle.admin.inventory import values
from dns_lifecycle.admin.inventory.entries import (
    DomainEntry,
    DomainReleaseEntry,
    InstanceEntry,
    RecordEntry,
    key_path,
    validate_entry,
)
from dns_lifecycle.admin.inventory.sections import _Sections, _shown, _utc
from dns_lifecycle.admin.inventory.stored import (
    _INSTANCE_COLUMNS,
    _raw_str,
    anchor_misfit,
    anchor_time_misfit,
)
from dns_lifecycle.lifecycle.expiry import release_at
from dns_lifecycle.lifecycle.zonefile import Rr
from models.types import INSTANCE_STATES, time_zones


@dataclass(frozen=True)
class CheckedRecord:
    type: str
    host: str
    value: str
    ttl: int


@dataclass(frozen=True)
class CheckedDomain:
    name: str
    registrar: str
    epp_statuses: list[str]
    nameservers: list[str]
    records: list[CheckedRecord]
    release: dict[str, Any] | None = None  # a release under way, as exported


class _Walk(_Sections):
    """Checks every entry in file order and records every problem with its path."""

    def instances(
        self, section: Any
    ) -> tuple[list[dict[str, Any]], dict[str, list[CheckedDomain]], dict[str, str]]:
        rows: list[dict[str, Any]] = []
        all_domains: dict[str, list[CheckedDomain]] = {}
        serving: dict[str, str] = {}
        seen: dict[str, str] = {}
        seen_domains: dict[str, str] = {}
        for i, raw in enumerate(self.array(section, "instances")):
            path = f"instances[{i}]"
            before = len(self.errors)
            row = validate_entry(InstanceEntry, raw, path, self.errors)
            if row is not None:
                record_cluster = self.instance(row, path, seen)
            else:
                # Still check the references that are well formed: every problem at once.
                record_cluster = None
                given = self.passed(raw, path, before)
                self.references(
                    {key: value for key, value in given.items() if isinstance(value, str)},
                    path,
                    seen,
                )
            self.in_field_order(InstanceEntry, path, before)
            instance_id = row["id"] if row is not None else _raw_str(raw, "id")
            domains = None
            if isinstance(raw, dict) and isinstance(raw.get("domains"), list):
                domains = self.domains(
                    raw["domains"], f"{path}.domains", instance_id, seen_domains, record_cluster
                )
            if row is not None and row["id"] in self.stored.lifecycle.instances:
                clean = domains if len(self.errors) == before else None
                self.stale_instance(row, raw, path, clean)
            if row is not None:
                self.state_reached(row, path)
            if row is None or record_cluster is None or len(self.errors) != before:
                continue
            row.pop("domains", None)
            rows.append(row)
            serving[row["id"]] = record_cluster
            if domains is not None:
                all_domains[row["id"]] = domains
        return rows, all_domains, serving

    def instance(self, row: dict[str, Any], path: str, seen: dict[str, str]) -> str | None:
        """Checks an instance against the file and the database; completes its row and
        returns the cluster that serves its records (None when that is not known)."""
        given = {"account": row["account_id"], "edition": row["edition_code"]}
        cluster = row["cluster_code"]
        cluster_ok = self.references({"id": row["id"], **given, "cluster": cluster}, path, seen)
        zone = self.declared.account_zones.get(
            row["account_id"], self.stored.account_zones.get(row["account_id"])
        )
        self.anchor_day(row, path, zone)
        expires_at, state = row["expires_at"], row["state"]
        if "released_at" in row:
            if state != "released":
                self.bad(
                    f"{path}.released_at",
                    "only a released instance has a release time; remove it or set "
                    "state to 'released'",
                )
            elif row["released_at"] < release_at(expires_at, self.grace_days):
                self.bad(
                    f"{path}.released_at",
                    f"{_utc(row['released_at'])} is before the end of the grace period "
                    f"({_utc(release_at(expires_at, self.grace_days))}, {self.grace_days} days "
                    "after expires_at); an instance is released once its grace period is over",
                )
            elif row["released_at"] > self.now:
                self.bad(
                    f"{path}.released_at",
                    f"{_utc(row['released_at'])} is after now ({_utc(self.now)}); a release "
                    "is recorded once it has happened: give the moment it was released",
                )
        elif state != "released":
            row["released_at"] = None
        if state != "released":
            return cluster if cluster_ok else None
        if self.free_cluster is None:
            self.bad(
                f"{path}.state",
                "a released instance's records are served by the free cluster, "
                "and there is no single free cluster; add one to 'clusters'",
            )
        return self.free_cluster

    def state_reached(self, row: dict[str, Any], path: str) -> None:
        """A file's expired or released instance must have reached that state by now: an
        instance expires at its expiry, and is released once its grace period is over
        (DNSL_GRACE_DAYS), never by a file before then. (A stored instance refused at its
        state already, as one with time left, is not refused twice.)"""
        where = f"{path}.state"
        if any(p == where for p, _ in self.errors):
            return
        state, expires_at = row["state"], row["expires_at"]
        grace_end = release_at(expires_at, self.grace_days)
        if state == "released" and grace_end > self.now:
            self.bad(
                where,
                f"'released' before the grace period ends ({_utc(grace_end)}, "
                f"{self.grace_days} days after expires_at); the lifecycle releases it then",
            )
        elif state == "expired" and expires_at > self.now:
            self.bad(
                where,
                f"'expired' with expires_at {_utc(expires_at)} after now "
                f"({_utc(self.now)}); give state 'active' until it expires",
            )

    def stale_instance(
        self,
        row: dict[str, Any],
        raw: dict[str, Any],
        path: str,
        domains: list[CheckedDomain] | None,
    ) -> None:
        """Refuses what would undo the lifecycle's work on a stored instance: any change
        to a released one, moving one with paid orders to another account, the edition
        of one with a paid upgrade, an expiry before the end of its paid periods, an
        expired one made active again without an expiry ahead of now, and one with time
        left made expired or released."""
        lifecycle = self.stored.lifecycle
        instance_id = row["id"]
        held = lifecycle.instances[instance_id]
        stored_state, stored_expiry = held.state, held.expires_at
        if stored_state == "released":
            self.released_unchanged(row, raw, path, domains)
            return
        paid = lifecycle.paid_through.get(instance_id)
        if paid is not None and row["account_id"] != held.account_id:
            order_id, kind, _ = paid
            self.bad(
                f"{path}.account",
                f"{values.show(row['account_id'])} would move the instance away from the "
                f"account {values.show(held.account_id)}, which paid its orders (the latest "
                f"order {order_id}, {kind}); an instance with paid orders stays with the "
                f"account that paid them: give {values.show(held.account_id)}",
            )
        upgraded = lifecycle.upgrades.get(instance_id)
        if upgraded is not None and row["edition_code"] != held.edition_code:
            order_id, edition = upgraded
            self.bad(
                f"{path}.edition",
                f"{values.show(row['edition_code'])} is not the stored edition "
                f"{values.show(held.edition_code)}, and order {order_id} paid the upgrade "
                f"to {values.show(edition)}: the file is older than that upgrade; give the "
                "stored edition (export the current state)",
            )
        if paid is not None and row["expires_at"] < paid[2]:
            order_id, kind, end = paid
            self.bad(
                f"{path}.expires_at",
                f"{_utc(row['expires_at'])} is before {_utc(end)}, the end of the period paid "
                f"by order {order_id} ({kind}): the file is older than that payment; an "
                "expiry is not moved back before a paid period ends. To correct an expiry, "
                "export the current state, edit it and import that",
            )
        state = row["state"]
        backwards = INSTANCE_STATES.index(state) < INSTANCE_STATES.index(stored_state)
        if backwards and row["expires_at"] <= max(stored_expiry, self.now):
            self.bad(
                f"{path}.state",
                f"{values.show(state)} would undo the instance's expiry: it is "
                f"{values.show(stored_state)} in the database, expired at "
                f"{_utc(stored_expiry)}. It becomes active again only with an expires_at "
                f"after now ({_utc(self.now)}): renew it (dns-lifecycle renew), or give the "
                "expiry it was renewed to",
            )
        elif state != stored_state and state != "active" and stored_expiry > self.now:
            self.bad(
                f"{path}.state",
                f"{values.show(state)} would end the instance's paid time: it is "
                f"{values.show(stored_state)} in the database until {_utc(stored_expiry)}, "
                f"after now ({_utc(self.now)}); the runs expire and release it once that "
                "time has passed: give the stored state",
            )

    def released_unchanged(
        self,
        row: dict[str, Any],
        raw: dict[str, Any],
        path: str,
        domains: list[CheckedDomain] | None,
    ) -> None:
        """Refuses every change to a released instance: its zones are on the free
        cluster, its paid copies deleted, its name servers switched."""
        stored = self.stored.lifecycle.released[row["id"]]
        released_at = stored["released_at"]
        final = (
            "the instance was released"
            + (f" on {_utc(released_at)}" if released_at is not None else "")
            + ", and a released instance is final: it cannot be changed by import. Give "
            "it as the database holds it (export the current state), or leave it out"
        )
        for key, column in _INSTANCE_COLUMNS.items():
            if key in raw and column in row and row[column] != stored[column]:
                self.bad(
                    key_path(path, key),
                    f"{_shown(row[column])} would change the stored {_shown(stored[column])}; "
                    + final,
                )
        if domains is None:
            return
        held = self.stored.lifecycle.released_domains.get(row["id"], {})
        listed = {d.name for d in domains}
        for j, d in enumerate(domains):
            dpath = f"{path}.domains[{j}]"
            now = held.get(d.name)
            if now is None:
                self.bad(dpath, f"{values.show(d.name)} is not a domain of this instance; {final}")
                continue
            changed = [
                what
                for what, same in (
                    ("registrar", d.registrar == now.registrar),
                    ("epp_statuses", sorted(d.epp_statuses) == sorted(now.epp_statuses)),
                    ("nameservers", sorted(d.nameservers) == sorted(now.nameservers)),
                    ("records", sorted(astuple(r) for r in d.records) == sorted(now.records)),
                    (
                        "release",
                        d.release is None
                        or (
                            now.release is not None
                            and all(now.release.get(k) == v for k, v in d.release.items())
                        ),
                    ),
                )
                if not same
            ]
            if changed:
                self.bad(dpath, f"its {', '.join(changed)} differ from the stored ones; {final}")
        missing = sorted(set(held) - listed)
        if missing:
            self.bad(
                f"{path}.domains",
                f"leaves out {', '.join(values.show(n) for n in missing)}, which it holds; "
                + final,
            )

    def references(self, given: dict[str, str], path: str, seen: dict[str, str]) -> bool:
        """Checks an instance's id and references, by document key, those ``given``;
        returns whether its cluster is a known paid cluster."""
        d, s = self.declared, self.stored
        if "id" in given:
            self.unique(seen, given["id"], f"{path}.id", "id")
        if "account" in given:
            self.known(given["account"], f"{path}.account", "account", d.accounts, s.account_ids)
        if "edition" in given:
            self.known(given["edition"], f"{path}.edition", "edition", d.editions, s.edition_ranks)
        cluster = given.get("cluster")
        if cluster is None:
            return False
        if not self.known(cluster, f"{path}.cluster", "cluster", d.clusters, s.cluster_kinds):
            return False
        kind = d.clusters[cluster] if cluster in d.clusters else s.cluster_kinds.get(cluster)
        if kind == "free":
            self.bad(
                f"{path}.cluster",
                f"{values.show(cluster)} is the free cluster; an instance is served by a "
                "paid cluster",
            )
            return False
        return True

    def anchor_day(self, row: dict[str, Any], path: str, zone: Any) -> None:
        # The anchor is a day of the account's own calendar; a bad zone is reported
        # with its account, and the anchor is then left unchecked.
        if not (isinstance(zone, str) and zone in time_zones()):
            return
        anchor = row.setdefault("anchor_day", row["expires_at"].astimezone(ZoneInfo(zone)).day)
        if (day := anchor_misfit(row["expires_at"], anchor, zone)) is not None:
            self.bad(
                f"{path}.anchor_day",
                f"{anchor} does not fit expires_at (day {day} in {zone}): it must be {day}, or "
                "larger only when expiry falls on the last day of the month",
            )
        # Left out, it is the expiry's own time: written so, not kept from before.
        at: time | None = row.setdefault("anchor_time", None)
        if at is not None and (shown := anchor_time_misfit(row["expires_at"], at, zone)):
            self.bad(
                f"{path}.anchor_time",
                f"{values.show(at.isoformat())} does not fit expires_at ({shown} in {zone}): "
                "it differs from the expiry's local time only where a daylight-saving gap "
                "skipped it on that day; give that time or leave anchor_time out",
            )

    def domains(
        self,
        section: list[Any],
        path: str,
        instance_id: str | None,
        seen_domains: dict[str, str],
        record_cluster: str | None,
    ) -> list[CheckedDomain]:
        result: list[CheckedDomain] = []
        for j, raw in enumerate(section):
            dpath = f"{path}[{j}]"
            before = len(self.errors)
            row = validate_entry(DomainEntry, raw, dpath, self.errors)
            name = row["name"] if row is not None else None
            if name is not None:
                self.owner(name, f"{dpath}.name", instance_id, seen_domains)
            records: list[CheckedRecord] = []
            if isinstance(raw, dict) and isinstance(raw.get("records"), list):
                records = self.records(raw["records"], f"{dpath}.records", name, record_cluster)
            release = None
            if isinstance(raw, dict) and raw.get("release") is not None:
                release = validate_entry(
                    DomainReleaseEntry, raw["release"], f"{dpath}.release", self.errors
                )
            if row is not None and len(self.errors) == before:
                result.append(
                    CheckedDomain(
                        name=row["name"],
                        registrar=row["registrar"],
                        epp_statuses=row.get("epp_statuses", []),
                        nameservers=row.get("nameservers", []),
                        records=records,
                        release=release,
                    )
                )
        return result

    def owner(
        self, name: str, path: str, instance_id: str | None, seen_domains: dict[str, str]
    ) -> None:
        if name in seen_domains:
            self.bad(path, f"{values.show(name)} is also listed at {seen_domains[name]}")
            return
        seen_domains[name] = path
        stored = self.stored.domains.get(name)
        if stored is None or instance_id is None:
            return
        owner = stored[1]
        moves_freely = (
            owner in self.declared.instances and owner in self.declared.instances_with_domains
        )
        if owner != instance_id and not moves_freely:
            self.bad(
                path,
                f"{values.show(name)} already belongs to the instance {values.show(owner)}; "
                "remove it there first (list that instance here without it)",
            )

    def records(
        self, section: list[Any], path: str, domain: str | None, record_cluster: str | None
    ) -> list[CheckedRecord]:
        result: list[CheckedRecord] = []
        seen: dict[tuple[str, str, str], str] = {}
        # Per owner name: the types there, with the path of the first of each.
        owners: dict[str, dict[str, str]] = {}
        # Per record set (owner, type): its TTL and the path that set it. DNS serves one
        # TTL per set, and a live cluster refuses a zone whose set has two.
        set_ttls: dict[tuple[str, str], tuple[int, str]] = {}
        for k, raw in enumerate(section):
            rpath = f"{path}[{k}]"
            row = validate_entry(RecordEntry, raw, rpath, self.errors)
            if row is None:
                continue
            before = len(self.errors)
            rtype, host = row["type"], row["host"]
            if rtype == "CNAME" and host == "@":
                # The apex always holds the zone's SOA and NS, and a CNAME must be alone.
                self.bad(
                    f"{rpath}.host",
                    "a CNAME cannot be at '@': the domain itself always holds its SOA and NS "
                    "records; give '@' A/AAAA records instead, or put the CNAME on a host "
                    "such as 'www'",
                )
                continue
            same = self.record_value(row, rpath, domain) if domain is not None else None
            if "cluster" in row and record_cluster is not None and row["cluster"] != record_cluster:
                self.bad(
                    f"{rpath}.cluster",
                    f"{values.show(row['cluster'])} does not serve this instance's records; "
                    f"{record_cluster!r} does (or leave the field out)",
                )
            if len(self.errors) != before or same is None:
                continue
            # Names compare without case, values as the zone file will hold them.
            identity = (same.type, same.host, same.value)
            if identity in seen:
                self.bad(rpath, f"the same record as {seen[identity]}")
                continue
            there = owners.setdefault(same.host, {})
            other = next((p for t, p in there.items() if "CNAME" in (t, rtype)), None)
            if other is not None:
                self.bad(
                    f"{rpath}.host",
                    f"{values.show(host)} already has a record at {other}, and a CNAME "
                    "must be the only record of its name; keep one of them, or move "
                    "the other to another host",
                )
                continue
            first_ttl, first_path = set_ttls.setdefault((same.host, same.type), (row["ttl"], rpath))
            if row["ttl"] != first_ttl:
                self.bad(
                    f"{rpath}.ttl",
                    f"{row['ttl']} differs from the TTL {first_ttl} of the {rtype} record of "
                    f"{values.show(host)} at {first_path}; the records of one host and type "
                    "are served as one set with one TTL: give them the same TTL",
                )
                continue
            seen[identity] = rpath
            there.setdefault(rtype, rpath)
            result.append(CheckedRecord(rtype, host, row["value"], row["ttl"]))
        return result

    def record_value(self, row: dict[str, Any], path: str, domain: str) -> Rr | None:
        """Checks a record's value and stores its form in ``row``; returns the record as
        the zone file will hold it, or None after recording the problem."""
        if len(row["host"]) + 1 + len(domain) > values.MAX_DOMAIN and row["host"] != "@":
            self.bad(
                f"{path}.host",
                f"{values.show(row['host'])} makes a name longer than {values.MAX_DOMAIN} "
                "characters",
            )
            return None
        try:
            row["value"], canonical = values.record_value(
                row["type"], row["host"], row["value"], domain
            )
        except ValueError as exc:
            self.bad(f"{path}.value", str(exc))
            return None
        return canonical
