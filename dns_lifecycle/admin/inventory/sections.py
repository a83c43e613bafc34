"""The walk of an inventory document: its editions, clusters and accounts.

``_Sections`` holds the walk's state (what is declared, what is stored, the problems
found with their paths) and checks the sections before the instances; ``walk._Walk``
adds the instances, their domains and records.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from dns_lifecycle.admin.inventory import values
from dns_lifecycle.admin.inventory.entries import (
    LEGACY_OPTIONS,
    AccountEntry,
    ClusterEntry,
    EditionEntry,
    fields_of,
    key_path,
    validate_entry,
)
from dns_lifecycle.admin.inventory.stored import (
    StoredState,
    _Declared,
    _Rung,
    anchor_misfit,
    anchor_time_misfit,
)
from dns_lifecycle.channels.clusters import BACKENDS as CLUSTER_BACKENDS
from models.cluster import ClusterBase

# How money is added to an account, for the refusals that point to it.
TOP_UP_COMMAND = "dns-lifecycle top-up ACCOUNT --amount X --request-key K"


class _Sections:
    """The walk's state, and its checks of the editions, clusters and accounts, in file
    order, each problem recorded with its path."""

    def __init__(self, declared: _Declared, stored: StoredState, now: datetime, grace_days: int):
        self.declared = declared
        self.stored = stored
        # The moment of the import: what has already happened, and what has not.
        self.now = now
        self.grace_days = grace_days
        self.errors: list[tuple[str, str]] = []
        # The free cluster of the state after import, if there will be exactly one.
        self.free_cluster = self._final_free_cluster()

    def bad(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def _final_free_cluster(self) -> str | None:
        free = [c for c, kind in self.declared.clusters.items() if kind == "free"]
        free += self._stored_free()
        return free[0] if len(free) == 1 else None

    def _stored_free(self) -> list[str]:
        return [
            c
            for c, kind in self.stored.cluster_kinds.items()
            if kind == "free" and c not in self.declared.clusters
        ]

    def array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.bad(path, f"expected an array, got {values.show(value)}")
            return []
        return value

    def unique(self, seen: dict[Any, str], key: Any, path: str, what: str) -> bool:
        """Whether ``key`` is new in the file; if not, the problem is recorded."""
        if key in seen:
            self.bad(path, f"{values.show(key)} is also the {what} of {seen[key]}")
            return False
        seen[key] = path
        return True

    def known(self, value: str, path: str, what: str, declared: Iterable[str], stored: Any) -> bool:
        if value not in declared and value not in stored:
            self.bad(
                path, f"unknown {what} {values.show(value)}: not in this file nor in the database"
            )
            return False
        return True

    # -- sections --

    def editions(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen_codes: dict[str, str] = {}
        seen_ranks: dict[int, str] = {}
        for i, raw in enumerate(self.array(section, "editions")):
            path = f"editions[{i}]"
            row = validate_entry(EditionEntry, raw, path, self.errors)
            if row is None:
                continue
            before = len(self.errors)
            self.unique(seen_codes, row["code"], f"{path}.code", "code")
            rank = row["rank"]
            holder = next(
                (
                    code
                    for code, r in self.stored.edition_ranks.items()
                    if r == rank and code not in self.declared.editions
                ),
                None,
            )
            if rank in seen_ranks:
                self.bad(f"{path}.rank", f"{rank} is also the rank of {seen_ranks[rank]}")
            elif holder is not None:
                self.bad(
                    f"{path}.rank",
                    f"{rank} is already the rank of the stored edition {values.show(holder)}; "
                    "ranks are unique",
                )
            else:
                seen_ranks[rank] = path
            if len(self.errors) == before:
                rows.append(row)
        self._prices_rise_with_rank(rows, seen_ranks)
        return rows

    def _prices_rise_with_rank(self, rows: list[dict[str, Any]], paths: dict[int, str]) -> None:
        """Refuse a file edition whose monthly or yearly price falls as rank rises, next
        to the editions of the file and the stored ones it leaves as they are: an upgrade
        goes up in rank, and never pays back."""
        declared = {row["code"] for row in rows}
        ladder = [
            _Rung(r["rank"], r["code"], (r["monthly_price"], r["yearly_price"]), paths[r["rank"]])
            for r in rows
        ]
        ladder += [
            _Rung(rank, code, self.stored.edition_prices[code], None)
            for code, rank in self.stored.edition_ranks.items()
            if code not in declared and code not in self.declared.editions
        ]
        ladder.sort(key=lambda rung: rung.rank)
        for lower, higher in itertools.pairwise(ladder):
            blamed, other = (higher, lower) if higher.path is not None else (lower, higher)
            if blamed.path is None:
                continue  # both stored: not this file's doing
            for index, name in enumerate(("monthly_price", "yearly_price")):
                if higher.prices[index] < lower.prices[index]:
                    where = "" if other.path is not None else "stored "
                    self.bad(
                        f"{blamed.path}.{name}",
                        f"{values.show(higher.code)} (rank {higher.rank}) costs "
                        f"{higher.prices[index]}, less than the {lower.prices[index]} of the "
                        f"{where}edition {values.show(lower.code)} (rank {lower.rank}) below "
                        "it: prices may not fall as rank rises; raise this price or change "
                        "the ranks",
                    )

    def clusters(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        first_free: str | None = None
        stored_free = self._stored_free()
        for i, raw in enumerate(self.array(section, "clusters")):
            path = f"clusters[{i}]"
            row = validate_entry(ClusterEntry, raw, path, self.errors)
            if row is None:
                continue
            before = len(self.errors)
            code = row["code"]
            self.unique(seen, code, f"{path}.code", "code")
            self.cluster_backend(row, path)
            if row["kind"] == "free":
                if stored_free:
                    self.bad(
                        f"{path}.kind",
                        f"the stored cluster {values.show(stored_free[0])} is already the free "
                        "cluster; there is one free cluster",
                    )
                elif first_free is not None:
                    self.bad(
                        f"{path}.kind",
                        f"{first_free} is already the free cluster; there is one free cluster",
                    )
                else:
                    first_free = path
                if users := self.stored.users_of_freed.get(code, 0):
                    self.bad(
                        f"{path}.kind",
                        f"the stored cluster {values.show(code)} serves {users} instance(s) "
                        "not in this file; it cannot become the free cluster",
                    )
            if len(self.errors) == before:
                rows.append(row)
        return rows

    def cluster_backend(self, row: dict[str, Any], path: str) -> None:
        """Completes a cluster's row with the defaults of the fields a file may leave
        out, and checks its backend and the backend's options with the backend's own
        model (files written before ``options`` give them at the entry's top level)."""
        for column in ("backend", "nameserver_addresses"):
            if column not in row:
                row[column] = ClusterBase.model_fields[column].get_default(
                    call_default_factory=True
                )
        legacy = {key: row.pop(key) for key in LEGACY_OPTIONS if key in row}
        try:
            CLUSTER_BACKENDS.check(row["backend"])
        except ValueError as exc:
            self.bad(f"{path}.backend", str(exc))
            return
        if legacy and "options" in row:
            self.bad(
                f"{path}.options",
                f"given with {', '.join(legacy)} beside it; put them in options",
            )
            return
        given = {key: value for key, value in legacy.items() if value is not None}
        where = path if legacy else f"{path}.options"
        if not legacy:
            given = row.get("options") or {}
        try:
            options = CLUSTER_BACKENDS.options(row["backend"], given)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                key = ".".join(str(step) for step in error["loc"])
                if error["type"] == "extra_forbidden":
                    message = f"a {row['backend']} cluster takes no {key}; leave it out"
                elif error["type"] == "missing":
                    message = f"missing; a {row['backend']} cluster needs its {key}"
                else:
                    message = error["msg"].removeprefix("Value error, ")
                self.bad(f"{where}.{key}" if key else where, message)
            return
        row["options"] = options.model_dump(mode="json", exclude_none=True)

    def accounts(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        for i, raw in enumerate(self.array(section, "accounts")):
            path = f"accounts[{i}]"
            if isinstance(raw, dict) and "top_up" in raw:
                # A file imported twice would add it twice; a request key adds it once.
                self.bad(
                    f"{path}.top_up",
                    "an import does not add money (the same file imported again would add "
                    f"it again): add it once with `{TOP_UP_COMMAND}`, and leave top_up out",
                )
                raw = {key: value for key, value in raw.items() if key != "top_up"}
            row = validate_entry(AccountEntry, raw, path, self.errors)
            if row is not None and self.unique(seen, row["id"], f"{path}.id", "id"):
                self.new_zone(row, path)
                self.balance(row, path)
                rows.append(row)
        return rows

    def balance(self, row: dict[str, Any], path: str) -> None:
        """Checks an account's balance against the stored balance; leaves in ``row`` only
        a balance to write (none where the stored one stays)."""
        lifecycle = self.stored.lifecycle
        account_id = row["id"]
        stored = lifecycle.balances.get(account_id)
        if stored is None or "balance" not in row:
            return
        if row["balance"] == stored:
            # Nothing to write: a run charging the account meanwhile is not undone.
            del row["balance"]
            return
        moves = []
        if account_id in lifecycle.charges:
            count, paid_at = lifecycle.charges[account_id]
            latest = f" (the latest paid {_utc(paid_at)})" if paid_at is not None else ""
            moves.append(f"{count} paid order{'s' if count != 1 else ''} charged{latest}")
        if account_id in lifecycle.top_ups:
            count, added_at = lifecycle.top_ups[account_id]
            latest = f" (the latest {_utc(added_at)})" if added_at is not None else ""
            moves.append(f"{count} top-up{'s' if count != 1 else ''} added{latest}")
        if moves:
            self.bad(
                f"{path}.balance",
                f"{_amount(row['balance'])} is not the stored balance {_amount(stored)}, "
                f"which {' and '.join(moves)}; a file cannot show that it is newer than "
                "those, so it does not set the balance of an account the lifecycle has "
                "charged or topped up: give the stored balance or leave balance out, and add "
                f"money with `{TOP_UP_COMMAND}`",
            )

    def new_zone(self, row: dict[str, Any], path: str) -> None:
        """An account moved to another time zone: its stored instances that the file does
        not list must still fit their anchor days there (those it lists are checked with
        the file's values)."""
        zone = row["timezone"]
        if self.stored.account_zones.get(row["id"], zone) == zone:
            return
        for instance_id, expires_at, anchor, at in self.stored.instances_of.get(row["id"], []):
            if instance_id in self.declared.instances:
                continue
            if (day := anchor_misfit(expires_at, anchor, zone)) is not None:
                self.bad(
                    f"{path}.timezone",
                    f"{values.show(zone)} does not fit the stored instance "
                    f"{values.show(instance_id)}: its anchor_day {anchor} does not fit its "
                    f"expires_at (day {day} in {zone}); list that instance in this file with "
                    "an anchor_day and expires_at that fit the new zone, or keep the zone",
                )
            elif (shown := anchor_time_misfit(expires_at, at, zone)) is not None:
                assert at is not None  # only a stored anchor time can misfit
                self.bad(
                    f"{path}.timezone",
                    f"{values.show(zone)} does not fit the stored instance "
                    f"{values.show(instance_id)}: its anchor_time {at.isoformat()} does not "
                    f"fit its expires_at ({shown} in {zone}); list that instance in this file "
                    "with an expires_at that fits the new zone, or keep the zone",
                )

    def passed(self, raw: Any, path: str, since: int) -> dict[str, Any]:
        """The keys of a refused entry with no problem recorded since ``since``, with
        their values as the document gives them."""
        if not isinstance(raw, dict):
            return {}
        failed = [p for p, _ in self.errors[since:]]
        return {
            key: value
            for key, value in raw.items()
            if isinstance(key, str) and not any(_within(p, key_path(path, key)) for p in failed)
        }

    def in_field_order(self, model: Any, path: str, since: int) -> None:
        """Sorts the problems recorded since ``since`` by the entry's field order."""
        order = {key_path(path, key): n for n, key in enumerate(fields_of(model))}

        def position(error: tuple[str, str]) -> int:
            where = error[0]
            return next((n for p, n in order.items() if _within(where, p)), len(order))

        self.errors[since:] = sorted(self.errors[since:], key=position)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _amount(amount: Decimal) -> str:
    return repr(str(amount.quantize(Decimal("0.01"))))


def _shown(value: Any) -> str:
    return _utc(value) if isinstance(value, datetime) else values.show(value)


def _within(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or inside it."""
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))
