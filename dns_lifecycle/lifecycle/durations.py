"""Durations the lifecycle counts in.

Periods before and after expiry are exact durations from the expiry instant, not
calendar days of any time zone: "N days before expiry" is ``expires_at - N x DAY``.
"""

from __future__ import annotations

from datetime import timedelta

DAY = timedelta(hours=24)
