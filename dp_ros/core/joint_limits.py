"""Joint limits, and the judge of a piecewise-linear set-point path against them (ROS-free).

Speed is judged per linear segment. Acceleration, where the robot interface gives acceleration limits, is
the change of velocity between consecutive segments over the mean of their durations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATIO_TOLERANCE = 1e-4
"""Relative slack when judging a ratio against 1 (rounding, and the microseconds a message's stamps carry)."""
POSITION_TOLERANCE = 1e-9


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits, in the robot interface's joint order."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray | None = None
    """None when the robot interface gives no acceleration limits."""
    continuous: np.ndarray | None = None
    """Per joint, whether it turns without end (its position limits are then -inf, inf); None: none does."""

    @classmethod
    def for_robot(cls, robot, scale: float = 1.0) -> "JointLimits":
        """The robot interface's limits, velocities (and accelerations) scaled by ``scale`` (the policy node's
        velocity_scale; 1: as they are)."""
        if not 0 < scale <= 1:
            raise ValueError(f"velocity_scale must be in (0, 1]; got {scale}")
        acceleration = robot.acceleration_limits
        continuous = np.array([bool(getattr(j, "continuous", False)) for j in robot.joints])
        return cls(np.array(robot.lower_limits, dtype=np.float64), np.array(robot.upper_limits, dtype=np.float64),
                   np.array(robot.velocity_limits, dtype=np.float64) * scale,
                   None if acceleration is None else np.array(acceleration, dtype=np.float64) * scale,
                   continuous if continuous.any() else None)

    def shortest_way(self, position: np.ndarray, toward: np.ndarray) -> np.ndarray:
        """``position`` with each continuous joint moved by whole turns to lie within half a turn of ``toward``
        (joint_trajectory_controller's wraparound; exactly half a turn away goes the way ``toward`` lies)."""
        position = np.asarray(position, dtype=np.float64)
        if self.continuous is None:
            return position
        toward = np.asarray(toward, dtype=np.float64)
        distance = np.mod(toward - position + np.pi, 2 * np.pi) - np.pi
        half_turn = np.abs(np.abs(distance) - np.pi) < 1e-9
        distance = np.where(half_turn, np.where(toward > position, np.abs(distance), -np.abs(distance)), distance)
        return np.where(self.continuous, toward - distance, position)


@dataclass(frozen=True)
class LimitCheck:
    """How far an executed path goes beyond the limits (all zero for a path that keeps them)."""

    position_excess: float = 0.0
    """Largest distance (rad or m) of a commanded point outside the position limits."""
    velocity_ratio: float = 0.0
    """Largest segment speed over the joint's velocity limit (1 = at the limit)."""
    acceleration_ratio: float = 0.0
    """Largest acceleration over the joint's acceleration limit (0 without acceleration limits)."""

    @property
    def within_limits(self) -> bool:
        return (self.position_excess <= POSITION_TOLERANCE and self.velocity_ratio <= 1 + RATIO_TOLERANCE
                and self.acceleration_ratio <= 1 + RATIO_TOLERANCE)

    def worst(self, other: "LimitCheck") -> "LimitCheck":
        return LimitCheck(max(self.position_excess, other.position_excess),
                          max(self.velocity_ratio, other.velocity_ratio),
                          max(self.acceleration_ratio, other.acceleration_ratio))

    def describe(self) -> str:
        return (f"position {self.position_excess:.4f} beyond the limits, velocity {self.velocity_ratio:.2f}x "
                f"and acceleration {self.acceleration_ratio:.2f}x the limits")


def _ratio(values: np.ndarray, limits: np.ndarray) -> float:
    return float(np.max(np.abs(values) / limits)) if values.size else 0.0


def check_path(limits: JointLimits, times: np.ndarray, positions: np.ndarray, entry_velocity: np.ndarray | None = None,
               entry_duration: float = 0.0, comes_to_rest: bool = False) -> LimitCheck:
    """Judge a piecewise-linear set-point path against ``limits``.

    ``positions[0]`` at ``times[0]`` is where the set-point starts (the robot's state, not a command); the other
    rows are commanded points. ``entry_velocity`` is the set-point's velocity before the path, held for
    ``entry_duration`` seconds; ``comes_to_rest`` adds the hold after the last point.
    """
    times = np.asarray(times, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    durations = np.diff(times)
    steps = np.diff(positions, axis=0)
    commanded = positions[1:]
    excess = np.maximum(limits.lower - commanded, commanded - limits.upper)
    position_excess = max(0.0, float(np.max(excess))) if excess.size else 0.0
    if np.any(durations <= 0):
        still = np.all(np.abs(steps[durations <= 0]) <= POSITION_TOLERANCE)
        return LimitCheck(position_excess, 1.0 if still else np.inf, np.inf)
    velocities = steps / durations[:, None]
    velocity_ratio = _ratio(velocities, limits.velocity)
    acceleration_ratio = 0.0
    if limits.acceleration is not None and velocities.size:
        segment_velocities, segment_durations = velocities, durations
        if entry_velocity is not None and entry_duration > 0:
            segment_velocities = np.vstack([np.asarray(entry_velocity, dtype=np.float64), segment_velocities])
            segment_durations = np.concatenate([[entry_duration], segment_durations])
        if comes_to_rest:
            segment_velocities = np.vstack([segment_velocities, np.zeros(velocities.shape[1])])
            segment_durations = np.concatenate([segment_durations, segment_durations[-1:]])
        means = (segment_durations[:-1] + segment_durations[1:]) / 2
        accelerations = np.diff(segment_velocities, axis=0) / means[:, None]
        acceleration_ratio = _ratio(accelerations, limits.acceleration)
    return LimitCheck(position_excess, velocity_ratio, acceleration_ratio)
