"""Deliver pending ledger rows: claim a batch, render, send, mark each as it is answered.

Shared by every step: a step writes its notices to the ledger, then delivers what is
pending. Each row is tried at most once per call (the scan moves forward by id), so a
transient failure waits for the next run instead of spinning.

Outcomes are recorded as the replies arrive, not at the end of a batch: the backends
report each one (``on_result``), and the ones that arrived while the last group was
being written go together in the next, so the groups stay as small as the traffic
allows. A crash (SIGKILL) can then repeat only the messages in flight, whose reply had
not been recorded yet (about one per SMTP connection and per SMS request in flight),
never the whole batch; each email carries a Message-ID derived from its ledger key so
a repeat is recognisable. Rows another run holds (claimed, lease not over) are left to
it, and the run says how many and until when.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.email import EmailMessage, email_backend
from dns_lifecycle.channels.render import Renderer, sms_template_code
from dns_lifecycle.channels.sms import SmsMessage, sms_backend
from dns_lifecycle.core.db import Database
from dns_lifecycle.store.notifications import (
    PendingFilter,
    claim_pending,
    commit_without_waiting_for_disk,
    held_by_other_runs,
    load_outgoing,
    mark_results,
    skip_overtaken,
)
from flows.common import RunContext, Tally, run_async

LEASE = timedelta(minutes=15)
ALL_PENDING = PendingFilter()


def deliver_pending(ctx: RunContext, filt: PendingFilter = ALL_PENDING) -> Tally:
    """Send every pending notice matching ``filt``; returns what happened per channel."""
    tally = Tally()
    settings = ctx.settings
    renderer = Renderer.for_settings(settings)
    # A dry run goes through the same motions; its backends only count.
    emails = email_backend(settings, dry_run=ctx.dry_run)
    texts = sms_backend(settings, dry_run=ctx.dry_run)
    token = uuid.uuid4().hex
    after_id = 0
    while True:
        now = ctx.clock()
        with ctx.db.session() as session:
            ids = claim_pending(
                session,
                token=token,
                now=now,
                lease_until=now + LEASE,
                after_id=after_id,
                limit=ctx.batch_size,
                filt=filt,
            )
            rows = load_outgoing(session, ids)
            stale = skip_overtaken(session, ids, as_of=ctx.as_of, grace_days=settings.grace_days)
            session.commit()
        if not rows:
            report_held_rows(ctx, filt, token, tally)
            return tally
        after_id = rows[-1].id
        # Overtaken since it was queued (a later notice, a renewal, the expiry): not sent.
        tally.add("notices_skipped_overtaken", len(stale))
        rows = [row for row in rows if row.id not in stale]

        email_batch: list[EmailMessage] = []
        sms_batch: list[SmsMessage] = []
        results: list[DeliveryResult] = []
        for row in rows:
            try:
                if row.channel == "email":
                    rendered = renderer.email(row.kind, row.context, queued_at=row.created_at)
                    email_batch.append(
                        EmailMessage(
                            row.key, row.email, rendered.subject, rendered.text, rendered.html
                        )
                    )
                else:
                    sms = renderer.sms(row.kind, row.context, queued_at=row.created_at)
                    code = sms_template_code(settings.sms_template_prefix, row.kind, row.context)
                    sms_batch.append(SmsMessage(row.key, row.phone, code, sms.params, sms.text))
            except Exception as exc:  # a notice that cannot be rendered needs a person
                results.append(DeliveryResult(row.key, "permanent", f"cannot render: {exc}"))

        recorder = Recorder(ctx.db, {row.key: row.id for row in rows}, ctx.clock)
        recorder.record(results)  # the ones that could not be rendered
        sent_emails, sent_sms = run_async(
            _send_both(emails, email_batch, texts, sms_batch, recorder)
        )
        results.extend(sent_emails)
        results.extend(sent_sms)
        recorder.finish(results)

        channel_of = {row.key: row.channel for row in rows}
        for result in results:
            channel = channel_of[result.key]
            tally.add(f"{channel}_{result.outcome}")
            if result.outcome != "sent":
                # "key (outcome): why"; a key followed by a colon would end in ":email:",
                # which Prefect's console shows as an emoji.
                tally.fail(f"{result.key} ({result.outcome}): {result.error}")


def report_held_rows(ctx: RunContext, filt: PendingFilter, token: str, tally: Tally) -> None:
    """Say how many pending rows another run holds, and until when: they are its to
    send (it may be alive), and the first run after their lease sends them if not."""
    now = ctx.clock()
    with ctx.db.session() as session:
        held, until = held_by_other_runs(session, token=token, now=now, filt=filt)
    if not held:
        return
    note = (
        f"{held:,} pending notice(s) are held by another run until {until:%Y-%m-%d %H:%M:%S} "
        "UTC (its delivery lease): left to it; if that run has died, the first run after "
        "that time sends them"
    )
    tally.add("held_by_another_run", held)
    tally.note(note)
    _logger().warning(note)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # a plain call, outside a Prefect run
        return logging.getLogger(__name__)


class Recorder:
    """Marks delivery outcomes in the ledger as they arrive, a few rows per transaction.

    ``add`` is the backends' ``on_result``: it runs in the event loop and only queues
    the result; the write happens at the loop's next turn and takes every result queued
    by then. While one group is written the loop waits, so the replies that arrive
    meanwhile form the next group: at most about one per connection in flight.
    """

    def __init__(
        self, db: Database, ids_by_key: dict[str, int], clock: Callable[[], datetime]
    ) -> None:
        self._db, self._ids, self._clock = db, ids_by_key, clock
        self._queued: list[DeliveryResult] = []
        self._recorded: set[str] = set()
        self._scheduled = False
        self._error: BaseException | None = None

    def add(self, result: DeliveryResult) -> None:
        self._queued.append(result)
        if not self._scheduled and self._error is None:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._write_queued)

    def record(self, results: list[DeliveryResult]) -> None:
        """Write ``results`` now (and anything queued), in one transaction."""
        self._queued.extend(results)
        self._write_queued()

    def finish(self, results: list[DeliveryResult]) -> None:
        """Write whatever of ``results`` (the batch's) is not recorded yet."""
        if self._error is not None:
            raise self._error
        self.record([r for r in results if r.key not in self._recorded])
        if self._error is not None:
            raise self._error

    def _write_queued(self) -> None:
        self._scheduled = False
        group, self._queued = self._queued, []
        group = [r for r in group if r.key not in self._recorded]
        if not group or self._error is not None:
            return
        try:
            with self._db.session() as session:
                # A crash of this process loses no committed mark; only a crash of the
                # database server could lose the last few, whose messages would then
                # be sent again (with the same Message-ID).
                commit_without_waiting_for_disk(session)
                mark_results(session, group, self._ids, self._clock())
                session.commit()
        except BaseException as exc:  # raised again by finish(), outside the loop
            self._error = exc
            return
        self._recorded.update(r.key for r in group)


async def _send_both(emails, email_batch, texts, sms_batch, recorder: Recorder):
    """Email and SMS go out side by side: they wait on different servers."""
    return await asyncio.gather(
        emails.send(email_batch, on_result=recorder.add),
        texts.send(sms_batch, on_result=recorder.add),
    )


@task(name="deliver-notifications", cache_policy=NO_CACHE)
def deliver_task(ctx: RunContext, filt: PendingFilter = ALL_PENDING) -> Tally:
    return deliver_pending(ctx, filt)
