"""The last check before a command reaches the robot.

Every command is finite, inside the joint position limits, and no further from
the previous command than the velocity limits allow in the time between them.
Each intervention is counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dp_ros.robot_interface import RobotInterface


@dataclass
class SafetyCounters:
    position_clamps: int = 0
    velocity_clamps: int = 0
    nonfinite_rejections: int = 0


@dataclass
class SafetyFilter:
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    velocity_scale: float = 1.0
    """Fraction of the robot interface's velocity limits to allow (0 < scale <= 1)."""
    counters: SafetyCounters = field(default_factory=SafetyCounters)

    @classmethod
    def for_robot(cls, robot: RobotInterface, velocity_scale: float = 1.0) -> "SafetyFilter":
        if not 0 < velocity_scale <= 1:
            raise ValueError(f"velocity_scale must be in (0, 1]; got {velocity_scale}")
        return cls(np.array(robot.lower_limits), np.array(robot.upper_limits), np.array(robot.velocity_limits),
                   velocity_scale)

    def filter(self, target: np.ndarray, previous: np.ndarray | None, dt: float) -> np.ndarray | None:
        """The safe command for ``target`` after ``previous`` (``dt`` seconds before), or None to send nothing."""
        target = np.asarray(target, dtype=np.float64)
        if target.shape != self.lower.shape or not np.all(np.isfinite(target)):
            self.counters.nonfinite_rejections += 1
            return None
        command = np.clip(target, self.lower, self.upper)
        if np.any(command != target):
            self.counters.position_clamps += 1
        if previous is not None and np.all(np.isfinite(previous)):
            step = self.max_velocity * self.velocity_scale * max(dt, 0.0)
            limited = np.clip(command, previous - step, previous + step)
            if np.any(np.abs(limited - command) > 1e-12):
                self.counters.velocity_clamps += 1
            # clipping around a previous command outside the limits must not leave them
            command = np.clip(limited, self.lower, self.upper)
        return command

    def filter_path(self, start: np.ndarray, times: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """A safe version of a planned path after ``start`` (at time 0); None if any point is not finite."""
        if targets.size and not np.all(np.isfinite(targets)):
            self.counters.nonfinite_rejections += 1
            return None
        safe = np.empty_like(np.asarray(targets, dtype=np.float64))
        previous, previous_time = np.asarray(start, dtype=np.float64), 0.0
        counters = SafetyCounters(**vars(self.counters))
        for i, (t, target) in enumerate(zip(times, targets)):
            safe[i] = self.filter(target, previous, t - previous_time)
            previous, previous_time = safe[i], t
        # Planned points are previews: count each kind of intervention once per path.
        self.counters.position_clamps = counters.position_clamps + int(self.counters.position_clamps > counters.position_clamps)
        self.counters.velocity_clamps = counters.velocity_clamps + int(self.counters.velocity_clamps > counters.velocity_clamps)
        return safe
