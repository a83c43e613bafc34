"""Rendering and sending notices, in the run's own process or in a pool of processes.

``deliver(notices, ...)`` renders each notice for its channel and sends the batch
through the settings' email and SMS backends, email and SMS side by side, reporting
each outcome through ``on_result`` as it becomes known.

``DeliveryPool`` does the same in ``delivery_processes`` worker processes, each with
its own backends: its share of the SMTP connections (``smtp_connections`` is the total,
divided among the processes) and its own SMS session. Rendering and MIME building are
CPU work that one process cannot spread over several cores; the pool can. The run's
process claims the ledger rows and hands each worker a share; the worker records each
outcome in the ledger as it arrives, as the run's own process does when it delivers
alone (flows/delivery.py gives it the recorder), and reports what it recorded. Each
row is claimed once, sent by one worker and recorded by that worker.

A worker dies with the run's process (``core.workers``): a killed run leaves no worker
sending on, and only the messages in flight can be sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol, cast

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.email import EmailMessage, email_backend
from dns_lifecycle.channels.render import Renderer, sms_template_code
from dns_lifecycle.channels.sms import SmsMessage, sms_backend
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.core.workers import CONTEXT, Worker, start_worker

# A batch is split over the pool only if each process gets at least this many notices:
# below that, handing them out costs more than rendering them here.
MIN_PER_PROCESS = 50


@dataclass(frozen=True)
class OutgoingNotice:
    """A claimed ledger row, with the address it goes to."""

    key: str
    channel: str  # email | sms
    kind: str
    context: dict[str, Any]
    email: str
    phone: str
    created_at: datetime  # what a context without as_of speaks from
    # The moment of the run that sends it: its days left are counted from there when
    # that is later than the moment it was decided (it went out late).
    sent_as_of: datetime | None = None


def _render(
    notices: Sequence[OutgoingNotice], renderer: Renderer, settings: Settings
) -> tuple[list[EmailMessage], list[SmsMessage], list[DeliveryResult]]:
    emails: list[EmailMessage] = []
    texts: list[SmsMessage] = []
    refused: list[DeliveryResult] = []
    for notice in notices:
        try:
            if notice.channel == "email":
                r = renderer.email(
                    notice.kind, notice.context, queued_at=notice.created_at, at=notice.sent_as_of
                )
                emails.append(EmailMessage(notice.key, notice.email, r.subject, r.text, r.html))
            else:
                s = renderer.sms(
                    notice.kind, notice.context, queued_at=notice.created_at, at=notice.sent_as_of
                )
                code = sms_template_code(settings.sms_template_prefix, notice.kind, notice.context)
                texts.append(SmsMessage(notice.key, notice.phone, code, s.params, s.text))
        except Exception as exc:  # a notice that cannot be rendered needs a person
            refused.append(DeliveryResult(notice.key, "permanent", f"cannot render: {exc}"))
    return emails, texts, refused


async def deliver(
    notices: Sequence[OutgoingNotice],
    *,
    renderer: Renderer,
    settings: Settings,
    emails: Any,
    texts: Any,
    on_result: ResultSink,
) -> list[DeliveryResult]:
    """Render and send ``notices`` with the backends ``emails`` and ``texts``; returns
    every outcome (also reported one by one through ``on_result``)."""
    email_batch, sms_batch, refused = _render(notices, renderer, settings)
    for result in refused:
        on_result(result)
    # Email and SMS go out side by side: they wait on different servers.
    sent_emails, sent_sms = await asyncio.gather(
        emails.send(email_batch, on_result=on_result),
        texts.send(sms_batch, on_result=on_result),
    )
    return [*refused, *sent_emails, *sent_sms]


# ------------------------------------------------------------------ the worker side


class Recording(Protocol):
    """Where a worker records its outcomes: ``add`` each as it arrives (in the event
    loop), ``finish`` with every outcome of the share once it is sent."""

    def add(self, result: DeliveryResult) -> None: ...

    def finish(self, results: list[DeliveryResult]) -> None: ...


# (settings, ledger ids by key, clock offset, report, write lock) -> a Recording;
# ``report(group)`` is to be called with each group once it is recorded; the lock is
# shared by the pool's workers, for a database that takes one writer at a time.
RecorderFactory = Callable[
    [Settings, dict[str, int], timedelta, Callable[[list[DeliveryResult]], None], Any],
    Recording,
]


def _serve(
    jobs: Connection, settings: Settings, recorder: RecorderFactory, write_lock: Any
) -> None:
    """A worker: deliver and record each share it is given, in turn, reporting what it
    recorded and when each share is done."""
    renderer = Renderer.for_settings(settings)
    emails, texts = email_backend(settings), sms_backend(settings)
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(jobs, inbox), daemon=True).start()
    while (job := inbox.get()) is not None:
        notices, ids_by_key, clock_offset = job
        try:
            recording = recorder(
                settings,
                ids_by_key,
                clock_offset,
                lambda group: jobs.send(("recorded", group)),
                write_lock,
            )
            results = asyncio.run(
                deliver(
                    notices,
                    renderer=renderer,
                    settings=settings,
                    emails=emails,
                    texts=texts,
                    on_result=recording.add,
                )
            )
            recording.finish(results)
        except BaseException as exc:
            # Reported, and the worker ends: the shares queued behind this one are not
            # sent (they stay leased); the run's process decides what comes next.
            jobs.send(("failed", f"{type(exc).__name__}: {exc}"))
            return
        jobs.send(("done", None))


def _receive(jobs: Connection, inbox: queue.SimpleQueue) -> None:
    """Take each share off the pipe as it comes, so that the run's process can hand out
    the next one while this one is sent (and never waits on a full pipe while the worker
    writes to it); ``None`` in ``inbox`` when there are no more."""
    with contextlib.suppress(EOFError, OSError):
        while (job := jobs.recv()) is not None:
            inbox.put(job)
    inbox.put(None)


# ------------------------------------------------------------------ the run's side


def deal(notices: Sequence[OutgoingNotice], parts: int) -> list[list[OutgoingNotice]]:
    """``notices`` dealt out to ``parts`` workers, each channel dealt on its own, so that
    every worker gets its part of the emails and its part of the SMS. (Dealt in ledger
    order, where an instance's email and SMS rows alternate, one worker would get every
    email and the other every SMS: their costs differ, and the cheaper one would wait.)"""
    shares: list[list[OutgoingNotice]] = [[] for _ in range(parts)]
    dealt: dict[str, int] = {}
    for notice in notices:
        turn = dealt.get(notice.channel, 0)
        shares[turn % parts].append(notice)
        dealt[notice.channel] = turn + 1
    return shares


class DeliveryPool:
    """``processes`` worker processes that render, send and record; see the module."""

    def __init__(self, settings: Settings, processes: int, recorder: RecorderFactory) -> None:
        self.settings = settings
        self.processes = processes
        total = settings.smtp_connections
        # Kept for the pool's life: the workers open it by name, on their own time.
        # The turn the workers' writes on SQLite take (core.workers.shared_turn).
        self.write_lock = CONTEXT.Lock()
        self._workers: list[Worker] = []
        for i in range(processes):
            share = max(1, total // processes + (1 if i < total % processes else 0))
            own = settings.model_copy(update={"smtp_connections": share})
            self._workers.append(
                start_worker(
                    _serve,
                    (own, recorder, self.write_lock),
                    name=f"dns-lifecycle-delivery-{i + 1}",
                )
            )
        # Shares handed to each worker and not finished yet, by its pipe.
        self._unfinished: dict[Connection, int] = {w.jobs: 0 for w in self._workers}
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return all(w.process.is_alive() for w in self._workers)

    def submit(
        self, notices: Sequence[OutgoingNotice], ids_by_key: dict[str, int], clock_offset: timedelta
    ) -> None:
        """Hand ``notices`` out to the workers (``clock_offset``: how far the run's clock is
        from the wall clock, for the times recorded), behind whatever they have not
        finished yet; ``wait`` collects what they record."""
        for worker, share in zip(self._workers, deal(notices, self.processes), strict=True):
            if share:
                # A worker that has ended cannot take it (a broken pipe). Counted as
                # handed all the same: ``wait`` then reads the end of its pipe and says
                # that the worker ended, and the share stays leased, unsent.
                with contextlib.suppress(OSError):
                    worker.jobs.send(
                        (share, {n.key: ids_by_key[n.key] for n in share}, clock_offset)
                    )
                self._unfinished[worker.jobs] += 1

    def wait(self, unfinished: int = 0) -> tuple[list[DeliveryResult], str | None]:
        """Collect what the workers record until each has at most ``unfinished`` shares
        left. Returns every outcome recorded meanwhile, and what went wrong if a worker
        ended in the middle of its shares (the notices it had not recorded then have no
        outcome: unknown whether they were sent); the others are then waited for to the
        end of theirs."""
        results: list[DeliveryResult] = []
        lost: list[str] = []
        number = {w.jobs: i + 1 for i, w in enumerate(self._workers)}
        try:
            while True:
                limit = 0 if lost else unfinished
                busy = [jobs for jobs, n in self._unfinished.items() if n > limit]
                if not busy:
                    return results, "; ".join(lost) or None
                for ready in wait(busy):
                    jobs = cast(Connection, ready)
                    while self._unfinished[jobs] and jobs.poll():
                        try:
                            kind, payload = jobs.recv()
                        except (EOFError, OSError):
                            kind, payload = "ended", None
                        if kind == "recorded":
                            results.extend(payload)
                        elif kind == "done":
                            self._unfinished[jobs] -= 1
                        else:
                            self._unfinished[jobs] = 0
                            lost.append(
                                f"delivery process {number[jobs]} failed: {payload}"
                                if kind == "failed"
                                else f"delivery process {number[jobs]} ended unexpectedly"
                            )
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        for worker in self._workers:
            worker.kill()
        self._workers = []

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []
