"""One settings object, read from the environment once at an entry point and passed down.

Every variable is prefixed ``DNSL_`` except ``DATABASE_URL``, which keeps the name
every tool expects. Secrets are ``SecretStr``: they print as ``**********`` and are
only unwrapped at the moment a connection is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeAlias

from pydantic import AfterValidator, AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dns_lifecycle.channels.email import BACKENDS as EMAIL_BACKENDS
from dns_lifecycle.channels.registrar import BACKENDS as REGISTRAR_BACKENDS
from dns_lifecycle.channels.sms import BACKENDS as SMS_BACKENDS
from dns_lifecycle.channels.tickets import BACKENDS as TICKET_SINKS
from dns_lifecycle.core.addresses import parse_address
from dns_lifecycle.core.links import check_console_url

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def shipped(name: str) -> Path:
    """A folder of the repository that the code reads (templates, migrations): the
    checkout's, or where there is none (an installed wheel) the copy the package carries."""
    in_checkout = REPO_ROOT / name
    return in_checkout if in_checkout.is_dir() else PACKAGE_DIR / "bundled" / name


# The choices of the settings that pick a mode, shared with the settings block's form
# (dns_lifecycle.core.settings_block).
SmtpSecurity = Literal["none", "starttls", "tls"]
AliyunProtocol = Literal["https", "http"]

# A setting that picks a backend names one of its channel's registry, checked when the
# settings are read (a backend registered since is accepted); the form offers the names
# registered when it is built, as a select.
EmailBackendName = Annotated[str, AfterValidator(EMAIL_BACKENDS.check)]
SmsBackendName = Annotated[str, AfterValidator(SMS_BACKENDS.check)]
RegistrarBackendName = Annotated[str, AfterValidator(REGISTRAR_BACKENDS.check)]
TicketSinkName = Annotated[str, AfterValidator(TICKET_SINKS.check)]
if TYPE_CHECKING:
    EmailBackend: TypeAlias = str
    SmsBackend: TypeAlias = str
    RegistrarBackend: TypeAlias = str
    TicketSink: TypeAlias = str
else:
    EmailBackend = EMAIL_BACKENDS.literal()
    SmsBackend = SMS_BACKENDS.literal()
    RegistrarBackend = REGISTRAR_BACKENDS.literal()
    TicketSink = TICKET_SINKS.literal()

