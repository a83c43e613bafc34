"""The notice gallery: one page a person opens to review every notice's wording."""

from __future__ import annotations

import re

import pytest

from dns_lifecycle.admin.preview import gallery_variants, write_gallery
from dns_lifecycle.channels.render import Renderer
from dns_lifecycle.core.settings import REPO_ROOT
from dns_lifecycle.lifecycle.notices import LOCALES, NOTICE_KINDS


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery")
    index = write_gallery(Renderer(REPO_ROOT / "templates" / "emails"), out)
    return out, index, index.read_text(encoding="utf-8")


def test_index_is_written_in_the_folder(gallery):
    """write_gallery returns the index.html it wrote in the output folder."""
    out, index, page = gallery
    assert index == out / "index.html"
    assert page.startswith("<!DOCTYPE html>")


def test_index_links_every_email_file(gallery):
    """Every HTML part written is linked from the index, and every link resolves."""
    out, _, page = gallery
    written = {p.name for p in out.glob("*.html")} - {"index.html"}
    linked = set(re.findall(r'href="([^"#]+\.html)"', page))
    assert written == linked
    assert len(written) == len(gallery_variants()) * len(LOCALES)


def test_every_kind_and_locale_is_shown(gallery):
    """Each notice kind appears in both languages."""
    out, _, _ = gallery
    names = {p.name for p in out.glob("*.html")}
    for kind in NOTICE_KINDS:
        for locale in LOCALES:
            assert any(n.startswith(kind) and n.endswith(f".{locale}.html") for n in names)


def test_reminder_is_shown_with_and_without_auto_renewal(gallery):
    """Both reminder wordings are in the gallery."""
    out, _, _ = gallery
    assert (out / "reminder-auto-renew.en-US.html").exists()
    assert (out / "reminder-manual.zh-CN.html").exists()


def test_released_shows_all_three_domain_actions(gallery):
    """The released notice shows a switched, a locked and an external-registrar domain."""
    out, _, _ = gallery
    html = (out / "released.en-US.html").read_text(encoding="utf-8")
    assert "Nothing to do" in html
    assert "EPP update lock" in html
    assert "GoDaddy's own DNS servers" in html


def test_index_shows_subject_text_part_and_sms(gallery):
    """Each card carries the subject, the plain-text part and the SMS wording."""
    _, _, page = gallery
    assert "Last reminder: DNS instance" in page  # an English subject
    assert "最后提醒" in page  # a Chinese subject
    assert page.count("<iframe") == len(gallery_variants()) * len(LOCALES)
    assert "<h4>Plain text</h4>\n<pre>Hello Northwind Trading Ltd.," in page
    assert "SMS variables: name=" in page
