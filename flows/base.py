"""How every flow of the project is declared: ``@lifecycle_flow(name=...)``.

On top of Prefect's ``@flow`` it gives the Custom run form its help text and turns the
project's expected failures into a Failed state with one line, instead of a traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, get_args, get_type_hints

from prefect import Flow, flow, get_client, get_run_logger
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Failed
from pydantic.fields import FieldInfo

from dns_lifecycle.core.errors import LifecycleError
from flows.common import settings_of_run

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


class _NoTracebackForExpectedFailures(logging.Filter):
    """Prefect's engine logs a Failed run's exception with its traceback once the run
    has ended ("Engine execution exited with unexpected exception"). For the project's
    expected failures that line adds nothing to the one already logged: drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], LifecycleError))


class _NoTracebackInTaskFailures(logging.Filter):
    """A task that fails with one of the project's expected errors is logged by
    Prefect with its traceback ("Task run failed with exception"). Its message says what
    to do: keep the line, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], LifecycleError):
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("prefect.flow_runs").addFilter(_NoTracebackForExpectedFailures())
logging.getLogger("prefect.task_runs").addFilter(_NoTracebackInTaskFailures())


# What started a run, as its tags say. Prefect's scheduler tags each run it creates
# "auto-scheduled"; a deployment's own tags go on every run of it, however started, so
# they cannot say this. Each top-level run adds one of these at its start.
SCHEDULED, MANUAL = "scheduled", "manual"
AUTO_SCHEDULED = "auto-scheduled"


def started_by(tags: list[str]) -> str:
    """The tag that says what started a top-level run with ``tags``: the scheduler, or a
    person (a Custom run, `prefect deployment run`, `dns-lifecycle run`)."""
    return SCHEDULED if AUTO_SCHEDULED in tags else MANUAL


def _tag_what_started_the_run() -> None:
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or run.parent_task_run_id is not None:
        return  # a subflow or a shard run: the run that started it is tagged
    tag = started_by(list(run.tags))
    if tag in run.tags:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, tags=[*run.tags, tag])
    except Exception as exc:  # a missing tag is no reason to stop the lifecycle
        get_run_logger().warning(f"could not tag this run {tag!r}: {exc}")


def report_of(state: State[Any]) -> Any:
    """What a finished flow run reported: its result, or for a run that failed on
    purpose the report its error carries (None when it did nothing)."""
    done = state.result(raise_on_failure=False)
    return getattr(done, "report", None) if isinstance(done, BaseException) else done


def lifecycle_flow(name: str) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """``@flow(name=name)`` with form help and one-line failures (see the module)."""

    def decorate(fn: Callable[P, R]) -> Flow[P, R]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            _tag_what_started_the_run()
            try:
                # Bad settings fail the run here, before it does anything.
                with settings_of_run():
                    return fn(*args, **kwargs)
            except LifecycleError as exc:
                # Expected: a refusal, a step over its failure threshold, a database
                # that is not ready, a bad setting. Its message says what to do; a traceback would
                # only bury it. The error (with any report of what was done) is the
                # state's data: see report_of.
                message = " ".join(str(exc).split())
                get_run_logger().error(message)
                return Failed(message=message, data=exc)

        # Prefect reads the signature of what it wraps to validate parameters; resolve
        # the annotations here, in the flow's own module, not in this one's.
        run.__annotations__ = get_type_hints(fn, include_extras=True)
        run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
        return flow(name=name)(form_help(run))

    return decorate


def form_help(fn: F) -> F:
    """Give ``fn`` a Google-style ``Args:`` section built from its parameters' field
    descriptions.

    Prefect builds a deployment's form (its ``parameter_openapi_schema``) from the flow's
    signature for types and constraints, but takes each parameter's help text only from
    the docstring's ``Args:`` section, not from ``Field(description=...)``. The
    descriptions stay written once, beside each parameter's type; this copies them
    where Prefect reads them.
    """
    lines = []
    for name, hint in get_type_hints(fn, include_extras=True).items():
        if name == "return":
            continue
        description = next(
            (m.description for m in get_args(hint)[1:] if isinstance(m, FieldInfo)), None
        )
        if description is None:
            raise TypeError(f"flow parameter {fn.__name__}.{name} has no description")
        lines.append(f"    {name}: {description}")
    doc = inspect.cleandoc(fn.__doc__ or "")
    fn.__doc__ = doc + "\n\nArgs:\n" + "\n".join(lines) + "\n"
    return fn
