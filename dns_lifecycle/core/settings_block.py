"""The settings of a run, from a Prefect block, the environment and the defaults.

Operators keep the settings in one document of the ``dns-lifecycle-settings`` block type,
edited in the Prefect UI like a settings page. A run reads them at its start, in this
order, the first that gives a field winning:

1. an environment variable of the process (``DNSL_*``, ``DATABASE_URL``): the local
   path, and an override of one field on one worker;
2. the block document named by ``DNSL_SETTINGS_BLOCK`` (``default`` if unset), when a
   Prefect API is there and the document exists;
3. the default of :class:`~dns_lifecycle.core.settings.Settings`.

Every value, wherever it came from, is checked by ``Settings`` itself: a bad value
saved in the block fails the run at its start with one line naming the document and
the field. A field left empty in the block falls through to the default.

The SMTP fields are the block's own rather than a reference to prefect-email's
``EmailServerCredentials``: that block has no timeout or connection limit, names the
security modes differently, and would be a second document to keep and rotate apart.
"""

# Over 500 lines on purpose: the block's groups mirror Settings field by field, and
# loading, showing and saving read those same groups; apart, a new setting would be added
# in several places.
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from prefect.blocks.core import Block
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.json_schema import SkipJsonSchema
from pydantic_settings import EnvSettingsSource, SettingsError

from dns_lifecycle.core.errors import LifecycleError
from dns_lifecycle.core.secrets import MASK
from dns_lifecycle.core.settings import (
    AliyunProtocol,
    EmailBackend,
    RegistrarBackend,
    Settings,
    SmsBackend,
    SmtpSecurity,
    TicketSink,
)

BLOCK_TYPE_SLUG = "dns-lifecycle-settings"
BLOCK_ENV = "DNSL_SETTINGS_BLOCK"
DEFAULT_DOCUMENT = "default"


class SettingsInvalid(LifecycleError):
    """A setting whose value cannot be used: the run does nothing."""


# A field left empty in the block: not set there. Left out of the form's schema, so the
# form shows each field as its own type, not as a choice between it and null.
Unset: TypeAlias = SkipJsonSchema[None]


def _field(title: str, description: str) -> Any:
    # Empty (None) in the block means "not set here": the environment or the default.
    return Field(default=None, title=title, description=description)


