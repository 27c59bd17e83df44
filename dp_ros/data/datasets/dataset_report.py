"""What ``dp-ros check-dataset`` found: findings by severity, episode and frame, and a summary."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

ERROR, WARNING, NOTE = "error", "warning", "note"


@dataclass
class Finding:
    severity: str
    check: str
    message: str
    episode: int | None = None
    frame: int | None = None


@dataclass
class DatasetReport:
    root: str
    fps: int = 0
    episodes: int = 0
    frames: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    data: Any = field(default=None, repr=False)
    """The columns read, kept for plotting."""

    def add(self, severity: str, check: str, message: str, episode: int | None = None, frame: int | None = None):
        self.findings.append(Finding(severity, check, message, episode, frame))

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.root, "fps": self.fps, "episodes": self.episodes, "frames": self.frames,
                "errors": self.count(ERROR), "warnings": self.count(WARNING), "summary": self.summary,
                "findings": [asdict(f) for f in self.findings]}

    def text(self) -> str:
        s = self.summary
        lines = [f"dataset {self.root}: {self.episodes} episodes, {self.frames} frames at {self.fps} fps"]
        lengths = s.get("episode_length", {})
        if lengths:
            lines.append(f"  episode length   min {lengths['min']}  median {lengths['median']:g}  max {lengths['max']}  "
                         f"(std {lengths['std']:.1f} frames)")
        jerk = s.get("action_jerk", {})
        if jerk:
            lines.append(f"  action jerk      |jerk| median {jerk['median']:.3g}  p95 {jerk['p95']:.3g}  max "
                         f"{jerk['max']:.3g} (units/s^3); {jerk['outliers']} outlier windows")
        lines.append(f"  non-finite       {s.get('nonfinite_values', 0)} NaN/Inf values")
        lines.append(f"  timestamps       {s.get('uneven_timestamp_episodes', 0)} episodes not evenly spaced at 1/fps")
        if "split_episodes" in s:
            lines.append(f"  split episodes   {s['split_episodes']} episodes start after a gap in their inputs; "
                         f"{s['frames_dropped_inside']} frames dropped inside episodes")
        if "frozen_runs" in s:
            lines.append(f"  frozen cameras   {s['frozen_runs']} runs")
        for severity in (ERROR, WARNING, NOTE):
            for finding in (f for f in self.findings if f.severity == severity):
                lines.append(f"{severity.upper():8s}{finding.check}: {finding.message}")
        lines.append(f"{self.count(ERROR)} errors, {self.count(WARNING)} warnings")
        return "\n".join(lines)


def nan_safe(value: Any) -> Any:
    """JSON has no NaN: replace non-finite floats by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_safe(v) for v in value]
    return value
