"""What the reliability tests share: a small fleet, the ledger as a dict, and settings
pointing the real channels at servers on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from dns_lifecycle.core.db import Database
from dns_lifecycle.core.settings import Settings
from models import Notification
from tests.conftest import make_settings
from tests.factories import make_account, make_catalog, make_instance

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SENDER = "DNS Hosting <no-reply@dns-lifecycle.example>"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # HTTP clients send plain-HTTP requests through $HTTP_PROXY when one is set.
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def lite_settings(tmp_path, _sqlite_template) -> Settings:
    """Settings on a fresh SQLite file: for faults where the database is not the point."""
    path = tmp_path / "lite.db"
    shutil.copy(_sqlite_template, path)
    return make_settings(tmp_path, f"sqlite:///{path}", email_from=SENDER)


@pytest.fixture
def lite_db(lite_settings):
    database = Database(lite_settings)
    yield database
    database.dispose()


def with_settings(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with ``changes``, validated like the environment would be."""
    return Settings(**{**settings.model_dump(), **changes})


def smtp_settings(settings: Settings, port: int, **changes: Any) -> Settings:
    return with_settings(
        settings,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout_seconds=changes.pop("smtp_timeout_seconds", 2.0),
        smtp_connections=changes.pop("smtp_connections", 1),
        email_from=SENDER,
        **changes,
    )


def email_of(n: int) -> str:
    return f"acct-{n}@example.com"


def phone_of(n: int) -> str:
    return f"+86139000{n:05d}"


@dataclass(frozen=True)
class Fleet:
    instances: list[str]
    accounts: list[str]


def reminder_fleet(db: Database, n: int, *, prefix: str = "", **account: Any) -> Fleet:
    """``n`` instances, one per account, each owing its 7-day reminder as of AS_OF;
    ids are ``{prefix}inst-{i}`` and ``{prefix}acct-{i}``."""
    with db.session() as s:
        make_catalog(s)
        for i in range(n):
            acct = f"{prefix}acct-{i}"
            make_account(s, acct, email=f"{prefix}{email_of(i)}", phone=phone_of(i), **account)
            make_instance(
                s, f"{prefix}inst-{i}", account=acct, expires_at=AS_OF + timedelta(days=5)
            )
        s.commit()
    return Fleet([f"{prefix}inst-{i}" for i in range(n)], [f"{prefix}acct-{i}" for i in range(n)])


def renewal_fleet(db: Database, n: int, *, balance: Decimal = Decimal("100.00")) -> Fleet:
    """``n`` auto-renewing monthly instances, one per account, due for renewal as of AS_OF."""
    with db.session() as s:
        make_catalog(s)
        for i in range(n):
            make_account(s, f"acct-{i}", email=email_of(i), phone=phone_of(i), balance=balance)
            make_instance(
                s,
                f"inst-{i}",
                account=f"acct-{i}",
                expires_at=AS_OF + timedelta(days=3),
                auto_renew=True,
            )
        s.commit()
    return Fleet([f"inst-{i}" for i in range(n)], [f"acct-{i}" for i in range(n)])


def ledger(db: Database) -> dict[str, Notification]:
    """Every ledger row by key."""
    with db.session() as s:
        return {n.key: n for n in s.exec(select(Notification).order_by(Notification.id))}


def states(db: Database) -> dict[str, str]:
    return {key: row.state for key, row in ledger(db).items()}


def write_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def release_fleet(
    db: Database,
    n: int,
    *,
    registrar: str = "other-registrar",
    epp_statuses: tuple[str, ...] = (),
    domain: Callable[[int], str] = lambda i: f"inst-{i}.example.com",
) -> Fleet:
    """``n`` instances, one per account, expired 8 days before AS_OF (grace over), each
    with one domain at ``registrar`` carrying an A and a CNAME record."""
    with db.session() as s:
        make_catalog(s)
        for i in range(n):
            make_account(s, f"acct-{i}", email=email_of(i), phone=phone_of(i))
            name = domain(i)
            make_instance(
                s,
                f"inst-{i}",
                account=f"acct-{i}",
                expires_at=AS_OF - timedelta(days=8),
                state="expired",
                domains=[
                    {
                        "name": name,
                        "registrar": registrar,
                        "epp_statuses": list(epp_statuses),
                        "records": [("A", "@", "192.0.2.1", 600), ("CNAME", "www", "x.test.", 600)],
                    }
                ],
            )
        s.commit()
    return Fleet([f"inst-{i}" for i in range(n)], [f"acct-{i}" for i in range(n)])
