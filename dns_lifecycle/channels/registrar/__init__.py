"""Registrar gateways: read a domain's update lock and point it at other name servers.

One Protocol, three backends (the registry ``BACKENDS``), chosen by ``registrar_backend``:

- ``database`` (:mod:`.database`, the embedded default): the delegation lives in the
  project's own database; the lock is read from the domain's stored EPP statuses;
- ``http`` (:mod:`.http`): a registrar's plain HTTP API (``GET``/``PUT`` under
  ``{registrar_url}/domains/{name}``);
- ``aliyun`` (:mod:`.aliyun`): the provider's Domain API (version 2018-01-29) through
  its official SDK: the lock from QueryDomainByDomainName, the switch as a task of
  SaveBatchTaskForModifyingDomainDns, followed with QueryTaskDetailList; a switch asked
  for again after a lost answer first looks for its task with QueryTaskList.

A switch is a task: :meth:`Registrar.start_switch` returns an opaque id that the caller
records before it asks :meth:`Registrar.switch_state` how the change stands. Backends
that apply a change at once answer ``done`` straight away.

No backend takes the caller's database session, and none may be called inside the
caller's transaction: the database backend writes in its own short transaction. Every
backend raises, for a change that did not happen (all in ``core/errors.py``):

    DomainLocked(NeedsPerson)                  an update lock forbids the change: a person
                                               unlocks it or sets the servers by hand
    RegistrarUnavailable(TransientDeliveryError)
                                               no answer, a timeout, a 5xx, throttling:
                                               the next run tries again
    RegistrarRefused(PermanentDeliveryError)   any other refusal (unknown domain, bad
                                               credentials, bad request): trying again
                                               will not help until someone fixes the cause
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dns_lifecycle.channels.registry import Backend, Registry
from dns_lifecycle.core.errors import RegistrarRefused

if TYPE_CHECKING:
    from dns_lifecycle.core.db import Database
    from dns_lifecycle.core.settings import Settings

__all__ = ["BACKENDS", "Registrar", "SwitchState", "registrar_for"]


@dataclass(frozen=True)
class SwitchState:
    """Where a name-server change stands at the registrar."""

    done: bool  # the registrar has applied the change
    failed_reason: str | None = None  # set when the registrar gave up, in its own words


class Registrar(Protocol):
    # Whether a switch reaches another system, which would see it asked for twice if a
    # crash came before it was recorded: the release then records each switch alone, and
    # asks for the lock just before it. A switch that does not (the embedded registrar)
    # checks the lock and makes the change in one transaction of this database, done
    # when ``start_switch`` returns: the release neither asks for the lock first nor polls.
    external: bool

    def lock_status(self, domain: str) -> str | None:
        """The live update lock (RFC spelling, e.g. ``clientUpdateProhibited``) or None.

        Raises ``RegistrarUnavailable`` (retry later) or ``RegistrarRefused`` (unknown
        domain, bad credentials...)."""
        ...

    def start_switch(
        self, domain: str, nameservers: list[str], *, asked_since: datetime | None = None
    ) -> str:
        """Ask for ``domain``'s name servers to become ``nameservers``; returns an opaque
        task id to record before polling. Safe to call again for the same change.

        ``asked_since``: the change may have been asked for since then without its answer
        arriving (a timeout, a crash). A registrar that queues tasks first looks for the
        task that request created, and answers its id instead of starting another.

        Raises ``DomainLocked``, ``RegistrarRefused`` or ``RegistrarUnavailable``."""
        ...

    def switch_state(self, task_id: str) -> SwitchState:
        """Where the change that ``task_id`` names stands.

        Raises ``RegistrarRefused`` or ``RegistrarUnavailable``."""
        ...

    def close(self) -> None:
        """Release connections; the registrar is not used afterwards."""
        ...


def done_at_once(task_id: str, prefix: str, backend: str) -> SwitchState:
    """The state of a change that ``backend`` applied when asked: done, provided the id
    is one it handed out (its ids start with ``prefix``)."""
    if not task_id.startswith(prefix):
        raise RegistrarRefused(
            f"{task_id!r} is not a change of the {backend}: a change started at another "
            "registrar backend is followed with that backend"
        )
    return SwitchState(done=True)


# name -> Backend: ``factory(settings, database)`` builds it. No dry-run twin: a dry run
# uses the backend itself, and only reads (the release never starts a switch in one).
BACKENDS: Registry[Callable[[Settings, Database], Registrar]] = Registry(
    "registrar", "DNSL_REGISTRAR_BACKEND"
)
BACKENDS.register("database", Backend("dns_lifecycle.channels.registrar.database:from_settings"))
BACKENDS.register(
    "http", Backend("dns_lifecycle.channels.registrar.http:from_settings", external=True)
)
# Imported when chosen, so that the embedded default never loads the provider's SDK.
BACKENDS.register(
    "aliyun", Backend("dns_lifecycle.channels.registrar.aliyun:from_settings", external=True)
)


def registrar_for(settings: Settings, database: Database) -> Registrar:
    """The backend that ``settings.registrar_backend`` names.

    ``database`` is where the embedded backend keeps delegations (a dry run's sandbox
    keeps its writes inside the rolled-back transaction)."""
    return BACKENDS.factory(settings.registrar_backend)(settings, database)
