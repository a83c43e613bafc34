"""The entries of an inventory document as pydantic models derived from the tables'
``*Base`` families.

A field of an entry is the column of the same meaning: its type (the vocabularies of
``models.types`` included), its length and its bounds come from the ``*Base`` class,
so the document is held to exactly what the table declares. What the document adds
is said here: the key it uses (``account`` for ``account_id``), whether it may be left
out, how it is written (a decimal string, an ISO 8601 time) and the checks of
``values``. Entries forbid unknown keys and coerce nothing (``strict``): ``"1"`` is
not a rank and ``1`` is not a name.

Each level of the document (an instance, one of its domains, one of their records) is
validated on its own, so that one bad record does not hide the problems of its
siblings; ``problems`` turns pydantic's errors into the refusals of the import, each
with its path in the file and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, get_args

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from sqlmodel import SQLModel

from dns_lifecycle.admin.inventory import values
from models.account import AccountBase
from models.cluster import ClusterBase
from models.domain import DomainBase
from models.domain_release import DomainReleaseBase
from models.edition import EditionBase
from models.instance import InstanceBase
from models.record import RecordBase

__all__ = [
    "AccountEntry",
    "ClusterEntry",
    "DomainEntry",
    "DomainReleaseEntry",
    "EditionEntry",
    "InstanceEntry",
    "RecordEntry",
    "columns_of",
    "fields_of",
    "problems",
    "validate_entry",
]

# The columns of each derived entry model, by document key.
_COLUMNS: dict[type[BaseModel], dict[str, str]] = {}

_CONFIG = ConfigDict(extra="forbid", strict=True, validate_by_alias=True, validate_by_name=False)


def _derive(
    name: str,
    base: type[SQLModel],
    columns: dict[str, str],
    *,
    optional: Iterable[str] = (),
    checks: dict[str, tuple[Any, ...]] | None = None,
    types: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> type[BaseModel]:
    """An entry model whose fields are the columns of ``base``.

    ``columns`` maps each key of the document, in the order the document shows them,
    to its column; keys in ``optional`` may be left out (``None`` then, and absent from
    ``model_fields_set``). ``checks`` adds validators to a key, ``types`` replaces the
    column's type where the document writes it otherwise (a list of checked items),
    ``extra`` adds keys that are not columns, with their type; they are optional.
    """
    checks = checks or {}
    types = types or {}
    fields: dict[str, Any] = {}
    for key, column in columns.items():
        info = base.model_fields[column]
        constraints = [m for m in info.metadata if isinstance(m, annotated_types.BaseMetadata)]
        parts = (types.get(key, info.annotation), *constraints, *checks.get(key, ()))
        annotation = Annotated[parts] if len(parts) > 1 else parts[0]
        default = None if key in optional else ...
        fields[column] = (annotation, Field(default, alias=key))
    for key, annotation in (extra or {}).items():
        fields[key] = (annotation, Field(None, alias=key))
    model = create_model(name, __config__=_CONFIG, **fields)
    _COLUMNS[model] = dict(columns)
    return model


# AfterValidator: a check on a value of the column's type (the length already held to
# the column's). BeforeValidator: how the document writes a value that JSON has no type
# for (a decimal string, an ISO 8601 time) or writes loosely (any case), turned into
# the column's type.
_NAMES = list[Annotated[str, AfterValidator(values.nameserver)]]

EditionEntry = _derive(
    "EditionEntry",
    EditionBase,
    {
        "code": "code",
        "rank": "rank",
        "monthly_price": "monthly_price",
        "yearly_price": "yearly_price",
    },
    checks={
        "code": (AfterValidator(values.ident),),
        "monthly_price": (BeforeValidator(values.money),),
        "yearly_price": (BeforeValidator(values.money),),
    },
)


def _listed(names: list[str]) -> list[str]:
    if not names:
        raise ValueError("is empty; list the name servers")
    return values.unique(names)


# A cluster entry is the table's columns as they are; a column added to ClusterBase is
# one more line in ``columns`` (and in ``optional`` when the document may leave it out).
# ``options`` are the backend's, checked by its own model (checking.py); a file may
# still give a powerdns cluster's options at the top level, as exports did before
# options were one object (``LEGACY_OPTIONS``).
LEGACY_OPTIONS = ("api_url", "server_id", "catalog")
ClusterEntry = _derive(
    "ClusterEntry",
    ClusterBase,
    {
        "code": "code",
        "kind": "kind",
        "nameservers": "nameservers",
        # A live cluster: its backend, its options and where its name servers answer.
        # API keys never go in the inventory (DNSL_CLUSTER_API_KEYS holds them).
        "backend": "backend",
        "options": "options",
        "nameserver_addresses": "nameserver_addresses",
    },
    optional=("backend", "options", "nameserver_addresses"),
    checks={
        "code": (AfterValidator(values.ident),),
        "nameservers": (AfterValidator(_listed),),
    },
    types={
        "nameservers": _NAMES,
        "nameserver_addresses": list[Annotated[str, AfterValidator(values.nameserver_address)]],
    },
    extra={key: Any for key in LEGACY_OPTIONS},
)

AccountEntry = _derive(
    "AccountEntry",
    AccountBase,
    {
        "id": "id",
        "name": "name",
        "email": "email",
        "phone": "phone",
        "locale": "locale",
        "timezone": "timezone",
        "balance": "balance",
    },
    optional=("balance",),
    checks={
        "id": (AfterValidator(values.ident),),
        "name": (AfterValidator(values.text),),
        "email": (AfterValidator(values.email),),
        "phone": (BeforeValidator(values.phone),),
        "timezone": (AfterValidator(values.time_zone),),
        "balance": (BeforeValidator(values.money),),
    },
)

InstanceEntry = _derive(
    "InstanceEntry",
    InstanceBase,
    {
        "id": "id",
        "account": "account_id",
        "edition": "edition_code",
        "billing_cycle": "billing_cycle",
        "expires_at": "expires_at",
        "auto_renew": "auto_renew",
        "state": "state",
        "cluster": "cluster_code",
        "anchor_day": "anchor_day",
        "anchor_time": "anchor_time",
        "released_at": "released_at",
    },
    optional=("anchor_day", "anchor_time", "released_at"),
    checks={
        "anchor_time": (BeforeValidator(values.time_of_day),),
        "id": (AfterValidator(values.ident),),
        "account": (AfterValidator(values.ident),),
        "edition": (AfterValidator(values.ident),),
        "cluster": (AfterValidator(values.ident),),
        "expires_at": (BeforeValidator(values.moment),),
        "released_at": (BeforeValidator(values.moment),),
    },
    extra={"domains": list[Any]},
)

DomainEntry = _derive(
    "DomainEntry",
    DomainBase,
    {
        "name": "name",
        "registrar": "registrar",
        "epp_statuses": "epp_statuses",
        "nameservers": "nameservers",
    },
    optional=("epp_statuses", "nameservers"),
    checks={
        "name": (BeforeValidator(values.domain),),
        "registrar": (AfterValidator(values.registrar),),
        "epp_statuses": (AfterValidator(values.unique),),
        "nameservers": (AfterValidator(values.unique),),
    },
    types={
        "epp_statuses": list[Annotated[str, BeforeValidator(values.epp_status)]],
        "nameservers": _NAMES,
    },
    # "release" is where an export shows a domain's release stage: read back, not stored.
    extra={"records": list[Any], "release": dict[str, Any]},
)

# A domain's release stage as an export writes it, so that a release under way
# survives export and import.
_RELEASE_MOMENTS = ("verified_at", "delegated_at", "drain_until", "deleted_at", "updated_at")
# Every column but the keys the import supplies (the domain's id and instance); only the
# stage and the time it was recorded are always there.
_RELEASE_KEYS = tuple(
    c for c in DomainReleaseBase.model_fields if c not in ("domain_id", "instance_id")
)
DomainReleaseEntry = _derive(
    "DomainReleaseEntry",
    DomainReleaseBase,
    {key: key for key in _RELEASE_KEYS},
    optional=tuple(k for k in _RELEASE_KEYS if k not in ("stage", "updated_at")),
    checks={key: (BeforeValidator(values.optional_moment),) for key in _RELEASE_MOMENTS},
)

RecordEntry = _derive(
    "RecordEntry",
    RecordBase,
    {"type": "type", "host": "host", "value": "value", "ttl": "ttl"},
    checks={
        "type": (BeforeValidator(values.record_type),),
        "host": (AfterValidator(values.host),),
        "value": (AfterValidator(values.text),),
    },
    extra={"cluster": str},
)


def fields_of(model: type[BaseModel]) -> list[str]:
    """The keys an entry may have, in the document's order."""
    return [info.alias or name for name, info in model.model_fields.items()]