def _in_declared_order(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # The UI orders a form's fields by their `position`; Prefect adds it to a block's own
    # fields only, and a JSON column may not keep the properties' order.
    for position, name in enumerate(model.model_fields):
        if name in schema.get("properties", {}):
            schema["properties"][name]["position"] = position


class _Group(BaseModel):
    model_config = ConfigDict(json_schema_extra=_in_declared_order)


class DatabaseGroup(_Group):
    """Where the project keeps its state."""

    model_config = ConfigDict(title="Database")
    database_url: SecretStr | Unset = _field(
        "Database URL",
        "SQLAlchemy URL of the project's database, e.g. `postgresql://USER:PASSWORD@HOST/DB` "
        "(a secret: it carries the password); empty: SQLite under var/.",
    )


class FilesGroup(_Group):
    """Folders on the worker."""

    model_config = ConfigDict(title="Files")
    outbox_dir: str | Unset = _field(
        "Outbox folder",
        "Where the file backends write .eml files and JSON lines of SMS.",
    )
    templates_dir: str | Unset = _field(
        "Email templates folder",
        "Folder of the email templates; empty: the templates shipped with the project.",
    )


class RulesGroup(_Group):
    """The numbers the business rules leave open."""

    model_config = ConfigDict(title="Lifecycle rules")
    reminder_offsets_days: list[int] | Unset = _field(
        "Reminder days before expiry",
        "Days before expiry a reminder is sent, distinct whole days >= 1; default 30, 7, 3, 1.",
    )
    renewal_lead_days: int | Unset = _field(
        "Auto-renewal lead (days)",
        "Days before expiry an auto-renewing instance is renewed (1-60); default 7.",
    )
    grace_days: int | Unset = _field(
        "Grace period (days)",
        "Days an expired instance keeps resolving before its release (1-60); default 7.",
    )
    batch_size: int | Unset = _field(
        "Batch size",
        "Instances handled per batch (1-50,000); default 1,000.",
    )
    failure_threshold: float | Unset = _field(
        "Failure threshold",
        "A delivery run ends Failed when more than this share of its deliveries failed "
        "(0-1); default 0.05.",
    )
    operator_timezone: str | Unset = _field(
        "Operator's time zone",
        "IANA time zone whose calendar days the fleet outlook counts in; default "
        "Asia/Shanghai, as the daily schedule's.",
    )


class EmailGroup(_Group):
    """How notices go out by email."""

    model_config = ConfigDict(title="Email")
    email_backend: EmailBackend | Unset = _field(
        "Email backend",
        "smtp sends through the server below; file writes .eml files to the outbox; "
        "memory keeps them in the process (tests). Default: file.",
    )
    email_from: str | Unset = _field(
        "Sender", "From address of every notice, e.g. `DNS Hosting <no-reply@example.com>`."
    )
    smtp_host: str | Unset = _field("SMTP server", "Host name or address of the SMTP server.")
    smtp_port: int | Unset = _field("SMTP port", "TCP port of the SMTP server (1-65535); 25.")
    smtp_security: SmtpSecurity | Unset = _field(
        "SMTP security", "none, starttls (usually port 587) or tls (usually port 465)."
    )
    smtp_username: str | Unset = _field("SMTP user", "User name to log in with; empty: none.")
    smtp_password: SecretStr | Unset = _field("SMTP password", "Password of the SMTP user.")
    smtp_timeout_seconds: float | Unset = _field(
        "SMTP timeout (seconds)", "How long to wait for the SMTP server; default 30."
    )
    smtp_connections: int | Unset = _field(
        "SMTP connections",
        "Connections to the SMTP server at once, across all processes (1-64); default 4.",
    )
    delivery_processes: int | Unset = _field(
        "Delivery processes",
        "Processes that render and send (0: one per core; 1: in the run's own); default 0.",
    )


class SmsGroup(_Group):
    """How notices go out by SMS."""

    model_config = ConfigDict(title="SMS")
    sms_backend: SmsBackend | Unset = _field(
        "SMS backend",
        "aliyun sends through Alibaba Cloud SMS; file writes JSON lines to the outbox; "
        "memory keeps them in the process (tests). Default: file.",
    )
    sms_sign_name: str | Unset = _field("SMS signature", "Signature name approved for the SMS.")
    sms_template_prefix: str | Unset = _field(
        "SMS template prefix",
        "The template code of a notice kind is this prefix + the kind in capitals.",
    )
    aliyun_endpoint: str | Unset = _field(
        "SMS API endpoint", "Host of the SMS API; default dysmsapi.aliyuncs.com."
    )
    sms_timeout_seconds: float | Unset = _field(
        "SMS timeout (seconds)", "How long to wait for the SMS API; default 10."
    )


class AliyunGroup(_Group):
    """The Alibaba Cloud access key, for SMS and for the Domain API."""

    model_config = ConfigDict(title="Alibaba Cloud access key")
    aliyun_access_key_id: str | Unset = _field("Access key ID", "AccessKey ID of the account.")
    aliyun_access_key_secret: SecretStr | Unset = _field(
        "Access key secret", "AccessKey secret of the account."
    )
    aliyun_protocol: AliyunProtocol | Unset = _field(
        "Protocol", "https, or http for a stand-in on a private network; default https."
    )


class RegistrarGroup(_Group):
    """Where delegations are changed."""

    model_config = ConfigDict(title="Registrar")
    registrar_backend: RegistrarBackend | Unset = _field(
        "Registrar backend",
        "database records delegations in the project's database; http calls a registrar's "
        "HTTP API; aliyun the Alibaba Cloud Domain API. Default: database.",
    )
    registrar_url: str | Unset = _field("Registrar API URL", "Base URL of the http registrar.")
    registrar_token: SecretStr | Unset = _field(
        "Registrar API token", "Bearer token of the http registrar."
    )
    registrar_aliyun_endpoint: str | Unset = _field(
        "Domain API endpoint", "host or host:port of the Alibaba Cloud Domain API."
    )
    registrar_timeout_seconds: float | Unset = _field(
        "Registrar timeout (seconds)", "How long to wait for the registrar; default 10."
    )


class ClustersGroup(_Group):
    """The live DNS clusters and the release of a domain from them."""

    model_config = ConfigDict(title="DNS clusters and release")
    cluster_api_keys: dict[str, SecretStr] | Unset = _field(
        "Cluster API keys",
        'API key of each PowerDNS cluster by its code, e.g. {"paid-1": "KEY"}.',
    )
    cluster_timeout_seconds: float | Unset = _field(
        "Cluster timeout (seconds)", "How long to wait for a cluster's API; default 10."
    )
    cluster_breaker_timeouts: int | Unset = _field(
        "Unanswered calls before a server is left alone",
        "Calls in a row a cluster's server leaves unanswered before the run makes no more "
        "calls to it (1-1000); default 5.",
    )
    drain_hours: float | Unset = _field(
        "Drain (hours)",
        "How long the paid copy keeps answering after the switch; default 48.",
    )
    manual_drain_days: float | Unset = _field(
        "Ticketed drain (days)",
        "The latest a ticketed domain's drain starts after its release; default 14.",
    )
    verify_attempts: int | Unset = _field(
        "Verification attempts",
        "Failed checks of the free copy before a person is asked to look (1-100); default 3.",
    )
    verify_fresh_minutes: float | Unset = _field(
        "Fresh verification (minutes)",
        "The registrar switch goes ahead only on a check of the free copy at most this old; "
        "an older one is made again first. Default 10.",
    )
    verify_wait_seconds: float | Unset = _field(
        "Wait for secondaries (seconds)",
        "How long a run waits, asking again with back-off, for the free cluster's public "
        "secondaries to serve a new zone; default 120.",
    )
    release_workers: int | Unset = _field(
        "Release threads", "Domains released at once per process (1-32); default 4."
    )
    release_processes: int | Unset = _field(
        "Release processes", "Processes that release domains (0: one per core); default 0."
    )


class TicketsGroup(_Group):
    """Where tasks for a person are filed."""

    model_config = ConfigDict(title="Tickets")
    ticket_sink: TicketSink | Unset = _field(
        "Ticket sink",
        "database keeps tickets in the project's database only; webhook also posts them "
        "to the URL below. Default: database.",
    )
    ticket_webhook_url: str | Unset = _field("Webhook URL", "URL the tickets are posted to.")
    ticket_webhook_token: SecretStr | Unset = _field(
        "Webhook token", "Bearer token sent with each ticket."
    )
    ticket_webhook_timeout_seconds: float | Unset = _field(
        "Webhook timeout (seconds)", "How long to wait for the webhook; default 10."
    )
    ticket_webhook_attempts: int | Unset = _field(
        "Webhook attempts", "Tries per ticket before the run gives up on it (1-10); default 3."
    )


class DelegationGroup(_Group):
    """Checks of where a domain is delegated."""

    model_config = ConfigDict(title="Delegation checks")
    dns_resolvers: list[str] | Unset = _field(
        "DNS resolvers",
        "Resolvers asked, as host or host:port; none: the check is skipped and says so.",
    )
    dns_timeout_seconds: float | Unset = _field(
        "DNS timeout (seconds)", "How long to wait for a resolver; default 3."
    )


class CustomerGroup(_Group):
    """What customers see in their notices."""

    model_config = ConfigDict(title="Customer notices")
    console_url: str | Unset = _field(
        "Console link",
        "Console page of an instance, with {instance_id}, e.g. "
        "https://dns.console.example.com/instances/{instance_id}; empty: no link.",
    )


class DnsLifecycleSettings(Block):
    """Every setting of dns-lifecycle, grouped as on a settings page."""

    _block_type_name = "DNS lifecycle settings"
    _block_type_slug = BLOCK_TYPE_SLUG
    _description = (
        "Every setting of dns-lifecycle: database, email, SMS, registrar, DNS clusters, "
        "tickets. A run reads the document named by DNSL_SETTINGS_BLOCK (default: "
        '"default") at its start. An environment variable on the worker overrides a '
        "field; an empty field takes the default."
    )

    database: DatabaseGroup = Field(default_factory=DatabaseGroup, title="Database")
    email: EmailGroup = Field(default_factory=EmailGroup, title="Email")
    sms: SmsGroup = Field(default_factory=SmsGroup, title="SMS")
    aliyun: AliyunGroup = Field(default_factory=AliyunGroup, title="Alibaba Cloud access key")
    registrar: RegistrarGroup = Field(default_factory=RegistrarGroup, title="Registrar")
    clusters: ClustersGroup = Field(default_factory=ClustersGroup, title="DNS clusters and release")
    tickets: TicketsGroup = Field(default_factory=TicketsGroup, title="Tickets")
    delegation: DelegationGroup = Field(default_factory=DelegationGroup, title="Delegation checks")
    customer: CustomerGroup = Field(default_factory=CustomerGroup, title="Customer notices")
    rules: RulesGroup = Field(default_factory=RulesGroup, title="Lifecycle rules")
    files: FilesGroup = Field(default_factory=FilesGroup, title="Files")


# The block's sections in form order, by their key in the document.
GROUPS: dict[str, type[_Group]] = {
    "database": DatabaseGroup,
    "email": EmailGroup,
    "sms": SmsGroup,
    "aliyun": AliyunGroup,
    "registrar": RegistrarGroup,
    "clusters": ClustersGroup,
    "tickets": TicketsGroup,
    "delegation": DelegationGroup,
    "customer": CustomerGroup,
    "rules": RulesGroup,
    "files": FilesGroup,
}
# Where each setting lives in the block: setting name -> section key.
SECTION_OF: dict[str, str] = {
    name: key for key, group in GROUPS.items() for name in group.model_fields
}


def block_label(setting: str) -> str:
    """How the form names a setting: "Email › SMTP port"."""
    group = GROUPS[SECTION_OF[setting]]
    title = group.model_config.get("title") or SECTION_OF[setting]
    return f"{title} › {group.model_fields[setting].title}"


# ---------------------------------------------------------------- reading


@dataclass
class LoadedSettings:
    """The settings of a run and where each value came from."""

    settings: Settings
    sources: dict[str, str]  # setting -> "env" | "block NAME" | "default"
    document: str | None  # the block document used, if any


def document_name() -> str:
    return os.environ.get(BLOCK_ENV, "").strip() or DEFAULT_DOCUMENT


def _api_in_reach() -> bool:
    """Whether a Prefect API can be asked without starting one: one is configured, or
    this process runs a flow (so its temporary API is already up)."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value()) or FlowRunContext.get() is not None


def read_document(name: str) -> dict[str, Any] | None:
    """The data of block document ``name`` (secrets in the clear), or None when there is
    none or no Prefect API is in reach."""
    if not _api_in_reach():
        return None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(
                name, block_type_slug=BLOCK_TYPE_SLUG, include_secrets=True
            )
    except ObjectNotFound:
        return None
    except Exception as exc:  # the API is unreachable or answered an error
        raise SettingsInvalid(
            f"settings block {name!r} could not be read from the Prefect API "
            f"({type(exc).__name__}): check PREFECT_API_URL and that the server is up"
        ) from None
    return dict(document.data)


def block_values(data: dict[str, Any]) -> dict[str, Any]:
    """The settings a document sets: its non-empty fields, by setting name. Unknown
    keys (a field of a newer or older version) are ignored."""
    values: dict[str, Any] = {}
    for key in GROUPS:
        section = data.get(key)
        if not isinstance(section, dict):
            continue
        for name, value in section.items():
            if name in SECTION_OF and SECTION_OF[name] == key and value not in (None, ""):
                values[name] = value
    return values


def _field_of(loc: str) -> str:
    """The setting a validation error's location names (an alias or the field)."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if loc == name or (isinstance(alias, AliasChoices) and loc in alias.choices):
            return name
    return loc


def env_variable(name: str) -> str:
    return "DATABASE_URL" if name == "database_url" else f"DNSL_{name.upper()}"


def load_settings(name: str | None = None) -> LoadedSettings:
    """The settings in effect (see the module for the order), or SettingsInvalid naming
    the one bad field and where its value came from."""
    name = name or document_name()
    try:
        from_env = {_field_of(key) for key in EnvSettingsSource(Settings)()}
    except SettingsError as exc:
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise SettingsInvalid(
            f"setting {env_variable(field)}: its value is not valid JSON (lists and maps "
            "are written as JSON, e.g. '[30, 7, 3, 1]')"
        ) from None
    data = read_document(name)
    from_block = {
        key: value for key, value in block_values(data or {}).items() if key not in from_env
    }
    try:
        settings = Settings(**from_block)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = _field_of(str(error["loc"][0])) if error["loc"] else "?"
        if field in from_block:
            where = f"settings block {name!r}: {block_label(field)} ({SECTION_OF[field]}."
            where += f"{field})"
            fix = f"fix it in the Prefect UI (Blocks › {name}) or set {env_variable(field)}"
        else:
            where = f"setting {env_variable(field)}"
            fix = "fix the environment variable"
        raise SettingsInvalid(f"{where}: {error['msg']}; {fix}") from None
    sources = {
        field: "env" if field in from_env else f"block {name}" if field in from_block else "default"
        for field in Settings.model_fields
    }
    return LoadedSettings(settings, sources, name if data is not None else None)


# ---------------------------------------------------------------- showing


def shown_value(name: str, value: Any) -> str:
    """A setting's value as shown to people: secrets masked, the database URL without
    its password."""
    if value is None:
        return ""
    if name == "database_url":
        return _url_without_password(str(value))
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, dict):
        return json.dumps({k: shown_value(name, v) for k, v in value.items()})
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _url_without_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return MASK  # not a URL: it could be anything, a password included
    return parsed.render_as_string(hide_password=True).replace("***", MASK)


