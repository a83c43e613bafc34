"""The documentation that ships with the project points at things that exist."""

from __future__ import annotations

import re

import pytest

from dns_lifecycle.core.settings import REPO_ROOT

DOCS = sorted((REPO_ROOT / "docs").glob("*.md")) + [REPO_ROOT / "README.md"]
PACKAGE_DIRS = ("lifecycle", "store", "channels", "admin", "core", "release")


def _paths(text: str) -> set[str]:
    found = re.findall(r"`((?:tests|flows|models|templates|scripts|bench|[a-z]+)/[\w./-]*)`", text)
    return {p.rstrip("/") for p in found if "*" not in p and "<" not in p}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_document_names_exists(doc):
    """A module, test or script named in `docs/` or the README is in the tree."""
    missing = []
    for path in sorted(_paths(doc.read_text(encoding="utf-8"))):
        first = path.split("/")[0]
        candidates = [REPO_ROOT / path]
        if first in PACKAGE_DIRS:
            candidates.append(REPO_ROOT / "dns_lifecycle" / path)
        if not any(c.exists() for c in candidates) and not path.startswith(("var", "bench/.cache")):
            missing.append(path)
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_the_readme_points_at_the_rules_in_the_repo():
    """A clone has the rules: the README links docs/lifecycle.md, nothing outside."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/lifecycle.md" in readme and "../shared" not in readme
