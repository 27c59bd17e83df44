"""One warning per cause per period: bad input often arrives at sensor rate, and a log that repeats it
hundreds of times a second hides everything else."""
from __future__ import annotations

import time
from typing import Callable, Hashable


class LogThrottle:
    """``ready(key)`` is True at most once every ``period`` seconds for each key (the clock is injectable)."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic):
        self.period = period
        self._clock = clock
        self._last: dict[Hashable, float] = {}

    def ready(self, key: Hashable = None) -> bool:
        now = self._clock()
        if now - self._last.get(key, -float("inf")) < self.period:
            return False
        self._last[key] = now
        return True