# Days an expired instance keeps resolving before its release: DNSL_GRACE_DAYS by default.
GRACE_DAYS = 7


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DNSL_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{REPO_ROOT / 'var' / 'dns-lifecycle.db'}",
        validation_alias=AliasChoices("DATABASE_URL", "DNSL_DATABASE_URL"),
        description="SQLAlchemy URL; SQLite file under var/ by default, PostgreSQL in production.",
    )
    outbox_dir: Path = Field(
        default=REPO_ROOT / "var" / "outbox",
        description="Where the file backends write .eml files and JSON lines.",
    )
    templates_dir: Path = Field(default=shipped("templates") / "emails")

    # Business rules (lifecycle.md): the numbers it leaves open, with its defaults.
    reminder_offsets_days: list[int] = Field(default=[30, 7, 3, 1])
    renewal_lead_days: int = Field(default=7, ge=1, le=60)
    grace_days: int = Field(default=GRACE_DAYS, ge=1, le=60)

    batch_size: int = Field(default=1000, ge=1, le=50_000)

    # Email.
    email_backend: EmailBackendName = "file"
    email_from: str = "DNS Hosting <no-reply@dns-lifecycle.local>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: SmtpSecurity = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_connections: int = Field(default=4, ge=1, le=64)  # in all, whatever the processes

    # Delivery: render and send in this many processes (0: one per core; 1: in the
    # run's own process). The file and memory backends always deliver in the run's.
    delivery_processes: int = Field(default=0, ge=0, le=64)

    # SMS.
    sms_backend: SmsBackendName = "file"
    sms_sign_name: str = "DNSHosting"
    sms_template_prefix: str = Field(
        default="SMS_DNSL_",
        description="Template code of a notice kind is this prefix + KIND in capitals.",
    )
    aliyun_access_key_id: str | None = None
    aliyun_access_key_secret: SecretStr | None = None
    aliyun_endpoint: str = "dysmsapi.aliyuncs.com"
    aliyun_protocol: AliyunProtocol = "https"
    sms_timeout_seconds: float = Field(default=10.0, gt=0)

    # Registrar gateway: `database` records delegations in the project's own database
    # (the embedded default); `http` calls a registrar's plain HTTP API; `aliyun` the
    # provider's Domain API, signed with the aliyun_* access key above and spoken over
    # aliyun_protocol.
    registrar_backend: RegistrarBackendName = "database"
    registrar_url: str = "http://127.0.0.1:8053"
    registrar_token: SecretStr | None = None
    registrar_aliyun_endpoint: str = Field(
        default="domain.aliyuncs.com",
        description="host or host:port of the Domain API (2018-01-29) for `aliyun`.",
    )
    registrar_timeout_seconds: float = Field(default=10.0, gt=0)

    # Live DNS clusters. API keys of `powerdns` clusters by cluster code, as JSON
    # ('{"paid-1": "...", "free": "..."}'): a secret, never in the inventory or an export.
    cluster_api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    cluster_timeout_seconds: float = Field(default=10.0, gt=0)
    # After this many calls in a row that a cluster's server does not answer, a run
    # makes no more calls to it (see channels/clusters/breaker.py).
    cluster_breaker_timeouts: int = Field(default=5, ge=1, le=1000)
    # Release: how long the paid copy keeps answering after the switch (the usual NS TTL
    # at the parent), the latest a ticketed domain's drain starts after its release, and
    # after how many failed verifications of the free copy a person is asked to look.
    drain_hours: float = Field(default=48.0, ge=0)
    manual_drain_days: float = Field(default=14.0, ge=0)
    verify_attempts: int = Field(default=3, ge=1, le=100)
    # The registrar switch goes ahead only on a verification of the free copy at most
    # this old; an older one (a run stopped between the two) is made again first.
    verify_fresh_minutes: float = Field(default=10.0, ge=0)
    # How long a release waits within its run, asking again with back-off, for a free
    # cluster's secondaries to serve a zone they do not serve yet (or an older version
    # of it); after that the domain waits for the next run, without counting a failure.
    verify_wait_seconds: float = Field(default=120.0, ge=0)
    # Domains released at once; calls that write to one PowerDNS server still go one at
    # a time (its SQLite backend takes one writer and has no busy timeout).
    release_workers: int = Field(default=4, ge=1, le=32)
    # Processes that release domains on live clusters, each with release_workers threads
    # (0: one per core); the work there is CPU in the calling process.
    release_processes: int = Field(default=0, ge=0, le=64)

    # Manual-action tickets: always stored in the database; `webhook` also POSTs them.
    ticket_sink: TicketSinkName = "database"
    ticket_webhook_url: str | None = None
    ticket_webhook_token: SecretStr | None = None
    ticket_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    ticket_webhook_attempts: int = Field(default=3, ge=1, le=10)

    # Delegation checks: the DNS resolvers asked, as host or host:port. None configured
    # (the embedded default) means the check is skipped and says so.
    dns_resolvers: list[str] = Field(default_factory=list)
    dns_timeout_seconds: float = Field(default=3.0, gt=0)

    # Where a customer acts on a notice: an http(s) URL template whose only placeholder
    # is {instance_id}. Unset: notices carry no link.
    console_url: str | None = Field(
        default=None,
        description="Console page of an instance, e.g. "
        "https://dns.console.example.com/instances/{instance_id}",
    )

    # A delivery run ends Failed when more than this share of its deliveries failed.
    failure_threshold: float = Field(default=0.05, ge=0, le=1)

    @field_validator("reminder_offsets_days")
    @classmethod
    def _offsets_positive_and_unique(cls, value: list[int]) -> list[int]:
        if not value or any(v < 1 for v in value) or len(set(value)) != len(value):
            raise ValueError(
                "reminder offsets must be distinct whole days >= 1, e.g. [30, 7, 3, 1]"
            )
        return sorted(value, reverse=True)

    @field_validator("console_url")
    @classmethod
    def _console_url_template(cls, value: str | None) -> str | None:
        # An empty variable means unset, as for the other optional settings.
        return check_console_url(value) if value and value.strip() else None

    @field_validator("dns_resolvers")
    @classmethod
    def _resolvers_are_addresses(cls, value: list[str]) -> list[str]:
        for resolver in value:
            parse_address(resolver)  # raises with the fix in its message
        return value

    # The operator's calendar: the days of the fleet outlook (the daily schedule in
    # prefect.yaml runs at 02:00 in the same zone).
    operator_timezone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone whose calendar days the fleet outlook counts in.",
    )

    @field_validator("operator_timezone")
    @classmethod
    def _operator_timezone_exists(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time zone {value!r} is not an IANA time zone name, e.g. Asia/Shanghai"
            ) from None
        return value
