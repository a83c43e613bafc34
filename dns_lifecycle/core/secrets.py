"""Keeping secrets out of error texts.

A server that echoes what it was sent (a password, a token, an SMTP AUTH argument)
must not carry it into the ledger, the export, the console or the logs. Every error
text built from another system's answer goes through ``scrub`` with every form of
every secret that was sent to it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import SecretStr

MASK = "**********"


def reveal(secret: SecretStr | str | None) -> str:
    """The secret's value, or "" when there is none."""
    if secret is None:
        return ""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def scrub(text: str, secrets: Iterable[SecretStr | str | None]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``MASK``.

    Empty and missing secrets are skipped. Longer secrets are masked first, so a
    secret that contains another is masked whole."""
    values = sorted({v for v in map(reveal, secrets) if v}, key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASK)
    return text
