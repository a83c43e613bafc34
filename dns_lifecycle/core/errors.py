"""The project's errors, all of them: every message names the object and the fix.

LifecycleError                   base of every error raised on purpose
├── InputError                   bad input from a person: fix it and try again
│   ├── NotFound                 an id that does not exist
│   ├── Refused                  a valid request the rules do not allow
│   ├── InventoryInvalid         an inventory with bad entries, each with its path
│   └── ZoneFileError            a record that cannot be a zone-file line
├── DeliveryError                a channel could not deliver
│   ├── TransientDeliveryError   retry later (4xx SMTP, disconnect, timeout, 5xx HTTP)
│   │   └── RegistrarUnavailable the registrar did not answer usefully
│   └── PermanentDeliveryError   a person must act (5xx SMTP, invalid number)
│       └── RegistrarRefused     the registrar refused for a reason other than a lock
├── NeedsPerson                  an automatic step cannot go on
│   └── DomainLocked             an EPP lock forbids changing the name servers
├── DatabaseNotReady             the database cannot be reached or is not migrated
├── ReleaseCheckFailed           the free copy would not serve what the paid one served
├── ClusterError                 a DNS cluster's API did not do what was asked
│   ├── ClusterUnavailable       no answer, a timeout, a 5xx: the next run tries again
│   │   └── ClusterSwitchedOff   not called again in this run: it stopped answering
│   ├── ClusterRefused           a refusal (4xx): a person must look at the zone
│   └── ClusterMisconfigured     a wrong API key, URL or server_id: the run fails, once
└── RunFailed                    a run did part of its work and failed (carries its report)
    ├── TooManyFailures          a step's deliveries failed beyond the threshold
    └── StepsFailed              one or more steps of the daily run failed
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class LifecycleError(Exception):
    """Base of every error the project raises on purpose."""


class InputError(LifecycleError):
    """Input that cannot be accepted as given."""


class NotFound(InputError):
    """An id that names nothing."""


class Refused(InputError):
    """A well-formed request that the business rules do not allow."""


class NeedsPerson(LifecycleError):
    """An automatic step that only a person can complete."""


class DomainLocked(NeedsPerson):
    """The domain's EPP status forbids changing its name servers."""

    def __init__(self, domain: str, status: str | None, nameservers: Iterable[str] = ()):
        self.domain = domain
        self.status = status
        self.nameservers = list(nameservers)
        lock = f"the EPP status {status}" if status else "a registrar lock"
        if status == "serverUpdateProhibited":
            unlock = "ask the registrar to have the registry lift serverUpdateProhibited"
        elif status == "clientUpdateProhibited":
            unlock = "remove clientUpdateProhibited in the registrar's console"
        else:
            unlock = "remove the update lock at the registrar"
        target = ", ".join(self.nameservers) or "the new name servers"
        super().__init__(
            f"domain {domain} is locked against updates ({lock}): its name servers cannot "
            f"be changed automatically. To fix: {unlock} so the change can be made, or "
            f"change its DNS servers by hand at the registrar to {target}"
        )


class DeliveryError(LifecycleError):
    """A channel failed to deliver one message."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying on a later run."""


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help; the ledger row is marked failed."""


class InventoryInvalid(InputError):
    """An inventory document with at least one bad entry; nothing was imported.

    ``errors`` lists every problem as ``(path, message)`` in file order.
    """

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        super().__init__(self._text())

    def __reduce__(self) -> tuple[Any, ...]:
        # Flow runners pickle exceptions across processes: keep the list, not the text.
        return (type(self), (self.errors, self.source))

    def _text(self) -> str:
        where = f" in {self.source}" if self.source else ""
        n = len(self.errors)
        lines = [f"The inventory{where} has {n} problem{'s' if n != 1 else ''}:"]
        lines += [
            f"  {path}: {message}" if path else f"  {message}" for path, message in self.errors
        ]
        lines.append(
            "Nothing was imported. Fix every entry listed above and import the file again."
        )
        return "\n".join(lines)


class ZoneFileError(InputError):
    """A record that cannot be written as a master-file line, or a file that cannot be read."""


class RegistrarUnavailable(TransientDeliveryError):
    """The registrar did not answer usefully; the change may be tried again later."""


class RegistrarRefused(PermanentDeliveryError):
    """The registrar refused the change for a reason other than a lock."""


class ReleaseCheckFailed(LifecycleError):
    """The free cluster would not serve what the paid cluster served; nothing was moved."""


class ClusterError(LifecycleError):
    """A DNS cluster's API did not do what was asked.

    ``cause``, when given, is the message without the zone: the same for every zone the
    fault hits (a server that does not answer), so that a run reports it once, with a
    count, instead of once per domain.
    """

    def __init__(self, message: str, cause: str | None = None):
        super().__init__(message)
        self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.cause))


class ClusterUnavailable(ClusterError):
    """The cluster did not answer usefully; the same call is tried again by the next run."""


class ClusterSwitchedOff(ClusterUnavailable):
    """The cluster stopped answering during this run (or its settings are wrong): no more
    calls go to it until the next run."""


class ClusterRefused(ClusterError):
    """The cluster refused the call; repeating it will not help until someone acts."""


class ClusterMisconfigured(ClusterError):
    """The cluster's settings are wrong (API key, api_url, server_id): a fault of the run,
    not of a domain. No domain gets a ticket; the run fails naming the setting."""


class RunFailed(LifecycleError):
    """A run that did part of its work and failed; ``report`` is what it did all the
    same, for the summary."""

    def __init__(self, message: str, report: Any = None):
        super().__init__(message)
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        # Flow runners pickle exceptions: keep the report, not only the text.
        return (type(self), (str(self), self.report))


class TooManyFailures(RunFailed):
    """A run whose deliveries failed beyond the configured share."""


class StepsFailed(RunFailed):
    """One or more steps of the daily run failed; the others ran."""


class DatabaseNotReady(LifecycleError):
    """The configured database cannot be used as it is: unreachable, unknown, or not at
    the schema of this code. The message says which, and what to run."""


def shortened(text: str) -> str:
    """``text`` as a one-line message quotes what a person typed (an id, a request key, a
    number): whole up to 64 characters (the longest id or request key), else its first
    60 and '...', so that a value of thousands of characters does not bury the reason
    and the fix."""
    return text if len(text) <= 64 else text[:60] + "..."
