"""How late the next action chunk will arrive: a robust estimate from the recent delays. ROS-free.

A chunk's delay is the time from its observation to its merge into the plan. A guided chunk pins the plan's
actions due before its expected arrival, so an estimate that is too high makes the robot react late (the
pinned actions are the old plan's), and one that is too low leaves the chunk's first executed actions
unpinned (they are joined to the plan by a cross-fade, see ActionSchedule).

The estimate is a high quantile of the recent delays, capped at a multiple of their median: one slow chunk
(a garbage-collector pause, a stalled camera driver) neither raises it nor holds it up for the next chunks,
as the largest delay of a window would. Delays above the estimate are counted and the last one is kept, for
the node's diagnostics.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

DELAY_WINDOW = 20
"""Chunks whose measured delays the estimate is taken from."""
DELAY_QUANTILE = 0.9
"""The quantile of those delays the next chunk is expected to meet."""
DELAY_CAP_RATIO = 2.0
"""The estimate never exceeds this multiple of the median delay (a burst of slow chunks cannot pin the
whole overlap)."""


@dataclass
class DelayOutliers:
    """Chunks that arrived later than expected (reported in the node's diagnostics)."""

    count: int = 0
    last_delay: float = 0.0
    """Seconds from observation to merge of the latest such chunk."""
    last_excess: float = 0.0
    """Seconds by which it exceeded the estimate it was sampled with."""


class DelayEstimate:
    """The expected delay of the next chunk, from the delays of the last ``DELAY_WINDOW`` chunks."""

    def __init__(self, margin: float, window: int = DELAY_WINDOW, quantile: float = DELAY_QUANTILE,
                 cap_ratio: float = DELAY_CAP_RATIO):
        self.margin = float(margin)
        self.quantile = quantile
        self.cap_ratio = cap_ratio
        self._delays: deque[float] = deque(maxlen=window)
        self.outliers = DelayOutliers()

    def expected(self) -> float:
        """Seconds from a chunk's observation to its merge that the next chunk should expect (margin included)."""
        if not self._delays:
            return self.margin
        delays = np.asarray(self._delays)
        estimate = min(float(np.quantile(delays, self.quantile)), self.cap_ratio * float(np.median(delays)))
        return estimate + self.margin

    def add(self, delay: float, expected: float | None = None) -> bool:
        """Record a chunk's delay; ``expected`` is the estimate it was sampled with. True if it came later."""
        late = expected is not None and delay > expected
        if late:
            self.outliers.count += 1
            self.outliers.last_delay = delay
            self.outliers.last_excess = delay - expected
        self._delays.append(float(delay))
        return late
