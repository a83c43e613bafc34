"""The release step's report as its domains, threads and worker processes write to it.

``SharedReport`` lets the domains released at once add to one ``StepReport``, one at a
time; ``Causes`` says each fault of a cluster once for the step, however many domains
and batches it stopped.
"""

from __future__ import annotations

import threading
from typing import Any

from dns_lifecycle.core.run import StepReport

STEP = "release-instances"


class Causes:
    """Faults of a cluster, not of its domains (a wrong key, a silent server), as a step
    meets them: each cause -> how many domains it stopped and the first of them, so
    that the report says each once, however many domains and batches it hit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, str]] = {}

    def add(self, cause: str, domain: str, n: int = 1) -> None:
        with self._lock:
            count, first = self._seen.get(cause, (0, domain))
            self._seen[cause] = (count + n, first)

    def counted(self) -> dict[str, tuple[int, str]]:
        with self._lock:
            return dict(self._seen)

    def report_to(self, report: StepReport) -> None:
        """One failure line per cause, with its count."""
        for cause, (n, first) in self.counted().items():
            others = f" and {n - 1} other domain{'s' if n > 2 else ''}" if n > 1 else ""
            report.fail(f"{cause} ({n} domain{'s' if n > 1 else ''}: {first}{others})")


class SharedReport:
    """The report as the domains released at once write to it, one at a time; the
    clusters' faults go to ``causes`` (the step's, across its batches)."""

    def __init__(self, report: StepReport, causes: Causes | None = None) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._plan: list[dict[str, Any]] = []
        self.causes = causes if causes is not None else Causes()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._report.add(name, n)

    def fail(self, message: str) -> None:
        with self._lock:
            self._report.fail(message)

    def cause(self, cause: str, domain: str, n: int = 1) -> None:
        """A cluster's fault that stopped ``domain`` (and ``n - 1`` others like it)."""
        self.causes.add(cause, domain, n)

    def planned(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._plan.extend(rows)

    def plan(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._plan)

    def close(self) -> None:
        """Hand the plan to the report in domain order, whichever domain finished first."""
        self._report.planned(sorted(self._plan, key=lambda r: (r["instance"], r["domain"])))
        self._plan = []
