"""What the commands of ``dns-lifecycle`` share: a session or an on-demand run, output
files and JSON, counted nouns, the argument types, and the parser that refuses in one
line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from dns_lifecycle.core.errors import InputError, shortened
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.renewal import MAX_PERIODS


class Progress:
    """A one-line progress counter on a terminal; silent when output is redirected."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            pct = 100 * done / total if total else 100
            self.stream.write(f"\r{self.label}: {done:,}/{total:,} ({pct:5.1f}%)")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


@contextmanager
def _session(settings: Settings) -> Iterator[Any]:
    """A session on the configured database, for one command."""
    from dns_lifecycle.core.db import Database

    db = Database(settings)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


@contextmanager
def _output_file(path: str) -> Iterator[Any]:
    """``path`` opened for writing, or an InputError that says why it cannot be written.

    A file is written beside itself under a temporary name and renamed into place once
    complete: a failed export leaves no partial file, and an earlier one stays as it was.
    What is not a file (a device, a pipe, /dev/stdout) is written in place."""
    target = Path(path)
    try:
        if target.exists() and not target.is_file():
            with open(target, "w", encoding="utf-8") as out:
                yield out
            return
        yield from _replacing(target.resolve())
    except BrokenPipeError:
        raise  # a reader that went away (--output /dev/stdout | head): main ends quietly
    except OSError as exc:
        raise InputError(
            f"cannot write {path}: {exc.strerror or exc}; give a file in an existing, "
            "writable folder with room for it"
        ) from None


def _replacing(target: Path) -> Iterator[Any]:
    """A temporary file beside ``target``, renamed onto it once the caller is done."""
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            # The permissions the file would have had if opened in place: its own when
            # it exists, else those of a new file (mkstemp's are owner-only).
            if target.exists():
                mode = target.stat().st_mode & 0o777
            else:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _counts(counts: dict[str, int]) -> str:
    """'1 edition, 3 clusters, 2,000 instances'."""
    return ", ".join(counted(n, noun) for noun, n in counts.items())


# What the commands count, singular and plural; sections and tables are named either way.
_PLURALS = {
    noun: noun + "s"
    for noun in (
        "edition",
        "cluster",
        "account",
        "instance",
        "domain",
        "record",
        "order",
        "notification",
        "notice",
        "ticket",
        "top_up",
    )
}
_SINGULARS = {plural: singular for singular, plural in _PLURALS.items()}


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun`` (given singular or plural) agreeing: '1 edition', '3 editions',
    '2,000 instances', '0 tickets'."""
    singular = _SINGULARS.get(noun, noun)
    word = singular if n == 1 else _PLURALS.get(singular, singular + "s")
    return f"{n:,} {word.replace('_', '-')}"


# The largest id a row can have (the id columns are SQL INTEGER: 32 bits on PostgreSQL),
# the largest count or seed (64 bits), and the most rows a listing prints.
MAX_ROW_ID = 2**31 - 1
MAX_WHOLE = 2**63 - 1
MAX_LIMIT = 1_000_000


def _whole_number(low: int, high: int, bounds: str | None = None) -> Callable[[str], int]:
    """An argument type: a whole number from ``low`` to ``high``, written in the digits
    0-9 only. int() would also take '1_0', ' 10' or '+10', and a slip of a finger would
    then buy ten times as much. ``bounds`` says the range when the number means more
    than its value (periods of a monthly or a yearly subscription)."""

    def parse(text: str) -> int:
        shown = shortened(text)
        if not (text.isascii() and text.isdigit()):
            raise argparse.ArgumentTypeError(
                f"{shown!r} is not a whole number: write it in the digits 0-9 only, e.g. {low}"
            )
        # Compared as text first: int() refuses numbers of more than 4,300 digits.
        value = int(text) if len(text.lstrip("0")) <= len(str(high)) else high + 1
        if value < low:
            raise argparse.ArgumentTypeError(
                f"{shown} is too small: {bounds or f'give at least {low}'}"
            )
        if value > high:
            raise argparse.ArgumentTypeError(
                f"{shown} is too large: {bounds or f'give at most {high:,}'}"
            )
        return value

    return parse


_positive_int = _whole_number(1, MAX_WHOLE)
# The periods of a manual renewal: the cycle's own limit is checked once the instance is
# read; the parser already refuses what no cycle allows, saying both limits.
_periods = _whole_number(
    1,
    max(MAX_PERIODS.values()),
    f"give 1-{MAX_PERIODS['monthly']} months for a monthly subscription, "
    f"1-{MAX_PERIODS['yearly']} years for a yearly one",
)


def _an_id(text: str) -> str:
    """An argument type: an id that is not empty (an empty one would select everything)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty id names nothing: give one, e.g. inst-0000001, or leave the option out"
        )
    return text


