"""The requests-per-minute cap spaces request starts evenly, across threads."""

from __future__ import annotations

import threading

from evud.gemini.ratelimit import RequestRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0  # never advances: every wait is visible as a requested sleep
        self.lock = threading.Lock()
        self.starts: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.starts.append(self.now + seconds)


def test_starts_are_spaced_sixty_over_rpm_seconds_apart():
    clock = FakeClock()
    limiter = RequestRateLimiter(120, clock=clock, sleep=clock.sleep)
    threads = [threading.Thread(target=limiter.wait) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The first starts at once (no sleep); the other five wait 0.5 s more each, whichever thread they are.
    assert sorted(clock.starts) == [100.5, 101.0, 101.5, 102.0, 102.5]


def test_no_cap_never_waits():
    clock = FakeClock()
    limiter = RequestRateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.wait()
    assert clock.starts == []
