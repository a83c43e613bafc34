"""The stack's own floor for delivery: the run's messages, built before the clock starts,
sent by the same client libraries over the same connections from the same number of
processes, and nothing else (no ledger, no rendering, no Prefect). For bench/fleet.py:

    python bench/stack_floor.py prepare DATABASE_URL SEEDED_FOR OUT.pickle   # build the messages
    python bench/stack_floor.py smtp|sms|both OUT.pickle PROCESSES CONNECTIONS \
        CONCURRENCY SMTP_PORT SMS_PORT

``prepare`` reads the notices the measured run sent (sent after SEEDED_FOR, the day the
fleet was brought up to) from its database, renders each and builds what goes on the
wire: the MIME bytes and envelope of each email (``build_mime``, ``recipient_of``), and
each SendSms request's URL and signed headers (the backend's own signing). ``smtp``
splits the emails over PROCESSES processes, each sending its share with aiosmtplib over
its part of CONNECTIONS kept-open connections; ``sms`` splits the SMS over PROCESSES
processes, each posting its share through one aiohttp session with CONCURRENCY requests
in flight, as the SMS backend does; ``both`` sends both at once in each process, as a
delivery process does. Each prints one JSON line: messages sent, the wall time from
the first process starting to send to the last one finishing, and the CPU the processes
used while sending.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))


def prepare(url: str, seeded_for: str, out: str) -> None:
    from sqlalchemy import select

    from dns_lifecycle.channels.email import EmailMessage
    from dns_lifecycle.channels.email.message import build_mime, recipient_of, sender_parts
    from dns_lifecycle.channels.render import Renderer, sms_template_code
    from dns_lifecycle.channels.sms import SmsMessage
    from dns_lifecycle.channels.sms.aliyun import AliyunSmsBackend, canonical_query
    from dns_lifecycle.core.db import Database
    from dns_lifecycle.core.settings import Settings
    from models import Account, Notification

    settings = Settings(database_url=url)  # the rest from the environment
    db = Database(settings)
    try:
        with db.session() as session:
            rows = session.execute(
                select(
                    Notification.key,
                    Notification.channel,
                    Notification.kind,
                    Notification.context,
                    Account.email,
                    Account.phone,
                )
                .join(Account, Account.id == Notification.account_id)
                .where(
                    Notification.state == "sent",
                    Notification.sent_at > datetime.fromisoformat(seeded_for),
                )
                .order_by(Notification.id)
            ).all()
    finally:
        db.dispose()
    renderer = Renderer(settings.templates_dir)
    sms_backend = AliyunSmsBackend(settings)
    _, envelope_from = sender_parts(settings.email_from)
    date = datetime.now(UTC)
    emails, texts = [], []
    for key, channel, kind, context, email, phone in rows:
        if channel == "email":
            r = renderer.email(kind, context)
            message = EmailMessage(key, email, r.subject, r.text, r.html)
            emails.append(
                (recipient_of(message), build_mime(message, settings.email_from, date=date))
            )
        else:
            s = renderer.sms(kind, context)
            code = sms_template_code(settings.sms_template_prefix, kind, context)
            query = canonical_query(
                sms_backend.query_for(SmsMessage(key, phone, code, s.params, s.text))
            )
            url = f"{settings.aliyun_protocol}://{settings.aliyun_endpoint}/?{query}"
            texts.append((url, sms_backend._request_headers(query)))
    with open(out, "wb") as file:
        pickle.dump({"sender": envelope_from, "emails": emails, "sms": texts}, file)
    print(json.dumps({"emails": len(emails), "sms": len(texts)}))


def _share(items: list, part: int, parts: int) -> list:
    return items[part::parts]


async def _smtp_share(sender: str, emails: list, connections: int, port: int) -> int:
    import aiosmtplib

    queue = list(reversed(emails))

    async def connection() -> int:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.example")
        await smtp.connect()
        sent = 0
        while queue:
            recipient, data = queue.pop()
            await smtp.sendmail(sender, [recipient], data)
            sent += 1
        await smtp.quit()
        return sent

    return sum(await asyncio.gather(*(connection() for _ in range(connections))))


async def _sms_share(requests: list, concurrency: int) -> int:
    import aiohttp
    from yarl import URL

    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:

        async def one(url: str, headers: dict) -> int:
            async with slots, client.post(URL(url, encoded=True), headers=headers) as response:
                await response.read()
                return int(response.status == 200)

        return sum(await asyncio.gather(*(one(u, h) for u, h in requests)))


def worker(spec_json: str) -> None:
    """One process's share; waits for a line on stdin, then sends and reports."""
    spec = json.loads(spec_json)
    with open(spec["path"], "rb") as file:
        data = pickle.load(file)
    part, parts = spec["part"], spec["parts"]
    print("ready", flush=True)
    sys.stdin.readline()

    async def send() -> tuple[int, int]:
        jobs = []
        if spec["channel"] in ("smtp", "both"):
            emails = _share(data["emails"], part, parts)
            jobs.append(_smtp_share(data["sender"], emails, spec["connections"], spec["smtp_port"]))
        if spec["channel"] in ("sms", "both"):
            jobs.append(_sms_share(_share(data["sms"], part, parts), spec["concurrency"]))
        done = await asyncio.gather(*jobs)
        if spec["channel"] == "both":
            return done[0], done[1]
        return (done[0], 0) if spec["channel"] == "smtp" else (0, done[0])

    started, cpu = time.time(), time.process_time()
    emails, texts = asyncio.run(send())
    ended, cpu = time.time(), time.process_time() - cpu
    print(
        json.dumps(
            {"emails": emails, "sms": texts, "started": started, "ended": ended, "cpu": cpu}
        ),
        flush=True,
    )


def run(
    channel: str,
    path: str,
    processes: int,
    connections: int,
    concurrency: int,
    smtp_port: int,
    sms_port: int,
) -> dict:
    """``processes`` workers started together: ``connections`` SMTP connections in all,
    divided among them; ``concurrency`` SendSms requests in flight in each. ``channel``
    is smtp, sms or both (each process sends its share of both at once, as a delivery
    process does). Returns messages, wall seconds and rates."""
    procs = []
    for i in range(processes):
        spec = {
            "channel": channel,
            "path": path,
            "part": i,
            "parts": processes,
            "connections": max(
                1, connections // processes + (1 if i < connections % processes else 0)
            ),
            "concurrency": concurrency,
            "smtp_port": smtp_port,
            "sms_port": sms_port,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "worker", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        assert p.stdout is not None and p.stdin is not None
        if p.stdout.readline().strip() != "ready":
            sys.exit("bench: a floor process did not start")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    seconds = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    emails = sum(r["emails"] for r in reports)
    texts = sum(r["sms"] for r in reports)
    return {
        "emails": emails,
        "sms": texts,
        "seconds": seconds,
        # The client processes' CPU while sending (not their start or the pickle's load).
        "cpu_seconds": sum(r["cpu"] for r in reports),
        "email_rate": emails / seconds if seconds else 0.0,
        "sms_rate": texts / seconds if seconds else 0.0,
        "processes": processes,
        "connections": connections,
        "concurrency": concurrency,
    }


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "prepare":
        prepare(*argv[1:4])
    elif command == "worker":
        worker(argv[1])
    elif command in ("smtp", "sms", "both"):
        path, processes, connections, concurrency, smtp_port, sms_port = argv[1:7]
        result = run(
            command,
            path,
            int(processes),
            int(connections),
            int(concurrency),
            int(smtp_port),
            int(sms_port),
        )
        print(json.dumps(result))
    else:
        sys.exit(f"unknown command {command!r}: prepare, smtp, sms or both")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
