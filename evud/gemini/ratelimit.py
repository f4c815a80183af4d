"""A requests-per-minute cap shared by all request threads (EVUD_MAX_RPM; unset means no cap)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestRateLimiter:
    """Spaces request starts evenly, 60/rpm seconds apart, across threads.

    Even spacing (rather than a burst at the top of each minute) keeps a quota measured over short
    windows happy and makes the achieved rate equal the cap once latency is covered by concurrency.
    Every attempt passes here, retries included, so a retry storm cannot exceed the cap either.
    """

    def __init__(self, per_minute: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start = 0.0

    def wait(self) -> None:
        """Block until this caller may start a request."""
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        if start > now:
            self._sleep(start - now)
