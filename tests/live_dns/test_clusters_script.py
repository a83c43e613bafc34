"""scripts/dns-clusters.sh, the servers of the README's "Live DNS clusters" walkthrough."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.smtp_server import free_port

SCRIPT = Path(__file__).parents[2] / "scripts" / "dns-clusters.sh"


def test_start_prints_only_a_line_to_eval_for_the_api_keys(tmp_path):
    """`eval "$(scripts/dns-clusters.sh start)"` exports DNSL_CLUSTER_API_KEYS with the
    key of each server: stdout holds that line alone, the rest goes to stderr."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/bin",
        "DNS_CLUSTERS_DIR": str(tmp_path / "clusters"),
        "PAID_DNS": f"127.0.0.1:{free_port()}",
        "FREE_DNS": f"127.0.0.1:{free_port()}",
        "PAID_API_PORT": str(free_port()),
        "FREE_API_PORT": str(free_port()),
    }
    try:
        shown = subprocess.run(
            ["bash", "-c", f'eval "$({SCRIPT} start)" && printenv DNSL_CLUSTER_API_KEYS'],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    keys = json.loads(shown.stdout)
    assert keys == {
        name: (tmp_path / "clusters" / name / "api-key").read_text().strip()
        for name in ("paid-1", "free")
    }
    assert "paid-1: DNS on" in shown.stderr and "free: DNS on" in shown.stderr
