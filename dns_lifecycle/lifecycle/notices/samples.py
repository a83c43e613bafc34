"""Realistic sample contexts, for the preview gallery and for tests."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from dns_lifecycle.core.errors import InputError
from dns_lifecycle.lifecycle.notices.base import LOCALES
from dns_lifecycle.lifecycle.notices.catalog import notice_class

_SAMPLE_COMMON: dict[str, dict[str, Any]] = {
    "en-US": {
        "account_name": "Northwind Trading Ltd.",
        "instance_id": "dns-cn-7f3k2q9x",
        "timezone": "America/Los_Angeles",
        "locale": "en-US",
        "edition": "enterprise-standard",
    },
    "zh-CN": {
        "account_name": "杭州云栖科技有限公司",
        "instance_id": "dns-cn-7f3k2q9x",
        "timezone": "Asia/Shanghai",
        "locale": "zh-CN",
        "edition": "enterprise-standard",
    },
}


def sample_context(kind: str, locale: str, **overrides: Any) -> dict[str, Any]:
    """A realistic context for ``kind`` in ``locale``; ``overrides`` replace keys."""
    cls = notice_class(kind)
    if locale not in LOCALES:
        raise InputError(
            f"unknown locale {locale!r} for a {kind!r} notice; use one of: {', '.join(LOCALES)}"
        )
    # A deep copy: a caller may change the sample without changing the next one.
    return deepcopy({**_SAMPLE_COMMON[locale], **cls.sample}) | overrides
