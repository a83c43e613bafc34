"""The webhook sink: POSTs each ticket as JSON to ``ticket_webhook_url``, for a help
desk to pick up:

- one request per ticket, with the header ``Idempotency-Key: <dedupe_key>`` and the
  same key in the body, so the receiver can drop a ticket it already has: a retry
  after a lost answer must not open a second ticket there;
- 2xx: sent;
- no answer (timeout, refused or dropped connection), 5xx, 408 or 429: tried again
  at once, up to ``ticket_webhook_attempts`` times, after 0.2 s, 0.5 s, 1 s, then
  2 s between tries; still failing, the ticket is ``transient`` and the next run
  sends it again;
- any other answer (4xx): ``permanent``; the receiver will not take it as it is.

When several tickets in a row end transient, the receiver is taken to be down and the
rest of the batch is reported transient without being tried, so a run with a dead
webhook does not spend minutes on timeouts.

Error texts carry the HTTP status and the start of the answer, never the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.tickets import TicketPayload
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.secrets import scrub
from dns_lifecycle.core.settings import Settings

# Pause before the 2nd, 3rd, 4th ... try; the last value repeats.
BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)
# Consecutive transient tickets after which the receiver is taken to be down.
GIVE_UP_AFTER = 3
# Statuses worth trying again: the receiver's failures, a request timeout, throttling.
_RETRY_STATUSES = frozenset({408, 429})
_SNIPPET = 300


class WebhookTicketSink:
    """POST each ticket to a webhook (see the module docstring)."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.ticket_webhook_url:
            raise InputError(
                "DNSL_TICKET_SINK is 'webhook' but DNSL_TICKET_WEBHOOK_URL is not set: set "
                "the URL, or DNSL_TICKET_SINK=database to keep tickets in the database only"
            )
        self.url = settings.ticket_webhook_url
        self.timeout = settings.ticket_webhook_timeout_seconds
        self.attempts = settings.ticket_webhook_attempts
        self._token = settings.ticket_webhook_token
        self._sleep = sleep

    def send(self, batch: list[TicketPayload]) -> list[DeliveryResult]:
        """One result per ticket, in order, keyed by its dedupe key."""
        results: list[DeliveryResult] = []
        failures_in_a_row = 0
        with httpx.Client(timeout=self.timeout) as client:
            for ticket in batch:
                if failures_in_a_row >= GIVE_UP_AFTER:
                    results.append(
                        DeliveryResult(
                            ticket.dedupe_key,
                            "transient",
                            f"not tried: the webhook failed for the {failures_in_a_row} "
                            "tickets before it; the next run sends it",
                        )
                    )
                    continue
                result = self._send_one(client, ticket)
                failures_in_a_row = failures_in_a_row + 1 if result.outcome == "transient" else 0
                results.append(result)
        return results

    def _send_one(self, client: httpx.Client, ticket: TicketPayload) -> DeliveryResult:
        headers = {"Idempotency-Key": ticket.dedupe_key, "Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        error = ""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self._sleep(BACKOFF_SECONDS[min(attempt - 2, len(BACKOFF_SECONDS) - 1)])
            try:
                response = client.post(self.url, json=ticket.to_json(), headers=headers)
            except httpx.TimeoutException:
                error = f"no answer within {self.timeout:g} s"
                continue
            except httpx.UnsupportedProtocol:
                return DeliveryResult(
                    ticket.dedupe_key,
                    "permanent",
                    "DNSL_TICKET_WEBHOOK_URL is not an http(s) URL: fix it",
                )
            except httpx.TransportError as exc:
                error = f"connection failed ({type(exc).__name__})"
                continue
            status = response.status_code
            if 200 <= status < 300:
                return DeliveryResult(ticket.dedupe_key, "sent")
            error = f"HTTP {status}: {self._snippet(response.text)}"
            if status < 500 and status not in _RETRY_STATUSES:
                return DeliveryResult(ticket.dedupe_key, "permanent", f"webhook refused: {error}")
        return DeliveryResult(
            ticket.dedupe_key,
            "transient",
            f"webhook failed {self.attempts} times, last: {error}; the next run sends it again",
        )

    def _snippet(self, text: str) -> str:
        text = scrub(" ".join(text.split()), [self._token])
        return (text[:_SNIPPET] + "...") if len(text) > _SNIPPET else (text or "(empty body)")