def _a_path(what: str, example: str) -> Callable[[str], str]:
    """An argument type: a path that is not empty. An empty one would be taken for the
    current folder, or for the option left out."""

    def parse(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(
                f"an empty path names no {what}: give one, e.g. {example}"
            )
        return text

    return parse


def _amount(text: str) -> Decimal:
    """An argument type: an amount of money written in the digits 0-9, with at most 2
    decimal places. Whether it may be added is the rule's to say (a positive amount
    that the balance can hold)."""
    from models.types import MONEY_MAX

    shown = shortened(text)
    whole, point, cents = text.partition(".")
    if not (
        whole.isascii()
        and whole.isdigit()
        and (not point or (cents.isascii() and cents.isdigit() and len(cents) <= 2))
    ):
        raise argparse.ArgumentTypeError(
            f"{shown!r} is not an amount: write it in the digits 0-9 with at most 2 decimal "
            "places and no sign, e.g. 50.00"
        )
    if len(whole.lstrip("0")) > len(str(int(MONEY_MAX))):
        raise argparse.ArgumentTypeError(
            f"{shown} is too large: a balance holds at most {MONEY_MAX:,}"
        )
    return Decimal(text).quantize(Decimal("0.01"))


def _request_key(text: str) -> str:
    """An argument type: a request key as the Prefect flows take it (the same type)."""
    from pydantic import TypeAdapter

    from flows.params import RequestKeyText

    if not text:
        raise argparse.ArgumentTypeError(
            "an empty request key would not make a repeat safe: give a key, e.g. a UUID"
        )
    try:
        return TypeAdapter(RequestKeyText).validate_python(text)
    except ValidationError:
        shown = shortened(text)
        if len(text) > 64:
            problem = f"{len(text)} characters, more than 64"
        else:
            problem = "a space or a character other than printable ASCII"
        raise argparse.ArgumentTypeError(
            f"request key {shown!r} has {problem}: give a key of up to 64 letters, digits "
            "and punctuation, e.g. a UUID"
        ) from None


class _Parser(argparse.ArgumentParser):
    """Refuses bad arguments in one line, as every other refusal of the command does,
    and takes options only as written in full: with abbreviations, `renew --period 1`
    would be read as `--periods 1`, and a future option could change what an old
    abbreviation means. Subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _on_demand(settings: Settings, as_of: datetime | None = None, *, tells: bool = True):
    """The run of one on-demand change; ``tells``: the change sends a notice, so the
    channels are checked first."""
    from flows.common import open_run

    if tells:
        _check_channels(settings)
    return open_run(as_of, False, None, settings=settings)


def _check_channels(settings: Settings) -> None:
    """Build the email and SMS backends once, so that unusable settings (an outbox
    folder that cannot be written, a missing key) are refused in one line before
    anything changes, not once per message after."""
    from dns_lifecycle.channels.email import email_backend
    from dns_lifecycle.channels.sms import sms_backend

    email_backend(settings)
    sms_backend(settings)
