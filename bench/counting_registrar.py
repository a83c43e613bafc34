"""A registrar that counts: the plain HTTP registrar API (``registrar_backend=http``) on
127.0.0.1, in a process of its own, for bench/release.py.

    python bench/counting_registrar.py      # prints its port, then serves until killed

``GET /domains/{name}`` answers no lock and the name servers last set;
``PUT /domains/{name}/nameservers`` applies the switch and counts it per domain;
``GET /counts`` answers what it saw: ``{"switches": {domain: n}, "lock_reads": n}``.
HTTP/1.1 with kept-alive connections, as a real registrar's API would be, so the release
pays no connection per call. Its own process, so its CPU is not counted as the
release's.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

_switches: Counter[str] = Counter()
_nameservers: dict[str, list[str]] = {}
_lock_reads = 0
_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        global _lock_reads
        if self.path == "/counts":
            with _lock:
                self._reply({"switches": dict(_switches), "lock_reads": _lock_reads})
            return
        domain = unquote(self.path.split("/")[2])
        with _lock:
            _lock_reads += 1
            held = _nameservers.get(domain, ["ns1.paid.example", "ns2.paid.example"])
        self._reply({"epp_statuses": [], "nameservers": held})

    def do_PUT(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        # /domains/{name}/nameservers
        domain = unquote(self.path.split("/")[2])
        with _lock:
            _switches[domain] += 1
            _nameservers[domain] = body["nameservers"]
        self._reply({"ok": True})

    def log_message(self, *args: object) -> None:
        """Quiet: thousands of requests."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet too: a release killed mid-request resets its connections."""


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
