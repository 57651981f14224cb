"""Timing helpers for tests of the fixed-window rate limits (windows start on the minute)."""

from __future__ import annotations

import time


def wait_for_fresh_rate_window(needed_seconds: float = 25.0, window_seconds: int = 60) -> None:
    """Sleep to the start of the next rate-limit window if fewer than ``needed_seconds`` are left
    in this one, so that requests made now all count in the same window."""
    left = window_seconds - time.time() % window_seconds
    if left < needed_seconds:
        time.sleep(left + 0.2)
