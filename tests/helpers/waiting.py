"""Polling with a deadline, for tests that wait on another thread or process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], bool], timeout_s: float, stop: threading.Event) -> bool:
    """True as soon as `predicate()` is; False at the deadline or when `stop` is set."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        if predicate():
            return True
        time.sleep(0.2)
    return False
