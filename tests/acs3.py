"""The provider's request signature (ACS3-HMAC-SHA256), computed independently of the
SDK and of our own signer, for the stand-ins that check what a client sent."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, quote

from tests.http_sink import SeenRequest


def authorization_fields(request: SeenRequest) -> dict[str, str]:
    """``Credential``, ``SignedHeaders`` and ``Signature`` of the Authorization header."""
    _, _, fields = request.headers.get("authorization", "").partition(" ")
    return dict(part.split("=", 1) for part in fields.split(",") if "=" in part)


def acs3_signature(request: SeenRequest, secret: str) -> str:
    """The signature of ``request`` as received, over the headers it says it signed and
    the digest of the body it really carries."""
    signed = [n for n in authorization_fields(request).get("SignedHeaders", "").split(";") if n]
    query = "&".join(
        f"{name}={quote(value, safe='~')}"
        for name, value in sorted(parse_qsl(request.raw_query, keep_blank_values=True))
    )
    headers = "".join(f"{name}:{request.headers.get(name, '').strip()}\n" for name in signed)
    canonical = "\n".join(
        [
            request.method,
            request.path or "/",
            query,
            headers,
            ";".join(signed),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
