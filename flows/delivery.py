"""Deliver pending ledger rows: claim a batch, render, send, mark.

Shared by every step: a step writes its notices to the ledger, then delivers what is
pending. Each row is tried at most once per call (the scan moves forward by id), so a
transient failure waits for the next run instead of spinning; a crash after sending
and before marking repeats at most that one batch, and each email carries a
Message-ID derived from its ledger key so a repeat is recognisable.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.email import EmailMessage, email_backend
from dns_lifecycle.channels.render import Renderer, sms_template_code
from dns_lifecycle.channels.sms import SmsMessage, sms_backend
from dns_lifecycle.store.notifications import (
    PendingFilter,
    claim_pending,
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

        sent_emails, sent_sms = run_async(_send_both(emails, email_batch, texts, sms_batch))
        results.extend(sent_emails)
        results.extend(sent_sms)

        channel_of = {row.key: row.channel for row in rows}
        for result in results:
            channel = channel_of[result.key]
            tally.add(f"{channel}_{result.outcome}")
            if result.outcome != "sent":
                # "key (outcome): why"; a key followed by a colon would end in ":email:",
                # which Prefect's console shows as an emoji.
                tally.fail(f"{result.key} ({result.outcome}): {result.error}")

        with ctx.db.session() as session:
            mark_results(session, results, {row.key: row.id for row in rows}, ctx.clock())
            session.commit()


async def _send_both(emails, email_batch, texts, sms_batch):
    """Email and SMS go out side by side: they wait on different servers."""
    return await asyncio.gather(emails.send(email_batch), texts.send(sms_batch))


@task(name="deliver-notifications", cache_policy=NO_CACHE)
def deliver_task(ctx: RunContext, filt: PendingFilter = ALL_PENDING) -> Tally:
    return deliver_pending(ctx, filt)
