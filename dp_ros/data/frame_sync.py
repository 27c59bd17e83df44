"""Frames at fixed times from several timestamped streams, with the causal pick and tolerance rule.

Each stream is a :class:`~dp_ros.core.time_alignment.TimestampedBuffer`. For a
frame time ``t`` every stream gives the latest sample at or before ``t`` (never a
later one); a stream read with a ``lead`` (the "next observed state" action) gives
the latest sample at or before ``t + lead``. A pick older than ``tolerance``
seconds is *stale*, a stream with nothing yet is *missing*: either way the frame
is not usable, and the statistics say which stream was to blame. Used by the
live recorder and the bag converter alike.

Stamps and frame times are float seconds computed along different paths (a
stamp from integer nanoseconds, a frame time as start + k / fps), so a sample
stamped within :data:`SAME_TIME` after a frame time counts as taken at it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dp_ros.core.time_alignment import Sample, TimestampedBuffer

SAME_TIME = 1e-6
"""Seconds: stamps this close are the same instant (far below any sensor's resolution, far above float error)."""


@dataclass
class StreamStats:
    """How one stream fared over the frames picked so far."""

    used: int = 0
    """Frames that took a sample from this stream within tolerance."""
    stale: int = 0
    """Frames whose newest sample from this stream was older than the tolerance."""
    missing: int = 0
    """Frames before this stream had any sample."""
    age_sum: float = 0.0
    age_max: float = 0.0

    @property
    def age_mean(self) -> float:
        return self.age_sum / self.used if self.used else math.nan

    def merge(self, other: "StreamStats") -> None:
        self.used += other.used
        self.stale += other.stale
        self.missing += other.missing
        self.age_sum += other.age_sum
        self.age_max = max(self.age_max, other.age_max)

    def as_dict(self) -> dict[str, float]:
        return {"used": self.used, "stale": self.stale, "missing": self.missing,
                "age_mean_s": None if math.isnan(self.age_mean) else round(self.age_mean, 6),
                "age_max_s": round(self.age_max, 6)}


@dataclass
class FramePick:
    """The samples chosen for one frame time, and why the frame is unusable if it is."""

    time: float
    samples: dict[str, Sample] = field(default_factory=dict)
    ages: dict[str, float] = field(default_factory=dict)
    """Stream -> age in seconds of the sample taken."""
    stale: dict[str, float] = field(default_factory=dict)
    """Stream -> age in seconds of its newest sample, for streams beyond the tolerance."""
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stale and not self.missing

    def causes(self) -> dict[str, float | None]:
        """Why the frame is unusable: stream -> age of its newest sample, None when it had none."""
        return {**{name: None for name in self.missing}, **self.stale}


def describe_causes(causes: dict[str, float | None]) -> str:
    """Why frames are unusable (:meth:`FramePick.causes`), in words."""
    return ", ".join(f"{name} had no message" if age is None else f"{name} was {age * 1000:.0f} ms old"
                     for name, age in causes.items())


class FrameSync:
    """Named streams and the pick rule; counts per stream why frames were unusable."""

    def __init__(self, tolerance: float, keep: float = 5.0):
        if not tolerance > 0:
            raise ValueError(f"tolerance must be positive seconds, got {tolerance}")
        self.tolerance = float(tolerance)
        self.keep = float(keep)
        self.buffers: dict[str, TimestampedBuffer] = {}
        self._views: dict[str, tuple[str, float]] = {}
        self.stats: dict[str, StreamStats] = {}

    def add_stream(self, name: str) -> None:
        self.buffers[name] = TimestampedBuffer(keep=self.keep)
        self._views[name] = (name, 0.0)
        self.stats[name] = StreamStats()

    def add_view(self, name: str, source: str, lead: float) -> None:
        """A stream read ``lead`` seconds ahead of the frame time from another stream's buffer."""
        if source not in self.buffers:
            raise KeyError(f"no stream {source!r} to view")
        self._views[name] = (source, float(lead))
        self.stats[name] = StreamStats()

    @property
    def names(self) -> list[str]:
        return list(self._views)

    def lead(self, name: str) -> float:
        return self._views[name][1]

    @property
    def max_lead(self) -> float:
        return max((lead for _, lead in self._views.values()), default=0.0)

    def add(self, name: str, stamp: float, value: Any) -> bool:
        return self.buffers[name].add(stamp, value)

    def pick(self, t: float, count: bool = True) -> FramePick:
        """The latest sample at or before ``t`` (plus lead) of every stream; updates the statistics when ``count``."""
        result = FramePick(time=t)
        for name, (source, lead) in self._views.items():
            target = t + lead
            sample = self.buffers[source].at_or_before(target + SAME_TIME)
            if sample is None:
                result.missing.append(name)
                continue
            age = max(0.0, target - sample.stamp)
            if age > self.tolerance:
                result.stale[name] = age
                continue
            result.samples[name] = sample
            result.ages[name] = age
        if count:
            self.count(result)
        return result

    def count(self, pick: FramePick) -> None:
        """Add ``pick`` to the statistics (for a pick made with ``count=False``)."""
        for name in pick.missing:
            self.stats[name].missing += 1
        for name in pick.stale:
            self.stats[name].stale += 1
        for name, age in pick.ages.items():
            stats = self.stats[name]
            stats.used += 1
            stats.age_sum += age
            stats.age_max = max(stats.age_max, age)

    def reset_stats(self) -> dict[str, StreamStats]:
        """Return the statistics so far and start counting afresh."""
        old = self.stats
        self.stats = {name: StreamStats() for name in self._views}
        return old


@dataclass
class Gap:
    """A run of unusable frames (some input stale or missing) next to an episode."""

    time: float
    """Time of the first unusable frame (seconds, in the chosen time source)."""
    frames: int
    causes: dict[str, float | None] = field(default_factory=dict)
    """At the first unusable frame: stream -> age of its newest message in seconds, None when it had none."""

    def as_dict(self, period: float) -> dict[str, Any]:
        return {"time": round(self.time, 6), "frames": self.frames, "seconds": round(self.frames * period, 6),
                "causes": {k: None if v is None else round(v, 6) for k, v in self.causes.items()}}

    def describe(self) -> str:
        return f"{self.frames} unusable frames from {self.time:.3f} s ({describe_causes(self.causes)})"
