"""Links into the customer console, from the ``DNSL_CONSOLE_URL`` template.

The template is an http(s) URL in which ``{instance_id}`` stands for the instance a
notice is about, e.g. ``https://dns.console.example.com/instances/{instance_id}``.
Settings check it with :func:`check_console_url` and the renderer builds links with
:func:`console_link`, so a template accepted at start-up always builds a link.
"""

from __future__ import annotations

from string import Formatter
from urllib.parse import quote, urlsplit

PLACEHOLDER = "instance_id"
_EXAMPLE = "https://dns.console.example.com/instances/{instance_id}"


def check_console_url(template: str) -> str:
    """``template`` itself if it is an http(s) URL whose only placeholder is
    ``{instance_id}``; otherwise a ``ValueError`` saying how to write it."""
    template = template.strip()
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in Formatter().parse(template)
            if name is not None
        ]
    except ValueError:
        raise ValueError(
            f"console URL {template!r} has an unmatched brace: write it like {_EXAMPLE!r} "
            "(a literal brace is doubled: '{{' or '}}')"
        ) from None
    for name, spec, conversion in fields:
        if name != PLACEHOLDER or spec or conversion:
            raise ValueError(
                f"console URL {template!r} has the placeholder {{{name}}}: the only one "
                f"allowed is {{{PLACEHOLDER}}}, e.g. {_EXAMPLE!r}"
            )
    parts = urlsplit(console_link(template, "dns-example"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"console URL {template!r} is not an http(s) URL with a host: write it like "
            f"{_EXAMPLE!r}"
        )
    return template


def console_link(template: str, instance_id: str) -> str:
    """The console page of ``instance_id``; the id is percent-encoded as a path part."""
    return template.strip().format(**{PLACEHOLDER: quote(str(instance_id), safe="")})
