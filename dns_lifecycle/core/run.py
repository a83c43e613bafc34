"""A run as the code below the flows sees it: its context and its report.

A flow opens the run (``flows.common.open_run``) and hands its ``RunContext`` down; the
engines below the flows (the release) take it and fill in a ``StepReport``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from dns_lifecycle.core.db import Database
from dns_lifecycle.core.settings import Settings

if TYPE_CHECKING:
    from dns_lifecycle.lifecycle.sharding import Shard

PLAN_CAP = 200  # rows of a plan kept in a report; `dns-lifecycle export` has the rest
FAILURES_CAP = 50


# A real run may be started a little ahead of its moment (clocks differ); beyond this
# it would act now on what is only due later.
FUTURE_SLACK = timedelta(minutes=5)


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunContext:
    settings: Settings
    db: Database
    as_of: datetime
    dry_run: bool
    batch_size: int
    clock: Callable[[], datetime]
    shard: Shard | None = None

    def acting_as_of(self, report: Tally | None = None) -> datetime:
        """The moment an irreversible act (a charge, an expiry, a release) is decided at:
        ``as_of``, but never after the clock in a real run. A real run may start up to
        :data:`FUTURE_SLACK` ahead of the clock; what falls due in between is left to the
        next run (``report`` says so). A dry run plans at ``as_of``, whatever it is."""
        if self.dry_run:
            return self.as_of
        now = self.clock()
        if self.as_of <= now:
            return self.as_of
        if report is not None:
            report.note(
                f"acted as of {now.isoformat(timespec='seconds')}, the clock: as_of "
                f"{self.as_of.isoformat(timespec='seconds')} has not come yet, so what falls "
                "due by then is left to the next run"
            )
        return now


class Tally(BaseModel):
    """Counts per action and channel, and the failures worth showing a person."""

    counts: dict[str, int] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # worth reading, not failures

    def add(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n

    def fail(self, message: str) -> None:
        if len(self.failures) < FAILURES_CAP:
            self.failures.append(message)

    def note(self, message: str) -> None:
        if len(self.notes) < FAILURES_CAP:
            self.notes.append(message)

    def absorb(self, other: Tally) -> None:
        for name, n in other.counts.items():
            self.add(name, n)
        for message in other.failures:
            self.fail(message)
        for message in other.notes:
            self.note(message)


class StepReport(Tally):
    """What one step did (or, in a dry run, would do)."""

    step: str
    as_of: datetime
    dry_run: bool
    plan: list[dict[str, Any]] = Field(default_factory=list)
    plan_total: int = 0
    duration_seconds: float = 0.0

    def planned(self, rows: list[dict[str, Any]]) -> None:
        self.plan_total += len(rows)
        room = PLAN_CAP - len(self.plan)
        if room > 0:
            self.plan.extend(rows[:room])

    def merge(self, other: StepReport) -> None:
        """Take in the counts, failures and plan of a part of this step."""
        self.absorb(other)
        total = self.plan_total + other.plan_total
        self.planned(other.plan)
        self.plan_total = total
