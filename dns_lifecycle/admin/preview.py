"""A gallery of every notice, rendered from sample data, for a person to review.

``write_gallery`` writes each email's HTML part to its own file and an ``index.html``
that shows, per notice and variant, the English and Chinese versions side by side:
subject, the HTML part in a frame, the plain-text part and the SMS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dns_lifecycle.channels.render import Renderer
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.lifecycle.notices import CATALOG, LOCALES
from dns_lifecycle.lifecycle.notices.samples import sample_context


@dataclass(frozen=True)
class Variant:
    kind: str
    name: str = ""  # empty for a kind shown once
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return f"{self.kind}-{self.name}" if self.name else self.kind


def gallery_variants() -> list[Variant]:
    """Every notice the gallery shows, in catalog order; a kind whose wording branches
    on its context is shown once per branch its catalog class names."""
    return [
        v
        for kind, cls in CATALOG.items()
        for v in (
            [Variant(kind, name, dict(values)) for name, values in cls.preview_variants.items()]
            or [Variant(kind)]
        )
    ]


_PAGE_STYLE = """
body { font-family: -apple-system, 'Segoe UI', 'PingFang SC', Helvetica, Arial, sans-serif;
       margin: 0; padding: 24px; background: #f6f7f9; color: #1f2329; }
h1 { margin: 0 0 8px; }
nav { margin: 0 0 24px; line-height: 1.8; }
nav a { margin-right: 12px; }
section { margin: 0 0 40px; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 4px; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 20px; }
.notice { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 16px; }
.subject { font-weight: 600; margin: 4px 0 12px; }
iframe { width: 100%; height: 620px; border: 1px solid #d0d7de; border-radius: 4px; }
pre { white-space: pre-wrap; background: #f6f8fa; padding: 12px; border-radius: 4px;
      font-size: 13px; }
.meta { color: #656d76; font-size: 13px; }
"""


def write_gallery(renderer: Renderer, out_dir: Path) -> Path:
    """Render every notice in both languages into ``out_dir``; return its index.html.
    A folder that cannot be made or written is an InputError naming it."""
    out_dir = Path(out_dir)
    try:
        return _write_gallery(renderer, out_dir)
    except FileExistsError:
        raise InputError(
            f"cannot write the gallery into {out_dir}: it is a file, not a folder; "
            "give a new folder or an existing one"
        ) from None
    except NotADirectoryError:
        raise InputError(
            f"cannot write the gallery into {out_dir}: a part of that path is a file, not a "
            "folder; give a new folder or an existing one"
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot write the gallery into {out_dir}: {exc.strerror or exc}; give a folder "
            "that can be made and written"
        ) from None


def _write_gallery(renderer: Renderer, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = gallery_variants()
    sections = []
    for variant in variants:
        cards = []
        for locale in LOCALES:
            context = sample_context(variant.kind, locale, **variant.overrides)
            email = renderer.email(variant.kind, context)
            sms = renderer.sms(variant.kind, context)
            filename = f"{variant.slug}.{locale}.html"
            (out_dir / filename).write_text(email.html, encoding="utf-8")
            params = ", ".join(f"{k}={v}" for k, v in sms.params.items())
            cards.append(
                f'<div class="notice" lang="{locale}">\n'
                f'<div class="meta">{escape(locale)} · {escape(context["timezone"])}</div>\n'
                f'<div class="subject">{escape(email.subject)}</div>\n'
                f'<p><a href="{quote(filename)}">Open the HTML part</a></p>\n'
                f'<iframe src="{quote(filename)}" title="{escape(filename)}" '
                f'loading="lazy"></iframe>\n'
                f"<h4>Plain text</h4>\n<pre>{escape(email.text)}</pre>\n"
                f"<h4>SMS ({len(sms.text)} characters)</h4>\n<pre>{escape(sms.text)}</pre>\n"
                f'<div class="meta">SMS variables: {escape(params)}</div>\n'
                "</div>"
            )
        title = variant.kind + (f" ({variant.name})" if variant.name else "")
        body = "\n".join(cards)
        sections.append(
            f'<section id="{escape(variant.slug)}">\n<h2>{escape(title)}</h2>\n'
            f'<div class="pair">\n{body}\n</div>\n</section>'
        )
    nav = " ".join(f'<a href="#{escape(v.slug)}">{escape(v.slug)}</a>' for v in variants)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Notice gallery</title>\n"
        f"<style>{_PAGE_STYLE}</style>\n</head>\n<body>\n"
        "<h1>Notice gallery</h1>\n"
        f'<p class="meta">{len(variants)} notices × {len(LOCALES)} languages, '
        "rendered from sample data.</p>\n"
        f"<nav>{nav}</nav>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
