"""The migration that gathers request keys into one namespace takes in the keys that
top-ups, manual renewals and upgrades already used."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from dns_lifecycle.core.db import upgrade
from dns_lifecycle.core.settings import Settings

ORDERS = [
    # key, instance, kind, period start, period end, edition, created
    ("manual_renewal:i1:R", "i1", "manual_renewal", "2027-01-30 16:00:00",
     "2027-03-30 16:00:00", "p", "2027-01-02 00:00:00"),
    ("upgrade:i1:U", "i1", "upgrade", "2026-12-30 16:00:00", "2027-03-30 16:00:00", "q",
     "2027-01-03 00:00:00"),
    # The same key on another instance, later: the first holder keeps it.
    ("manual_renewal:i2:R", "i2", "manual_renewal", "2027-01-30 16:00:00",
     "2027-02-27 16:00:00", "p", "2027-01-04 00:00:00"),
    # A top-up's key, later used for a renewal: the top-up keeps it.
    ("manual_renewal:i2:T", "i2", "manual_renewal", "2027-02-27 16:00:00",
     "2027-03-30 16:00:00", "p", "2027-01-05 00:00:00"),
]  # fmt: skip


def test_used_keys_are_held_by_their_earliest_request(tmp_path):
    """After the migration each used key names one request, with what it asked for:
    top-ups first, then renewals and upgrades, earliest first."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    settings = Settings(database_url=url)
    upgrade(settings, "0006")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO edition VALUES ('p', 1, '1.00', '10.00')"))
        conn.execute(text("INSERT INTO edition VALUES ('q', 2, '2.00', '20.00')"))
        conn.execute(
            text("INSERT INTO cluster (code, kind, nameservers) VALUES ('c', 'paid', '[]')")
        )
        conn.execute(
            text(
                "INSERT INTO account (id, name, email, phone, locale, timezone, balance) "
                "VALUES ('a', 'n', 'e@example.com', '+8613800138000', 'en-US', "
                "'Asia/Shanghai', '0')"
            )
        )
        for i in ("i1", "i2"):
            conn.execute(
                text(
                    "INSERT INTO instance (id, account_id, edition_code, billing_cycle, "
                    "expires_at, anchor_day, auto_renew, state, cluster_code) "
                    "VALUES (:i, 'a', 'p', 'monthly', '2027-03-30 16:00:00', 31, 0, "
                    "'active', 'c')"
                ),
                {"i": i},
            )
        conn.execute(
            text(
                "INSERT INTO top_up (key, account_id, amount, created_at) "
                "VALUES ('T', 'a', '5.00', '2027-01-01 00:00:00')"
            )
        )
        for key, inst, kind, start, end, edition, created in ORDERS:
            conn.execute(
                text(
                    "INSERT INTO orders (key, instance_id, kind, period_start, period_end, "
                    "amount, state, edition_code, created_at) "
                    "VALUES (:k, :i, :kind, :s, :e, '1.00', 'paid', :ed, :c)"
                ),
                {"k": key, "i": inst, "kind": kind, "s": start, "e": end, "ed": edition,
                 "c": created},
            )  # fmt: skip
    upgrade(settings, "0007")
    with engine.connect() as conn:
        held = conn.execute(
            text(
                "SELECT key, action, subject, params, order_id, top_up_id FROM request ORDER BY key"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in held] == [
        ("R", "manual_renewal", "i1", "periods=2", 1, None),
        ("T", "top_up", "a", "amount=5.00", None, 1),
        ("U", "upgrade", "i1", "edition=q", 2, None),
    ]
