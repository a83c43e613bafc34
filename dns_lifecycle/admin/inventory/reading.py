"""Reading an inventory file: strict JSON, every failure an ``InputError`` naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dns_lifecycle.admin.inventory.values import show
from dns_lifecycle.core.errors import InputError

__all__ = ["read_inventory_file"]

# No value of an inventory needs more digits; longer numbers are refused before Python
# converts them (which costs time and, past its own limit, fails with its own advice).
MAX_DIGITS = 100


class _LongNumber(ValueError):
    def __init__(self, digits: str):
        super().__init__(digits)
        self.digits = digits


def read_inventory_file(path: Path) -> Any:
    """Parse a JSON file; any failure is an ``InputError`` that names the file.

    Stricter than ``json.load``: a key given twice in one object and the non-standard
    constants ``NaN`` and ``Infinity`` are refused rather than read loosely.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give the path of an inventory JSON file") from None
    except IsADirectoryError:
        raise InputError(
            f"{path}: is a directory; give the path of an inventory JSON file"
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 JSON"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the path") from None

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number; write the value as a string")

    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"the key {show(key)} appears twice in one object")
            result[key] = value
        return result

    def whole_number(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_DIGITS:
            raise _LongNumber(digits)
        return int(digits)

    try:
        return json.loads(
            text,
            parse_constant=refuse_constant,
            parse_int=whole_number,
            object_pairs_hook=refuse_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            "fix the file and try again"
        ) from None
    except _LongNumber as exc:
        start = text.find(exc.digits)
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        raise InputError(
            f"{path}: a number of {len(exc.digits.lstrip('-'))} digits at line {line}, "
            f"column {column}; no value of an inventory has more than {MAX_DIGITS}: fix the file"
        ) from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be an inventory; fix the file") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a valid inventory JSON file: {exc}") from None
