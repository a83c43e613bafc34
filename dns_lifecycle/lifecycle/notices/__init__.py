"""Notices owed to accounts: the typed catalog of notice kinds, their keys, their rows.

``catalog`` has one class per kind, ``keys`` every ledger and order key, ``base``
what all kinds share, ``samples`` sample contexts for previews and tests.
"""

from dns_lifecycle.lifecycle.notices.base import (
    CHANNELS,
    LOCALES,
    Addressee,
    Notice,
    iso,
    money,
    notice_rows,
    parse_instant,
)
from dns_lifecycle.lifecycle.notices.catalog import (
    CATALOG,
    DOMAIN_ACTIONS,
    NOTICE_KINDS,
    AutoRenewChanged,
    Expired,
    OrderCreated,
    Released,
    ReleaseWarning,
    Reminder,
    RenewalFailed,
    Renewed,
    TicketResolved,
    Upgraded,
    notice_class,
    read_stored,
)
from dns_lifecycle.lifecycle.notices.keys import stamp

__all__ = [
    "CATALOG",
    "CHANNELS",
    "DOMAIN_ACTIONS",
    "LOCALES",
    "NOTICE_KINDS",
    "Addressee",
    "AutoRenewChanged",
    "Expired",
    "Notice",
    "OrderCreated",
    "ReleaseWarning",
    "Released",
    "Reminder",
    "RenewalFailed",
    "Renewed",
    "TicketResolved",
    "Upgraded",
    "iso",
    "money",
    "notice_class",
    "notice_rows",
    "parse_instant",
    "read_stored",
    "stamp",
]
