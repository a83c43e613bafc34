"""What every flow shares: opening its run, and reading ``as_of``.

A flow is an entry point: it reads the settings once at its start (the settings block,
the environment, the defaults: see dns_lifecycle.core.settings_block), reads the wall
clock once (when no ``as_of`` is given), and hands both down. Nothing below a flow reads
either.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from dns_lifecycle.core.db import Database, check_ready
from dns_lifecycle.core.errors import InputError

# The run's context and report are defined below the flows, where the engines use them
# too; the flows take them from here.
from dns_lifecycle.core.run import FUTURE_SLACK as FUTURE_SLACK
from dns_lifecycle.core.run import PLAN_CAP as PLAN_CAP
from dns_lifecycle.core.run import RunContext as RunContext
from dns_lifecycle.core.run import StepReport as StepReport
from dns_lifecycle.core.run import Tally as Tally
from dns_lifecycle.core.run import wall_clock as wall_clock
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.core.settings_block import LoadedSettings, load_settings, settings_table
from dns_lifecycle.lifecycle.sharding import Shard

T = TypeVar("T")

# The years a run may evaluate: far enough from the ends of the calendar that every
# window around the moment (reminders, grace, periods) is still a date.
AS_OF_YEARS = range(1970, 3000)


def resolve_as_of(value: datetime | date | str | None, clock: Callable[[], datetime]) -> datetime:
    """The moment a run evaluates the lifecycle at, as an aware UTC datetime.

    A bare date means 00:00 UTC of that day; a datetime must carry its offset. A moment
    outside the years 1970-2999 is refused.
    """
    if value is None:
        return clock()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise InputError(
                f"as_of {text!r} is not a date: give YYYY-MM-DD or an ISO 8601 datetime "
                "with an offset, e.g. 2026-12-01T02:00:00+08:00"
            ) from None
    if value.year not in AS_OF_YEARS:
        raise InputError(
            f"as_of {value.isoformat()} is outside the years {AS_OF_YEARS[0]}-"
            f"{AS_OF_YEARS[-1]} a run can evaluate: give a moment in them"
        )
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError(
                f"as_of {value.isoformat()} has no time zone: add an offset such as +08:00 or Z"
            )
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def run_as_of(
    value: datetime | date | str | None, dry_run: bool, clock: Callable[[], datetime]
) -> datetime:
    """The moment of a run (see :func:`resolve_as_of`); a real run refuses a moment more
    than :data:`FUTURE_SLACK` ahead of ``clock``, since it would act now on what is due
    later. A dry run may plan any moment."""
    as_of = resolve_as_of(value, clock)
    now = clock()
    if not dry_run and as_of > now + FUTURE_SLACK:
        raise InputError(
            f"as_of {as_of.isoformat()} is in the future (now {now.isoformat(timespec='seconds')})"
            ": a real run acts only on moments that have come; use a dry run to plan ahead"
        )
    return as_of


def change_as_of(
    value: datetime | date | str | None, change: str, clock: Callable[[], datetime]
) -> datetime:
    """The moment of an on-demand ``change`` that takes effect when it is made (an
    upgrade: it has no dry run): the clock, or a moment given no more than
    :data:`FUTURE_SLACK` from it either way (clocks differ). An earlier moment would
    charge for time already used, or change an instance that has expired since; a
    later one would act now on what is only due later."""
    as_of = resolve_as_of(value, clock)
    now = clock()
    if abs(as_of - now) > FUTURE_SLACK:
        side = "in the past" if as_of < now else "in the future"
        raise InputError(
            f"as_of {as_of.isoformat()} is {side} (now {now.isoformat(timespec='seconds')})"
            f": {change} takes effect now; leave as_of empty"
        )
    return as_of


# The dry run of the daily flow shares one sandbox across its steps, so each step's
# plan starts from what the steps before it would have done.
_SHARED_DRY_RUN: ContextVar[Database | None] = ContextVar("shared_dry_run", default=None)
# A shard of the daily run applies to every step it runs.
_SHARD: ContextVar[Shard | None] = ContextVar("shard", default=None)


# The settings a top-level run read at its start; its steps (subflows) use the same.
_RUN_SETTINGS: ContextVar[Settings | None] = ContextVar("run_settings", default=None)


def run_settings() -> Settings:
    """The settings of the run in progress, or when there is none, the settings now."""
    return _RUN_SETTINGS.get() or load_settings().settings


def publish_settings(loaded: LoadedSettings) -> None:
    """The ``settings`` artifact: every setting's value (secrets masked) and source."""
    from prefect.artifacts import create_table_artifact

    document = f"block {loaded.document!r}" if loaded.document else "no settings block"
    # The UI renders each cell as Markdown, where a mask of asterisks becomes a rule.
    rows = [{k: v.replace("*", "\\*") for k, v in row.items()} for row in settings_table(loaded)]
    create_table_artifact(
        rows,
        key="settings",
        description=f"Settings of this run ({document}; secrets masked)",
    )


@contextmanager
def settings_of_run() -> Iterator[Settings]:
    """The settings of a run, read at its start and published once as its ``settings``
    artifact; inside a run that has them already (a step of the daily run), those."""
    current = _RUN_SETTINGS.get()
    if current is not None:
        yield current
        return
    loaded = load_settings()
    publish_settings(loaded)
    token = _RUN_SETTINGS.set(loaded.settings)
    try:
        yield loaded.settings
    finally:
        _RUN_SETTINGS.reset(token)


@contextmanager
def open_run(
    as_of: datetime | date | str | None,
    dry_run: bool,
    batch_size: int | None,
    settings: Settings | None = None,
) -> Iterator[RunContext]:
    """The context of one run. A dry run gets a sandbox database: the real code runs,
    its channels only count, and everything it wrote is rolled back at the end."""
    settings = settings or run_settings()
    shared = _SHARED_DRY_RUN.get() if dry_run else None
    if shared is None:
        # An unreachable or unmigrated database is one line that says what to do, not
        # a traceback from the first query.
        check_ready(settings)
    db = shared or (Database.sandbox(settings) if dry_run else Database(settings))
    ctx = RunContext(
        settings=settings,
        db=db,
        as_of=run_as_of(as_of, dry_run, wall_clock),
        dry_run=dry_run,
        batch_size=batch_size or settings.batch_size,
        clock=wall_clock,
        shard=_SHARD.get(),
    )
    try:
        yield ctx
    finally:
        if shared is None:
            ctx.db.dispose()


@contextmanager
def sharded(shard: Shard | None) -> Iterator[None]:
    """Let every run opened inside work on ``shard`` only."""
    token = _SHARD.set(shard)
    try:
        yield
    finally:
        _SHARD.reset(token)


@contextmanager
def shared_dry_run(settings: Settings | None = None) -> Iterator[None]:
    """Let every dry run opened inside share one sandbox, rolled back at the end."""
    db = Database.sandbox(settings or run_settings())
    token = _SHARED_DRY_RUN.set(db)
    try:
        yield
    finally:
        _SHARED_DRY_RUN.reset(token)
        db.dispose()


def planned_word(outcome: str, dry_run: bool) -> str:
    """The word a delivery count carries: a dry run sends nothing, so what it would
    send is ``planned`` (``email_planned``), never ``sent``."""
    return "planned" if dry_run and outcome == "sent" else outcome


@contextmanager
def timed(report: StepReport) -> Iterator[StepReport]:
    started = time.perf_counter()
    try:
        yield report
    finally:
        report.duration_seconds = round(time.perf_counter() - started, 3)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
