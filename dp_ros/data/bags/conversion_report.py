"""What a bag conversion did: episodes written or skipped, where episodes were split, sync statistics."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dp_ros.data.frame_sync import Gap, StreamStats


@dataclass
class EpisodeResult:
    """One run of consecutive usable frames of a source episode (a bag, or a marked or gap-separated part of one).

    A source episode with unusable frames inside is split into several of these (``part`` 0, 1, ...); each is
    a dataset episode when it has ``min_frames`` frames.
    """

    bag: str
    index_in_bag: int
    """The source episode within its bag."""
    part: int
    start: float
    """Time of the first frame (seconds, in the chosen time source)."""
    frames: int
    streams: dict[str, StreamStats]
    gap_before: Gap | None = None
    """Unusable frames right before the first frame: the gap that split this part off (part > 0), or frames
    trimmed at the start of the source episode (part 0)."""
    gap_after: Gap | None = None
    """Unusable frames trimmed at the end of the source episode (last part only)."""
    saved_as: int | None = None
    """Dataset episode index, None when not written (too short)."""
    silent: list[str] = field(default_factory=list)
    """Streams that had no message at all during the source episode (so it has no frames)."""

    @property
    def dropped(self) -> int:
        return sum(g.frames for g in (self.gap_before, self.gap_after) if g is not None)

    @property
    def label(self) -> str:
        return f"{Path(self.bag).name}#{self.index_in_bag}" + (f".{self.part}" if self.part else "")

    def record(self, period: float) -> dict[str, Any]:
        """What the dataset's episode log keeps about this episode."""
        gaps = {name: gap.as_dict(period) for name, gap in (("gap_before", self.gap_before),
                                                           ("gap_after", self.gap_after)) if gap is not None}
        return {"source": self.bag, "index_in_bag": self.index_in_bag, "part": self.part,
                "start_time": round(self.start, 6), **gaps,
                "sync": {k: v.as_dict() for k, v in self.streams.items()}}


@dataclass
class ConversionReport:
    output: str
    fps: int
    episodes: list[EpisodeResult] = field(default_factory=list)
    bag_seconds: float = 0.0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    """With ``--jobs``: per worker process, the bags it converted and its peak memory."""

    @property
    def saved(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if e.saved_as is not None]

    @property
    def skipped(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if e.saved_as is None]

    @property
    def splits(self) -> list[EpisodeResult]:
        """Parts that a gap split off an episode (each one's ``gap_before`` is the gap)."""
        return [e for e in self.episodes if e.part > 0]

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.saved)

    @property
    def dropped(self) -> int:
        """Unusable frames (in gaps and trimmed ends) plus the frames of parts too short to write."""
        return sum(e.dropped for e in self.episodes) + sum(e.frames for e in self.skipped)

    def stream_totals(self) -> dict[str, StreamStats]:
        totals: dict[str, StreamStats] = {}
        for episode in self.episodes:
            for name, stats in episode.streams.items():
                totals.setdefault(name, StreamStats()).merge(stats)
        return totals

    def as_dict(self) -> dict[str, Any]:
        period = 1.0 / self.fps
        return {"output": self.output, "fps": self.fps, "episodes_saved": len(self.saved),
                "episodes_skipped": len(self.skipped), "splits": len(self.splits), "frames": self.frames,
                "frames_dropped": self.dropped, "bag_seconds": round(self.bag_seconds, 3),
                "streams": {k: v.as_dict() for k, v in self.stream_totals().items()},
                "episodes": [{**e.record(period), "frames": e.frames, "saved_as": e.saved_as} for e in self.episodes],
                **({"jobs": self.jobs} if self.jobs else {})}

    def summary(self) -> str:
        lines = [f"{len(self.saved)} episodes, {self.frames} frames at {self.fps} fps "
                 f"from {self.bag_seconds:.1f} s of bags -> {self.output}"]
        if self.splits:
            lines.append(f"split {len(self.splits)} times where inputs were stale or missing (each part is its own "
                         "episode, so time is never compressed): " + "; ".join(
                             f"{e.label} after {e.gap_before.describe()}" for e in self.splits if e.gap_before))
        if self.skipped:
            lines.append(f"not written, fewer frames than --min-frames: {len(self.skipped)} episodes or parts: "
                         + ", ".join(f"{e.label} ({e.frames} frames"
                                     + (f"; no messages from {', '.join(e.silent)}" if e.silent else "") + ")"
                                     for e in self.skipped))
        trimmed = [g for e in self.episodes for g in (e.gap_before if e.part == 0 else None, e.gap_after) if g]
        if trimmed:
            lines.append(f"trimmed at episode ends: {sum(g.frames for g in trimmed)} unusable frames")
        total = self.frames + self.dropped
        lines.append(f"frames not in the dataset: {self.dropped} of {total}"
                     + (f" ({100 * self.dropped / total:.1f} %)" if total else ""))
        lines.append(f"{'stream':34s} {'used':>7s} {'stale':>6s} {'missing':>7s} {'mean age':>9s} {'max age':>8s}")
        for name, stats in self.stream_totals().items():
            mean = "-" if math.isnan(stats.age_mean) else f"{stats.age_mean * 1000:.1f} ms"
            lines.append(f"{name:34s} {stats.used:7d} {stats.stale:6d} {stats.missing:7d} {mean:>9s} "
                         f"{stats.age_max * 1000:6.1f} ms")
        for job in self.jobs:
            what = f"job {job['job']}: {job['bags']} bags" if job["bags"] else "merging the parts"
            lines.append(f"{what}, peak memory {job['peak_rss_mb']:.0f} MB")
        return "\n".join(lines)
