"""`scripts/venv.sh`, sourced by hand from any folder: it works on its own checkout and
never closes the caller's shell."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dns_lifecycle.core.settings import REPO_ROOT


def _checkout(tmp_path: Path, *, with_venv: bool, installed: bool = True) -> Path:
    """A checkout holding only the script and pyproject.toml; with a .venv whose python
    is a stand-in (that fails when the project is not ``installed``), or with none."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "venv.sh", root / "scripts" / "venv.sh")
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    if with_venv:
        python = root / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f"#!/bin/sh\nexit {0 if installed else 1}\n")
        python.chmod(0o755)
        if installed:
            shutil.copy(root / "pyproject.toml", root / ".venv" / ".installed-from")
    return root


def _bash(script: str, cwd: Path, python: str = "false") -> subprocess.CompletedProcess:
    # PYTHON=false: nothing is ever installed (no network), and creating a .venv fails.
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHON": python},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sourced_from_another_folder_it_uses_its_own_checkout(tmp_path):
    """Sourced from elsewhere, it puts the checkout's .venv on the PATH, makes no .venv
    in the current folder and leaves the current folder as it was."""
    root = _checkout(tmp_path, with_venv=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _bash(f"source {root}/scripts/venv.sh && command -v python && pwd", elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(root / ".venv" / "bin" / "python"), str(elsewhere)]
    assert list(elsewhere.iterdir()) == []


def test_a_failed_venv_when_sourced_returns_to_the_shell_instead_of_closing_it(tmp_path):
    """A .venv that cannot be made returns 1 to the shell that sourced the script, which
    goes on."""
    root = _checkout(tmp_path, with_venv=False)
    done = _bash(f"source {root}/scripts/venv.sh; echo returned $?", tmp_path)
    assert done.returncode == 0
    assert done.stdout == "returned 1\n"
    assert f"creating {root}/.venv with false failed" in done.stderr


def test_a_failed_install_when_sourced_returns_to_the_shell_instead_of_closing_it(tmp_path):
    """An install that fails returns 1 to the shell that sourced the script, which goes
    on, and says where the log is."""
    root = _checkout(tmp_path, with_venv=True, installed=False)
    done = _bash(f"source {root}/scripts/venv.sh; echo returned $?", tmp_path)
    assert done.returncode == 0
    assert done.stdout == "returned 1\n"
    assert f"the whole log is {root}/.venv/install.log" in done.stderr


def test_a_failure_when_run_as_a_script_exits_1(tmp_path):
    """Run rather than sourced, a failed set-up exits 1."""
    root = _checkout(tmp_path, with_venv=False)
    done = _bash(f"bash {root}/scripts/venv.sh; echo exited $?", tmp_path)
    assert done.stdout == "exited 1\n"
