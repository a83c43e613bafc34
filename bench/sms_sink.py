"""A fast stand-in for the SMS provider's SendSms API, for the benchmark only.

Answers every request as the provider answers an accepted message, and counts them.
``GET /_count`` returns the count so far (without counting itself). Run as its own
process so that it never competes with the run it serves for the interpreter lock:

    python bench/sms_sink.py PORT
"""

from __future__ import annotations

import sys
import uuid

from aiohttp import web

ACCEPTED = {"Code": "OK", "Message": "OK", "BizId": "900000000000000000^0"}


def make_app() -> web.Application:
    seen = {"requests": 0}

    async def count(_request: web.Request) -> web.Response:
        return web.json_response(seen)

    async def send_sms(request: web.Request) -> web.Response:
        await request.read()
        seen["requests"] += 1
        return web.json_response({**ACCEPTED, "RequestId": uuid.uuid4().hex.upper()})

    app = web.Application()
    app.router.add_get("/_count", count)
    app.router.add_route("*", "/{tail:.*}", send_sms)
    return app


def main() -> None:
    port = int(sys.argv[1])
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
