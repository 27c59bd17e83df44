"""Causal time alignment: each sample takes the latest message at or before its time.

Used by the policy node (observation history), the recorder (frames at the
dataset fps) and the bag converter, so all three see the same data for the same
time. Times are float seconds in one clock (header stamps or receive times).
"""
from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass
from typing import Any, Generic, Iterable, Sequence, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Sample(Generic[T]):
    stamp: float
    value: T


class TimestampedBuffer(Generic[T]):
    """Recent (stamp, value) pairs of one stream, kept sorted by stamp.

    Thread-safe: sensor callbacks add while the control loop reads. Messages
    that arrive with a stamp older than the newest one are still inserted in
    order (``out_of_order`` counts them); a stamp equal to one already held
    replaces it. Samples older than ``keep`` seconds behind the newest are
    forgotten.
    """

    def __init__(self, keep: float = 5.0, max_samples: int = 10_000):
        if keep <= 0:
            raise ValueError("keep must be positive")
        self.keep = keep
        self.max_samples = max_samples
        self._stamps: list[float] = []
        self._values: list[T] = []
        self._lock = threading.Lock()
        self.out_of_order = 0
        self.rejected = 0
        self.future = 0
        """Samples refused because their stamp lay too far ahead of the receiver's clock."""
        self.last_arrival: float | None = None
        """The receiver's clock when the newest accepted sample arrived (when ``add`` was told it)."""

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp: float, value: T, now: float | None = None, max_ahead: float = math.inf) -> bool:
        """Insert a sample; returns False (and counts it) if its stamp is not finite, or lies more than
        ``max_ahead`` seconds after ``now`` (the receiver's clock at its arrival; ``future`` counts those)."""
        if not math.isfinite(stamp):
            self.rejected += 1
            return False
        if now is not None and stamp > now + max_ahead:
            self.future += 1
            return False
        with self._lock:
            if now is not None:
                self.last_arrival = now
            if self._stamps and stamp < self._stamps[-1]:
                self.out_of_order += 1
            index = bisect.bisect_left(self._stamps, stamp)
            if index < len(self._stamps) and self._stamps[index] == stamp:
                self._values[index] = value
            else:
                self._stamps.insert(index, stamp)
                self._values.insert(index, value)
            self._forget_old()
        return True

    def _forget_old(self) -> None:
        horizon = self._stamps[-1] - self.keep
        drop = bisect.bisect_left(self._stamps, horizon)
        drop = max(drop, len(self._stamps) - self.max_samples)
        if drop > 0:
            del self._stamps[:drop]
            del self._values[:drop]

    def latest(self) -> Sample[T] | None:
        with self._lock:
            if not self._stamps:
                return None
            return Sample(self._stamps[-1], self._values[-1])

    def interval_percentile(self, percentile: float, last: int = 50) -> float | None:
        """A percentile of the spacing of the newest ``last`` stamps (None with fewer than three samples)."""
        with self._lock:
            stamps = self._stamps[-last:]
        if len(stamps) < 3:
            return None
        return float(np.percentile(np.diff(stamps), percentile))

    def at_or_before(self, t: float) -> Sample[T] | None:
        """The newest sample whose stamp is <= t, or None (never a later one)."""
        with self._lock:
            index = bisect.bisect_right(self._stamps, t) - 1
            if index < 0:
                return None
            return Sample(self._stamps[index], self._values[index])

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._values.clear()
            self.last_arrival = None


def history_times(t: float, n_steps: int, period: float) -> list[float]:
    """Times of an ``n_steps`` history ending at ``t``, oldest first: t-(n-1)p, ..., t-p, t."""
    if n_steps < 1:
        raise ValueError("n_steps must be >= 1")
    return [t - (n_steps - 1 - k) * period for k in range(n_steps)]


@dataclass(frozen=True)
class AlignedSample:
    """One stream's pick for one target time."""

    target: float
    stamp: float | None
    index: int | None

    @property
    def age(self) -> float:
        return math.inf if self.stamp is None else self.target - self.stamp


def align_causal(targets: Sequence[float], stamps: Sequence[float]) -> list[AlignedSample]:
    """For each target time, the index of the latest stamp at or before it.

    ``stamps`` must be sorted ascending. Targets with no earlier stamp get
    ``index=None``. Never picks a stamp later than its target.
    """
    result = []
    for target in targets:
        index = bisect.bisect_right(stamps, target) - 1
        if index < 0:
            result.append(AlignedSample(target, None, None))
        else:
            result.append(AlignedSample(target, float(stamps[index]), index))
    return result


def frame_times(start: float, end: float, fps: float) -> list[float]:
    """Frame times at ``fps`` from ``start`` up to and including ``end``."""
    if fps <= 0:
        raise ValueError("fps must be positive")
    if end < start:
        return []
    count = int(math.floor((end - start) * fps + 1e-9)) + 1
    return [start + k / fps for k in range(count)]


def within_tolerance(samples: Iterable[AlignedSample], tolerance: float) -> list[bool]:
    """Whether each pick is no older than ``tolerance`` seconds before its target."""
    return [s.index is not None and s.age <= tolerance for s in samples]


def stamp_to_seconds(stamp: Any) -> float:
    """Seconds of a builtin_interfaces/Time (rclpy or rosbags message object)."""
    return float(stamp.sec) + float(getattr(stamp, "nanosec", 0)) * 1e-9