def columns_of(model: type[BaseModel]) -> dict[str, tuple[str, bool]]:
    """Each key of an entry that is a column: its column and whether it is required."""
    return {
        key: (column, model.model_fields[column].is_required())
        for key, column in _COLUMNS[model].items()
    }


def validate_entry(
    model: type[BaseModel], raw: Any, path: str, errors: list[tuple[str, str]]
) -> dict[str, Any] | None:
    """The entry's column values (keys given only), or None after adding its problems
    to ``errors``. Keys that are not columns (``domains``) are left to the caller."""
    try:
        entry = model.model_validate(raw)
    except ValidationError as exc:
        errors.extend(problems(model, exc, path))
        return None
    return entry.model_dump(exclude_unset=True)


def problems(model: type[BaseModel], exc: ValidationError, path: str) -> list[tuple[str, str]]:
    """Each error of ``exc`` as ``(path, message)``, the message saying what to do."""
    result = []
    for error in exc.errors(include_url=False):
        where = path
        for step in error["loc"]:
            where = f"{where}[{step}]" if isinstance(step, int) else key_path(where, step)
        result.append((where, _message(model, error)))
    return result


def key_path(path: str, key: Any) -> str:
    """The path of ``key`` inside the object at ``path``: ``a.b``, or ``a['odd key']``."""
    text = key if isinstance(key, str) else str(key)
    if text.isidentifier() and text.isascii() and len(text) <= 60:
        return f"{path}.{text}" if path else text
    return f"{path}[{values.show(text)}]"


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _message(model: type[BaseModel], error: Any) -> str:
    kind = error["type"]
    given = values.show(error["input"])
    ctx = error.get("ctx") or {}
    info = _field(model, error["loc"][0]) if error["loc"] else None
    if kind in ("value_error", "assertion_error"):
        return str(ctx["error"])
    if kind == "missing":
        return "missing; this field is required"
    if kind == "extra_forbidden":
        return f"unknown field; the fields of this entry are {', '.join(fields_of(model))}"
    if kind == "string_type":
        return f"expected a string, got {given}"
    if kind == "string_too_long":
        return f"{given} is longer than {ctx['max_length']} characters"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {given}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        metadata = info.metadata if info is not None else []
        low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
        high = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
        return f"{given} is out of range ({low} to {high})"
    if kind == "bool_type":
        return f"expected true or false, got {given}"
    if kind == "list_type":
        return f"expected an array, got {given}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected an object, got {given}"
    if kind == "literal_error":
        choices = get_args(info.annotation) if info is not None else ()
        listed = ", ".join(repr(c) for c in choices) or ctx.get("expected", "")
        return f"{given} is not one of {listed}"
    return f"{given} is not valid here ({error['msg']})"
