"""A production worker needs no checkout: Prefect, the pool, a settings block and a
repository to clone.

A Prefect server on loopback; the project (this working tree) in a bare git repository
reached by a file:// URL; a worker started in an empty folder from a virtual environment
with only Prefect installed, whose environment holds PREFECT_API_URL, PREFECT_HOME and
PATH (and pip's PIP_NO_COMPILE, for speed) and nothing of the project's. The daily
deployment, deployed with prefect.yaml's production pull steps, runs there with every
setting from the block, and its reminder reaches this test's SMTP server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import prefect
import pytest
from pydantic import SecretStr

from dns_lifecycle.core.settings import REPO_ROOT, Settings
from dns_lifecycle.core.settings_block import save_block
from tests.factories import make_account, make_catalog, make_instance
from tests.smtp_server import SmtpTestServer, free_port

pytestmark = pytest.mark.slow(160)

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SMTP_LOGIN = ("mailer", "wrk-Pa55-9Tz")


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done


def _bare_repository(into: Path) -> str:
    """This working tree as it is (uncommitted changes included), committed into a
    fresh bare repository on branch main; its file:// URL."""
    tree = into / "tree"
    listed = _run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    _run([*git, "init", "-q", "-b", "main", str(tree)])
    _run([*git, "add", "-A"], cwd=tree)
    _run([*git, "commit", "-q", "-m", "snapshot"], cwd=tree)
    bare = into / "dns-lifecycle.git"
    _run(["git", "clone", "-q", "--bare", str(tree), str(bare)])
    return f"file://{bare}"


def _wait_healthy(api: str, server: subprocess.Popen) -> None:
    for _ in range(240):
        assert server.poll() is None, "the Prefect server exited"
        try:
            urllib.request.urlopen(f"{api}/health", timeout=2)
            return
        except OSError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=0.5)
    raise AssertionError("the Prefect server did not answer")


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> Iterator[dict]:
    """A server, the repository, the deployed daily deployment and a bare worker."""
    root = tmp_path_factory.mktemp("production")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    quiet = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    server_env = {
        "PATH": os.environ["PATH"],
        "PREFECT_HOME": str(root / "server-home"),
        **quiet,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        + ["--port", str(port)],
        env=server_env,
        stdout=open(root / "server.log", "w"),  # noqa: SIM115 - kept for the server's life
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = None
    try:
        repository = _bare_repository(root)
        # The worker's Python: Prefect alone, at the version the project runs with.
        # Without compiling every installed module to bytecode up front, CPU the test
        # does not need: Python compiles what the worker imports.
        venv = root / "worker-venv"
        _run([sys.executable, "-m", "venv", str(venv)])
        _run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
            + ["--disable-pip-version-check", f"prefect=={prefect.__version__}"],
            timeout=900,
        )
        _wait_healthy(api, server)
        # What an operator does once, from a checkout: variables, pool, deploy.
        ops_env = {**server_env, "PREFECT_HOME": str(root / "ops-home"), "PREFECT_API_URL": api}
        prefect_cli = [sys.executable, "-m", "prefect", "--no-prompt"]
        _run([*prefect_cli, "variable", "set", "dns_lifecycle_repository", repository], env=ops_env)
        _run([*prefect_cli, "variable", "set", "dns_lifecycle_ref", "main"], env=ops_env)
        _run(
            [*prefect_cli, "work-pool", "create", "dns-lifecycle", "--type", "process"],
            env=ops_env,
        )
        _run([*prefect_cli, "deploy", "--name", "daily"], env=ops_env, cwd=REPO_ROOT, timeout=300)

        work = root / "worker-dir"
        work.mkdir()
        worker_env = {
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(root / "worker-home"),
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            # The pull step's install of the project, as above: pip's own setting.
            "PIP_NO_COMPILE": "1",
        }
        worker = subprocess.Popen(
            [str(venv / "bin" / "prefect"), "worker", "start", "--pool", "dns-lifecycle"],
            cwd=work,
            env=worker_env,
            stdout=open(root / "worker.log", "w"),  # noqa: SIM115 - kept for the worker's life
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        yield {"api": api, "ops_env": ops_env, "root": root, "work": work}
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, 15)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait()


# The test SMTP server asks for a login over plain TCP on loopback; aiosmtpd warns.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_the_daily_deployment_runs_on_a_worker_with_only_prefect_and_the_block(
    production, database_url, db, tmp_path
):
    """Cloned, installed and configured by the block alone, the daily run completes and
    its reminder email reaches the SMTP server through the block's login."""
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1", locale="en-US", timezone="Asia/Shanghai")
        make_instance(s, "inst-1", account="acct-1", expires_at=AS_OF + timedelta(days=5))
        s.commit()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with SmtpTestServer(auth=SMTP_LOGIN) as smtp:
        settings = Settings(
            database_url=database_url,
            outbox_dir=tmp_path / "outbox",
            email_backend="smtp",
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_username=SMTP_LOGIN[0],
            smtp_password=SecretStr(SMTP_LOGIN[1]),
            sms_backend="file",
            delivery_processes=1,
            release_processes=1,
        )
        with temporary_settings(updates={PREFECT_API_URL: production["api"]}):
            # The templates folder stays empty: the worker finds its own.
            save_block("default", settings, leave_empty={"templates_dir"})
        ran = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "run", "daily-lifecycle/daily"]
            + ["--param", f"as_of={AS_OF.isoformat()}", "--watch", "--watch-timeout", "600"],
            env=production["ops_env"],
            capture_output=True,
            text=True,
            timeout=660,
        )
        log = (production["root"] / "worker.log").read_text()
        assert "Completed" in ran.stdout, ran.stdout + ran.stderr + log[-4000:]
        assert [r.rcpt_tos for r in smtp.received] == [["acct-1@example.com"]], log[-4000:]
        assert smtp.received[0].login == SMTP_LOGIN[0]


def test_the_wheel_carries_the_templates_and_the_migrations(tmp_path):
    """A wheel built from the repository holds every template and migration under
    dns_lifecycle/bundled/, where an installed package reads them."""
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=REPO_ROOT,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("dns_lifecycle-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for folder in ("templates", "migrations"):
        files = [
            p.relative_to(REPO_ROOT).as_posix()
            for p in (REPO_ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
        assert files and {f"dns_lifecycle/bundled/{f}" for f in files} <= names, folder
