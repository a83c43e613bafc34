"""A small HTTP server on 127.0.0.1 for tests of code that calls an HTTP API.

It records every request it receives and answers each with whatever a responder
function returns, so one test can play a provider that accepts, refuses, fails, hangs
or hangs up::

    def responder(request: SeenRequest) -> Reply:
        return Reply(200, {"Code": "OK"})

    with HttpSink(responder) as sink:
        call_something(f"127.0.0.1:{sink.port}")
    assert sink.requests[0].query["PhoneNumbers"] == "8613900000000"

The server runs in a thread with one thread per connection, so a reply that sleeps
does not hold up the others. Closing the sink wakes every sleeping reply at once, which
keeps timeout tests as fast as the client's own timeout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    raw_query: str
    query: dict[str, str]  # the last value of each name
    headers: dict[str, str]  # names in lower case
    body: bytes

    def form(self) -> dict[str, str]:
        """The body read as application/x-www-form-urlencoded."""
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = b""  # bytes, str, or anything else to send as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (ended early when the sink closes)
    drop: bool = False  # close the connection without answering


Responder = Callable[[SeenRequest], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connection attempts of a burst of concurrent
    # clients, which then see connect timeouts that a real server would not cause.
    request_queue_size = 128


def ok_json(body: Any) -> Responder:
    """A responder that answers every request with 200 and ``body`` as JSON."""
    return lambda _request: Reply(200, body)


class HttpSink:
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        # A short poll interval lets close() return at once instead of within 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        """``host:port``, the form an SDK ``endpoint`` setting takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def __enter__(self) -> HttpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _record(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = SeenRequest(
                    method=self.command,
                    path=parts.path,
                    raw_query=parts.query,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                sink._record(request)
                reply = sink.responder(request)
                if reply.delay:
                    sink._closing.wait(reply.delay)
                if reply.drop or sink._closing.is_set():
                    self.close_connection = True
                    return
                if isinstance(reply.body, bytes):
                    payload, content_type = reply.body, "application/octet-stream"
                elif isinstance(reply.body, str):
                    payload, content_type = reply.body.encode("utf-8"), "text/plain"
                else:
                    payload = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
                    content_type = "application/json;charset=utf-8"
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler
