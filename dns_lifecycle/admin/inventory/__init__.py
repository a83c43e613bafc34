"""Import and export of the inventory: editions, clusters, accounts, instances, and the
domains and DNS records of each instance, as one JSON document.

Modules, in the order a document goes through them:

- ``reading``: the file to a JSON value (``read_inventory_file``), strictly;
- ``values``: checks of single values (names, amounts, times, record values);
- ``entries``: each kind of entry as a pydantic model derived from the table's
  ``*Base`` class, and pydantic's errors as refusals with their path;
- ``checking``: the walk over the whole document (``validate_inventory``), with what
  no single entry can tell (duplicates, references, the free cluster, record names);
- ``writing``: the checked document to the database (``import_inventory``);
- ``exporting``: the database back to a document (``export_state``, ``write_state``).

Import is all-or-nothing. ``validate_inventory`` walks the whole document and collects
every problem with its path in the file (``instances[3].domains[0].name``) before
anything is written; ``import_inventory`` writes only a document that passed, in bulk
statements, and leaves the commit to the caller. ``export_state`` gives the whole state
back in the same shape, plus the history (orders, notifications, tickets).

The document (every top-level key is optional)::

    {"editions":  [{"code", "rank", "monthly_price", "yearly_price"}],
     "clusters":  [{"code", "kind", "nameservers"}],
     "accounts":  [{"id", "name", "email", "phone", "locale", "timezone", "balance"?}],
     "instances": [{"id", "account", "edition", "billing_cycle", "expires_at",
                    "auto_renew", "state", "cluster", "anchor_day"?, "anchor_time"?,
                    "released_at"?,
                    "domains"?: [{"name", "registrar", "epp_statuses"?, "nameservers"?,
                                  "records"?: [{"type", "host", "value", "ttl",
                                                "cluster"?}]}]}]}

Re-importing updates by key (editions and clusters by code, accounts and instances by
id). Optional fields left out of a re-import keep what is stored where that is the
safe reading: an account's ``balance`` and a released instance's ``released_at``.

A file carries no date, and may be older than what the lifecycle runs did since. So a
re-import is checked at the moment of the import (``now``) and does not undo them: a
released instance is final (it may only be given as stored), an expiry is not moved
before the end of a paid order's period, an expired instance becomes active only with an
expiry after now, an instance with time left is not made expired or released, no
release is after now, an instance with paid orders keeps its account and one with a
paid upgrade its edition, and an account with paid orders keeps its stored balance.
A file does not add money (imported twice, it would add it twice): ``dns-lifecycle
top-up`` does, once per request key.
An instance's ``domains``, when given, replace its domains: a domain it no longer lists
is deleted with its records and tickets, and the records of every listed domain are
re-created. An instance without a ``domains`` key keeps its domains. Records are served
by the instance's cluster, or by the free cluster once the instance is released.

The history keys of an export (``orders``, ``top_ups``, ``notifications``, ``tickets``)
are accepted and ignored, so an export can be imported back: that history is written by
the lifecycle runs and by requests, never by hand.
"""

from __future__ import annotations

from dns_lifecycle.admin.inventory.checking import Inventory, validate_inventory
from dns_lifecycle.admin.inventory.exporting import (
    export_state,
    iter_state,
    notification_row,
    order_row,
    top_up_row,
    write_state,
)
from dns_lifecycle.admin.inventory.reading import read_inventory_file
from dns_lifecycle.admin.inventory.values import domain_name, normalise_registrar
from dns_lifecycle.admin.inventory.writing import import_inventory

__all__ = [
    "Inventory",
    "domain_name",
    "export_state",
    "import_inventory",
    "iter_state",
    "normalise_registrar",
    "notification_row",
    "order_row",
    "read_inventory_file",
    "top_up_row",
    "validate_inventory",
    "write_state",
]
