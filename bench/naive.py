"""The naive way to send renewal reminders, as a yardstick for the benchmark only.

    python bench/naive.py METRICS.json AS_OF SAMPLE

One Prefect task per instance; each task reads its instance, writes its two ledger
rows, renders the notice, opens one SMTP connection for its one email and one SMS
client for its one text, and marks the rows. The decisions, templates, channels and
ledger are the project's own, so the only difference from the daily run is the shape:
per instance instead of per batch. Settings come from the environment, as for the
real run; the database must be one where the sample's reminders are still due.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from datetime import datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email.smtp import SmtpEmailBackend
from dns_lifecycle.channels.render import Renderer, sms_template_code
from dns_lifecycle.channels.sms import SmsMessage
from dns_lifecycle.channels.sms.aliyun import AliyunSmsBackend
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.notices import Reminder
from dns_lifecycle.lifecycle.pricing import period_price
from dns_lifecycle.lifecycle.reminders import reminder_windows
from dns_lifecycle.store.notifications import (
    TABLE,
    insert_ignoring_duplicates,
    load_outgoing,
    mark_results,
)
from dns_lifecycle.store.reminders import reminders_due
from dns_lifecycle.store.scan import row_addressee
from flows.common import resolve_as_of, wall_clock

SETTINGS = Settings()
ONE_CONNECTION = SETTINGS.model_copy(update={"smtp_connections": 1})
DB = Database(SETTINGS)
RENDERER = Renderer.for_settings(SETTINGS)


def _window(as_of: datetime, offset: int):
    return next(
        w
        for w in reminder_windows(as_of, SETTINGS.reminder_offsets_days)
        if w.offset_days == offset
    )


@task(name="naive-remind-one", cache_policy=NO_CACHE)
def remind_one(instance_id: str, offset: int, as_of: datetime) -> dict[str, int]:
    window = _window(as_of, offset)
    now = wall_clock()
    with DB.session() as session:
        r = session.execute(reminders_due(window, [instance_id])()).one_or_none()
        if r is None:
            return {}
        rows = Reminder.to(
            row_addressee(r),
            expires_at=r.expires_at,
            offset_days=offset,
            as_of=as_of,
            auto_renew=r.auto_renew,
            amount=period_price(r.monthly_price, r.yearly_price, r.billing_cycle),
        ).rows(now)
        ids = insert_ignoring_duplicates(session, TABLE, rows, "key")
        outgoing = load_outgoing(session, ids)
        session.commit()

    results = []
    for row in outgoing:
        if row.channel == "email":
            rendered = RENDERER.email(row.kind, row.context, queued_at=row.created_at)
            message = EmailMessage(
                row.key, row.email, rendered.subject, rendered.text, rendered.html
            )
            # A new backend per message: one SMTP connection per message.
            results += asyncio.run(SmtpEmailBackend(ONE_CONNECTION).send([message]))
        else:
            sms = RENDERER.sms(row.kind, row.context, queued_at=row.created_at)
            code = sms_template_code(SETTINGS.sms_template_prefix, row.kind, row.context)
            text = SmsMessage(row.key, row.phone, code, sms.params, sms.text)
            results += asyncio.run(AliyunSmsBackend(SETTINGS).send([text]))
    with DB.session() as session:
        mark_results(session, results, {row.key: row.id for row in outgoing}, wall_clock())
        session.commit()
    counts: dict[str, int] = {}
    channel_of = {row.key: row.channel for row in outgoing}
    for result in results:
        name = f"{channel_of[result.key]}_{result.outcome}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def pick_sample(as_of: datetime, sample: int) -> list[tuple[str, int]]:
    """The first ``sample`` instances with a reminder due, nearest window first."""
    picks: list[tuple[str, int]] = []
    for window in reminder_windows(as_of, SETTINGS.reminder_offsets_days):
        stmt = reminders_due(window, None)().limit(sample - len(picks))
        with DB.session() as session:
            picks += [(r.id, window.offset_days) for r in session.execute(stmt)]
        if len(picks) >= sample:
            break
    return picks


@flow(name="naive-reminders")
def naive_reminders(as_of: str, sample: int) -> dict:
    moment = resolve_as_of(as_of, wall_clock)
    picks = pick_sample(moment, sample)
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for instance_id, offset in picks:
        for name, n in remind_one(instance_id, offset, moment).items():
            counts[name] = counts.get(name, 0) + n
    return {"instances": len(picks), "seconds": time.perf_counter() - started, "counts": counts}


def main() -> int:
    metrics_path, as_of, sample = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started = time.perf_counter()
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        metrics = naive_reminders(as_of, sample)
    metrics["wall_seconds"] = time.perf_counter() - started
    metrics["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(metrics_path, "w", encoding="utf-8") as file:
        json.dump(metrics, file, indent=2)
    DB.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
