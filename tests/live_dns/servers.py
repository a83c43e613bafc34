"""Real PowerDNS (and unbound) processes for the live-DNS tests, on loopback.

Ports are chosen at run time (others run tests on the same machine); each server has
its own folder, SQLite database and API key.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

PDNS = shutil.which("pdns_server") or (
    "/usr/sbin/pdns_server" if Path("/usr/sbin/pdns_server").exists() else None
)
NAMED = shutil.which("named") or ("/usr/sbin/named" if Path("/usr/sbin/named").exists() else None)
UNBOUND = shutil.which("unbound") or (
    "/usr/sbin/unbound" if Path("/usr/sbin/unbound").exists() else None
)
SCHEMA = next(
    (
        p
        for p in (
            Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
            Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"),
        )
        if p.exists()
    ),
    None,
)


def free_port(address: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``address`` right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port found")


@dataclass
class PowerDns:
    """One running pdns_server."""

    folder: Path
    address: str
    dns_port: int
    api_port: int
    api_key: str
    process: subprocess.Popen | None = None
    extra: tuple[str, ...] = ()  # more pdns.conf lines (a primary's, say)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dns_address(self) -> str:
        return f"{self.address}:{self.dns_port}"

    def start(self, timeout: float = 20.0) -> PowerDns:
        assert PDNS and SCHEMA
        self.folder.mkdir(parents=True, exist_ok=True)
        db = self.folder / "pdns.sqlite3"
        if not db.exists():
            with sqlite3.connect(db) as conn:
                conn.executescript(SCHEMA.read_text())
        (self.folder / "pdns.conf").write_text(
            "\n".join(
                [
                    "launch=gsqlite3",
                    f"gsqlite3-database={db}",
                    f"local-address={self.address}",
                    f"local-port={self.dns_port}",
                    "api=yes",
                    f"api-key={self.api_key}",
                    "webserver=yes",
                    "webserver-address=127.0.0.1",
                    f"webserver-port={self.api_port}",
                    "webserver-allow-from=127.0.0.0/8",
                    f"socket-dir={self.folder}",
                    "distributor-threads=1",
                    "receiver-threads=1",
                    "cache-ttl=0",
                    "query-cache-ttl=0",
                    "negquery-cache-ttl=0",
                    "zone-cache-refresh-interval=0",
                    "loglevel=3",
                    *self.extra,
                    "",
                ]
            )
        )
        self.log = open(self.folder / "pdns.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [PDNS, f"--config-dir={self.folder}", "--daemon=no", "--guardian=no"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"pdns_server exited: {(self.folder / 'pdns.log').read_text()[-2000:]}"
                )
            try:
                r = httpx.get(
                    f"{self.api_url}/api/v1/servers/localhost",
                    headers={"X-API-Key": self.api_key},
                    timeout=1,
                )
                if r.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("pdns_server did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        if getattr(self, "log", None):
            self.log.close()


def powerdns(
    folder: Path,
    address: str = "127.0.0.1",
    dns_port: int | None = None,
    extra: tuple[str, ...] = (),
) -> PowerDns:
    """A started PowerDNS in ``folder`` (its DNS port chosen at run time unless given)."""
    return PowerDns(
        folder=folder,
        address=address,
        dns_port=dns_port or free_port(address),
        api_port=free_port(),
        api_key=f"key-{folder.name}",
        extra=extra,
    ).start()


@dataclass
class Bind:
    """One running BIND 9 secondary on 127.0.0.1 and a port of its own, consuming the
    catalog zone ``catalog`` of the primary at 127.0.0.1:``primary_port``: it serves
    every member zone of the catalog, copied by zone transfer."""

    folder: Path
    dns_port: int
    catalog: str
    primary_port: int
    address: str = "127.0.0.1"
    process: subprocess.Popen | None = None

    @property
    def dns_address(self) -> str:
        return f"{self.address}:{self.dns_port}"

    def start(self, timeout: float = 20.0) -> Bind:
        assert NAMED
        folder = self.folder
        (folder / "zones").mkdir(parents=True, exist_ok=True)
        primary = f"127.0.0.1 port {self.primary_port}"
        (folder / "named.conf").write_text(
            f"""options {{
    directory "{folder}";
    pid-file "{folder}/named.pid";
    session-keyfile "{folder}/session.key";
    managed-keys-directory "{folder}";
    listen-on port {self.dns_port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-notify {{ 127.0.0.0/8; }};
    allow-transfer {{ none; }};
    catalog-zones {{
        zone "{self.catalog}." default-primaries {{ {primary}; }}
            zone-directory "{folder}/zones" in-memory no min-update-interval 1;
    }};
}};
controls {{ }};
zone "{self.catalog}." {{
    type secondary;
    primaries {{ {primary}; }};
    file "{folder}/catalog.db";
}};
"""
        )
        self.log = open(folder / "named.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [NAMED, "-g", "-u", "root", "-c", str(folder / "named.conf")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        import dns.message
        import dns.query

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"named exited: {(folder / 'named.log').read_text()[-2000:]}")
            try:  # any answer (a refusal too) means it listens
                q = dns.message.make_query(f"{self.catalog}.", "SOA")
                dns.query.udp(q, self.address, port=self.dns_port, timeout=0.5)
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("named did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        if getattr(self, "log", None):
            self.log.close()


@dataclass
class CatalogCluster:
    """A hidden PowerDNS primary whose zones join the catalog ``catalog``, and the BIND
    secondaries that copy them: the public name servers of the cluster."""

    primary: PowerDns
    secondaries: list[Bind]
    catalog: str

    @property
    def addresses(self) -> list[str]:
        return [b.dns_address for b in self.secondaries]

    def stop(self) -> None:
        for server in (*self.secondaries, self.primary):
            server.stop()


def catalog_cluster(
    folder: Path, catalog: str, secondaries: int = 2, ports: list[int] | None = None
) -> CatalogCluster:
    """A started primary with the producer zone ``catalog`` and ``secondaries`` BIND
    servers consuming it, on 127.0.0.1 and ``ports`` (else ports free now)."""
    ports = ports or [free_port() for _ in range(secondaries)]
    primary = powerdns(
        folder / "primary",
        extra=(
            "primary=yes",
            "allow-axfr-ips=127.0.0.0/8",
            # Notified: the secondaries alone (never the addresses of the NS names).
            "only-notify=",
            f"also-notify={','.join(f'127.0.0.1:{p}' for p in ports)}",
            # How often the primary looks for changes to notify: small, so that a copy
            # reaches the secondaries in a few seconds.
            "xfr-cycle-interval=1",
        ),
    )
    producer = {
        "name": f"{catalog}.",
        "kind": "Producer",
        "soa_edit_api": "EPOCH",
        "nameservers": [],
    }
    r = httpx.post(
        f"{primary.api_url}/api/v1/servers/localhost/zones",
        headers={"X-API-Key": primary.api_key},
        json=producer,
        timeout=5,
    )
    assert r.status_code == 201, r.text
    binds = []
    try:
        for i, port in enumerate(ports):
            binds.append(Bind(folder / f"bind{i}", port, catalog, primary.dns_port).start())
    except Exception:
        for b in binds:
            b.stop()
        primary.stop()
        raise
    return CatalogCluster(primary, binds, catalog)


def loopback_addresses(n: int, port: int = 53) -> list[str]:
    """``n`` addresses of 127.0.0.0/8 on which ``port`` is free for TCP and UDP now,
    in a block picked at random (others may run the same tests at the same time)."""
    import random

    for _ in range(50):
        base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
        addresses = [f"{base}.{10 + i}" for i in range(n)]
        try:
            for address in addresses:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((address, port))
        except PermissionError:
            raise
        except OSError:
            continue
        return addresses
    raise RuntimeError(f"no block of {n} loopback addresses with port {port} free")


@dataclass
class Unbound:
    """A recursive resolver that reaches ``zone`` through a stub to its parent server."""

    folder: Path
    address: str
    zone: str
    parent: str  # address@port of the server authoritative for ``zone``
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Unbound:
        assert UNBOUND
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "unbound.conf"
        conf.write_text(
            f"""server:
    interface: {self.address}
    port: 53
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "{self.folder}"
    pidfile: "{self.folder}/unbound.pid"
    use-syslog: no
    logfile: "{self.folder}/unbound.log"
    verbosity: 1
    num-threads: 1
    module-config: "iterator"
    qname-minimisation: no
    harden-referral-path: no
    target-fetch-policy: "0 0 0 0 0"
    prefetch: no
remote-control:
    control-enable: no
stub-zone:
    name: "{self.zone}"
    stub-addr: {self.parent}
"""
        )
        self.process = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        import dns.message
        import dns.query

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.folder / "unbound.log"
                raise RuntimeError(
                    f"unbound exited: {log.read_text()[-2000:] if log.exists() else ''}"
                )
            try:
                dns.query.udp(dns.message.make_query(self.zone, "SOA"), self.address, timeout=0.5)
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("unbound did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
