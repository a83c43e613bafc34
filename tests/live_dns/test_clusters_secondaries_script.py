"""scripts/dns-clusters.sh start-secondaries: the README's walkthrough with the free
cluster as a hidden primary and two BIND 9 secondaries."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from tests.live_dns.servers import NAMED, free_port

pytestmark = pytest.mark.slow(20)

SCRIPT = Path(__file__).parents[2] / "scripts" / "dns-clusters.sh"


@pytest.mark.skipif(NAMED is None, reason="named is not installed (Debian package bind9)")
def test_a_zone_of_the_free_catalog_reaches_both_secondaries_the_script_starts(tmp_path):
    """A zone created in the free primary's catalog is served by both secondaries, and
    stop ends every server the script started."""
    ports = [free_port(), free_port()]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/bin",
        "DNS_CLUSTERS_DIR": str(tmp_path / "clusters"),
        "PAID_DNS": f"127.0.0.1:{free_port()}",
        "FREE_DNS": f"127.0.0.1:{free_port()}",
        "PAID_API_PORT": str(free_port()),
        "FREE_API_PORT": str(free_port()),
        "FREE_SECONDARY_PORTS": " ".join(map(str, ports)),
    }
    try:
        started = subprocess.run(
            [str(SCRIPT), "start-secondaries"], env=env, capture_output=True, text=True, timeout=60
        )
        assert started.returncode == 0, started.stdout + started.stderr
        key = (tmp_path / "clusters" / "free" / "api-key").read_text().strip()
        zone = {
            "name": "walk.cn.",
            "kind": "Master",
            "catalog": "catalog.free-dns.example.",
            "nameservers": ["ns1.free-dns.example."],
        }
        r = httpx.post(
            f"http://127.0.0.1:{env['FREE_API_PORT']}/api/v1/servers/localhost/zones",
            headers={"X-API-Key": key},
            json=zone,
            timeout=5,
        )
        assert r.status_code == 201, r.text

        def serves(port: int) -> bool:
            q = dns.message.make_query("walk.cn.", "SOA")
            return dns.query.udp(q, "127.0.0.1", port=port, timeout=1).rcode() == dns.rcode.NOERROR

        # Returns as soon as both serve it (about a second on a quiet machine); the bound
        # only matters on a loaded one, where BIND's catalog refresh has taken over 30 s.
        deadline = time.monotonic() + 90
        while not all(serves(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(serves(p) for p in ports)
    finally:
        stopped = subprocess.run(
            [str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60
        )
    assert stopped.stdout.count(": stopped") == 4, stopped.stdout