def settings_table(loaded: LoadedSettings) -> list[dict[str, str]]:
    """One row per setting: its name, its value as shown, and its source."""
    return [
        {
            "setting": name,
            "value": shown_value(name, getattr(loaded.settings, name)),
            "source": loaded.sources[name],
        }
        for name in Settings.model_fields
    ]


# ---------------------------------------------------------------- writing


# Settings whose default is a path on the machine that computes it (a file under the
# checkout): saved into a block only when set, so each worker keeps its own default.
MACHINE_LOCAL = frozenset({"database_url", "outbox_dir", "templates_dir"})


def block_document(settings: Settings, leave_empty: Iterable[str] = ()) -> DnsLifecycleSettings:
    """A block holding every value of ``settings`` but those in ``leave_empty``."""
    skipped = set(leave_empty)
    sections: dict[str, dict[str, Any]] = {key: {} for key in GROUPS}
    for name in Settings.model_fields:
        if name in skipped:
            continue
        value = getattr(settings, name)
        if isinstance(value, Path):
            value = str(value)
        if name == "database_url":
            value = SecretStr(value)
        sections[SECTION_OF[name]][name] = value
    return DnsLifecycleSettings(**{key: GROUPS[key](**values) for key, values in sections.items()})


def register_block_type() -> None:
    """Register the block type and its schema with the Prefect API (idempotent)."""
    DnsLifecycleSettings.register_type_and_schema()


def save_block(name: str, settings: Settings, leave_empty: Iterable[str] = ()) -> None:
    """Write ``settings`` into the block document ``name``, replacing what it held;
    the fields in ``leave_empty`` are left empty (their default applies)."""
    register_block_type()
    block_document(settings, leave_empty).save(name, overwrite=True)


def save_in_effect(name: str) -> LoadedSettings:
    """Write the settings now in effect into document ``name``: every one, but a
    machine-local path that only has its default here."""
    loaded = load_settings()
    defaults = {f for f in MACHINE_LOCAL if loaded.sources[f] == "default"}
    save_block(name, loaded.settings, leave_empty=defaults)
    return loaded


__all__ = [
    "BLOCK_ENV",
    "DnsLifecycleSettings",
    "BLOCK_TYPE_SLUG",
    "GROUPS",
    "LoadedSettings",
    "SettingsInvalid",
    "block_label",
    "load_settings",
    "register_block_type",
    "save_block",
    "save_in_effect",
    "settings_table",
]
