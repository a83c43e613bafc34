"""The code type-checks: mypy, as pyproject.toml configures it, over dns_lifecycle,
flows and models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
