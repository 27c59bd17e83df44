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

    def _limit(self, target: np.ndarray, previous: np.ndarray | None, dt: float) -> tuple[np.ndarray, bool, bool]:
        """``target`` clamped to the limits and to the reach from ``previous``; and whether each limit acted."""
        command = np.clip(target, self.lower, self.upper)
        position_clamped = bool(np.any(command != target))
        velocity_clamped = False
        if previous is not None and np.all(np.isfinite(previous)):
            step = self.max_velocity * self.velocity_scale * max(dt, 0.0)
            limited = np.clip(command, previous - step, previous + step)
            velocity_clamped = bool(np.any(np.abs(limited - command) > 1e-12))
            # clipping around a previous command outside the limits must not leave them
            command = np.clip(limited, self.lower, self.upper)
        return command, position_clamped, velocity_clamped

    def filter(self, target: np.ndarray, previous: np.ndarray | None, dt: float) -> np.ndarray | None:
        """The safe command for ``target`` after ``previous`` (``dt`` seconds before), or None to send nothing."""
        target = np.asarray(target, dtype=np.float64)
        if target.shape != self.lower.shape or not np.all(np.isfinite(target)):
            self.counters.nonfinite_rejections += 1
            return None
        command, position_clamped, velocity_clamped = self._limit(target, previous, dt)
        self.counters.position_clamps += position_clamped
        self.counters.velocity_clamps += velocity_clamped
        return command

    def filter_path(self, start: np.ndarray, times: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """A safe version of a planned path after ``start`` (at time 0); None if any point is not finite.

        Planned points are previews: each kind of intervention counts once per path.
        """
        targets = np.asarray(targets, dtype=np.float64)
        if targets.size and not np.all(np.isfinite(targets)):
            self.counters.nonfinite_rejections += 1
            return None
        safe = np.empty_like(targets)
        previous, previous_time = np.asarray(start, dtype=np.float64), 0.0
        any_position = any_velocity = False
        for i, (t, target) in enumerate(zip(times, targets)):
            safe[i], position_clamped, velocity_clamped = self._limit(target, previous, t - previous_time)
            any_position, any_velocity = any_position or position_clamped, any_velocity or velocity_clamped
            previous, previous_time = safe[i], t
        self.counters.position_clamps += any_position
        self.counters.velocity_clamps += any_velocity
        return safe
