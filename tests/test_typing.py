"""The code type-checks: mypy, as pyproject.toml configures it, over dns_lifecycle,
flows and models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.xfail(
    strict=False,
    reason=(
        "90 mypy errors remain (SQLModel columns used as SQL expressions without col(), "
        "session.get() results used without a None check, Model.__table__), all in "
        "modules being rewritten: admin/inventory.py 42, "
        "store/subscriptions.py 14, flows/expire.py 11, flows/verify.py 6, "
        "flows/reminders.py 6, store/release.py 5, flows/auto_renew.py 3, "
        "flows/release.py 2, channels/render.py 1"
    ),
)
def test_mypy_finds_no_error():
    """mypy reports no error in the packages that pyproject.toml names."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-pretty", "--hide-error-context"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
