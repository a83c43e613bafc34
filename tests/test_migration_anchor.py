"""The migration that moves anchor days from the UTC calendar to the account's own."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from dns_lifecycle.core.db import upgrade
from dns_lifecycle.core.settings import Settings

ROWS = [
    # id, zone, expiry (UTC), old anchor (UTC day), anchor expected after the migration
    ("i-sh", "Asia/Shanghai", "2027-01-30 16:00:00", 30, 31),  # 31 Jan 00:00 in Shanghai
    ("i-ny", "America/New_York", "2027-02-01 04:59:00", 1, 31),  # 31 Jan 23:59 in New York
    ("i-end", "America/New_York", "2027-03-01 02:00:00", 1, 28),  # 28 Feb 21:00, a month end
    ("i-kept", "UTC", "2027-02-28 10:00:00", 31, 31),  # anchored on the 31st, unchanged
    ("i-feb", "Asia/Shanghai", "2027-02-28 10:00:00", 31, 31),  # 28 Feb 18:00, a month end
    ("i-mar", "Asia/Shanghai", "2027-02-28 17:00:00", 31, 1),  # 1 Mar 01:00 in Shanghai
]


def test_anchor_days_move_to_the_accounts_calendar_and_back(tmp_path):
    """Upgrading re-reads each anchor as the local day of expiry (keeping a month-end
    anchor on a local month end); downgrading restores the UTC anchors."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    settings = Settings(database_url=url)
    upgrade(settings, "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO edition VALUES ('p', 1, '1.00', '10.00')"))
        conn.execute(text("INSERT INTO cluster VALUES ('c', 'paid', '[]')"))
        for i, zone, expiry, anchor, _ in ROWS:
            conn.execute(
                text(
                    "INSERT INTO account (id, name, email, phone, locale, timezone, balance) "
                    "VALUES (:i, 'n', 'e@example.com', '+8613800138000', 'en-US', :z, '0')"
                ),
                {"i": "a" + i, "z": zone},
            )
            conn.execute(
                text(
                    "INSERT INTO instance (id, account_id, edition_code, billing_cycle, "
                    "expires_at, anchor_day, auto_renew, state, cluster_code) "
                    "VALUES (:i, :a, 'p', 'monthly', :e, :d, 0, 'active', 'c')"
                ),
                {"i": i, "a": "a" + i, "e": expiry, "d": anchor},
            )

    def anchors():
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT id, anchor_day FROM instance")).all())

    upgrade(settings, "0003")
    assert anchors() == {i: new for i, _, _, _, new in ROWS}
    from alembic import command

    from dns_lifecycle.core.db import alembic_config

    command.downgrade(alembic_config(url), "0002")
    restored = {i: old for i, _, _, old, _ in ROWS}
    restored["i-mar"] = 28  # the UTC day: the 31st was not a day of the local calendar
    assert anchors() == restored
    engine.dispose()
