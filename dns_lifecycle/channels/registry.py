"""The registry of a channel kind's backends (style habit 16): a backend's name mapped
to how it is built, the model of its options, whether it reaches another system, and
what a dry run uses in its place.

Each kind keeps one registry in its package (``email.BACKENDS``, ``sms.BACKENDS``,
``tickets.BACKENDS``, ``registrar.BACKENDS``, ``clusters.BACKENDS``); settings, models,
the inventory and the flows ask it instead of naming a backend. Adding a backend is one
module plus one ``register`` line in its kind's package.

Factories and options models may be given as ``"module:attribute"``: they are imported
when first used, so that a backend's dependencies (a provider's SDK) load only when it
is chosen, and a backend module may import its kind's package (for the message type)
without a cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from dns_lifecycle.core.errors import InputError

__all__ = ["Backend", "NoOptions", "Registry"]

F = TypeVar("F", bound=Callable[..., Any])


class NoOptions(BaseModel):
    """The options of a backend that takes none: any given is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Backend(Generic[F]):
    """One backend of a kind.

    ``factory`` builds it, with the arguments its kind's package documents;
    ``options``: the pydantic model of its per-object options (clusters), validated
    where they are read; ``external``: whether it reaches another system (a call that
    may be seen twice after a crash, worth other processes, never in a dry run);
    ``dry_run``: what a dry run uses instead (its kind's package says how it is called),
    None for the backend itself; ``in_process``: whether what it sends stays in this
    process (the memory backends' outbox), so that no other process may send for it."""

    factory: F | str
    options: type[BaseModel] | str = NoOptions
    external: bool = False
    dry_run: Callable[..., Any] | str | None = None
    in_process: bool = False


def _resolve(target: Any) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Generic[F]):
    """Backend name → ``Backend`` for one channel kind, in the order registered."""

    def __init__(self, kind: str, setting: str) -> None:
        self.kind = kind  # e.g. "email", as errors name it
        self.setting = setting  # where the name is chosen, e.g. DNSL_EMAIL_BACKEND
        self._backends: dict[str, Backend[F]] = {}

    def register(self, name: str, backend: Backend[F]) -> None:
        """Add (or replace) the backend called ``name``."""
        self._backends[name] = backend

    def unregister(self, name: str) -> None:
        """Remove the backend called ``name`` (a backend added for a while)."""
        self._backends.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._backends)

    def literal(self) -> Any:
        """The names as a ``Literal`` type, for a form that offers them as a select."""
        return Literal[self.names()]

    def check(self, name: str) -> str:
        """``name`` when it is a registered backend; else ``ValueError`` saying the
        choices (a pydantic validator)."""
        if name not in self._backends:
            raise ValueError(
                f"{name!r} names no {self.kind} backend: use one of {', '.join(self.names())}"
            )
        return name

    def get(self, name: str) -> Backend[F]:
        """The backend called ``name``; ``InputError`` naming the choices otherwise."""
        try:
            return self._backends[name]
        except KeyError:
            raise InputError(
                f"{self.setting} names the unknown {self.kind} backend {name!r}: use one "
                f"of {', '.join(self.names())}"
            ) from None

    def factory(self, name: str) -> F:
        return _resolve(self.get(name).factory)

    def dry_run(self, name: str) -> Callable[..., Any] | None:
        return _resolve(self.get(name).dry_run)

    def external(self, name: str) -> bool:
        return name in self._backends and self._backends[name].external

    def in_process(self, name: str) -> bool:
        return name in self._backends and self._backends[name].in_process

    def options_model(self, name: str) -> type[BaseModel]:
        return _resolve(self.get(name).options)

    def options(self, name: str, raw: Mapping[str, Any] | None) -> BaseModel:
        """``raw`` validated by the options model of the backend called ``name``
        (pydantic's ``ValidationError`` for bad options)."""
        return self.options_model(name).model_validate(dict(raw or {}))


def first_error(exc: ValidationError) -> str:
    """The first complaint of a validation, as ``field: message``."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
