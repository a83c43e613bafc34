"""The project's errors.

LifecycleError                 base: every message names the object and the fix
├── InputError                 bad input from a person: fix it and try again
│   ├── NotFound               an id that does not exist
│   └── Refused                a valid request the rules do not allow
├── DeliveryError              a channel could not deliver
│   ├── TransientDeliveryError retry later (4xx SMTP, disconnect, timeout, 5xx HTTP)
│   └── PermanentDeliveryError a person must act (5xx SMTP, invalid number)
└── NeedsPerson                an automatic step cannot go on (e.g. domain locked)
"""

from __future__ import annotations


class LifecycleError(Exception):
    """Base of every error the project raises on purpose."""


class InputError(LifecycleError):
    """Input that cannot be accepted as given."""


class NotFound(InputError):
    """An id that names nothing."""


class Refused(InputError):
    """A well-formed request that the business rules do not allow."""


class DeliveryError(LifecycleError):
    """A channel failed to deliver one message."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying on a later run."""


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help; the ledger row is marked failed."""


class NeedsPerson(LifecycleError):
    """An automatic step that only a person can complete."""
