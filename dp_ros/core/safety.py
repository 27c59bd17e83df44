"""The last check before a command reaches the robot: shape it so that its execution keeps the limits.

The filter takes the targets the policy wants at exactly the times that will be published and moves each
one as little as needed so that the command, executed the way its controller executes it
(:mod:`dp_ros.core.command_execution`), keeps every joint inside its position limits, under its velocity
limit and, where the robot interface gives them, under its acceleration limit. A target holding NaN or Inf
rejects the whole command. Each kind of intervention is counted once per command.

Where the controller starts a command is known only up to a spread (the arm moves on after its position
was measured; the controller takes the command a little earlier or later than expected): the first
segment keeps that spread in reserve. Position and velocity limits
come first; when no command can keep all limits (a start outside them), the one that moves back fastest
within the velocity limits is chosen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dp_ros.core.command_execution import JointLimits


@dataclass
class SafetyCounters:
    position_clamps: int = 0
    velocity_clamps: int = 0
    acceleration_clamps: int = 0
    nonfinite_rejections: int = 0


@dataclass(frozen=True)
class StartState:
    """What the filter knows of where and how the controller will start the next command."""

    position: np.ndarray
    """Best estimate of the start position (the measured position, or the set-point being replaced)."""
    spread: np.ndarray | float = 0.0
    """How far (rad or m, per joint) the true start may lie from ``position``."""
    entry_velocity: tuple[np.ndarray, np.ndarray] | None = None
    """Lowest and highest set-point velocity the controller may have at the start; None when it is still."""
    entry_duration: float = 0.0
    """How long that velocity has been held (the segment before, for the acceleration)."""


@dataclass
class _Interval:
    low: np.ndarray
    high: np.ndarray

    def narrow(self, low: np.ndarray, high: np.ndarray) -> None:
        self.low = np.maximum(self.low, low)
        self.high = np.minimum(self.high, high)

    def excludes(self, value: np.ndarray) -> bool:
        return bool(np.any((value < self.low - 1e-12) | (value > self.high + 1e-12)))


@dataclass
class SafetyFilter:
    limits: JointLimits
    counters: SafetyCounters = field(default_factory=SafetyCounters)

    @classmethod
    def for_robot(cls, robot, scale: float = 1.0) -> "SafetyFilter":
        """The robot interface's limits, velocities and accelerations times ``scale`` (1: as they are)."""
        return cls(JointLimits.for_robot(robot, scale))

    # --- public -------------------------------------------------------------------------
    def shape_trajectory(self, start: StartState, times: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
        """Safe positions for a trajectory with points at ``times`` (seconds after its start); None if not finite."""
        return self._shape(start, np.asarray(times, dtype=np.float64), targets, comes_to_rest=True)

    def shape_step(self, start: StartState, target: np.ndarray, period: float) -> np.ndarray | None:
        """The safe step target one command period (``period``) after ``start``; None if not finite."""
        shaped = self._shape(start, np.array([period]), np.asarray(target, dtype=np.float64)[None, :],
                             comes_to_rest=False)
        return None if shaped is None else shaped[0]

    # --- shaping ------------------------------------------------------------------------
    def _valid(self, targets: np.ndarray) -> bool:
        n = self.limits.lower.size
        return targets.ndim == 2 and targets.shape[1] == n and targets.shape[0] > 0 and bool(np.all(np.isfinite(targets)))

    def _shape(self, start: StartState, times: np.ndarray, targets, comes_to_rest: bool) -> np.ndarray | None:
        targets = np.asarray(targets, dtype=np.float64)
        if not self._valid(targets) or times.shape != (targets.shape[0],) or np.any(np.diff(times) <= 0) \
                or times[0] <= 0:
            self.counters.nonfinite_rejections += 1
            return None
        durations = np.diff(np.concatenate([[0.0], times]))
        rest_caps = self._rest_caps(durations) if comes_to_rest else None
        shaped = np.empty_like(targets)
        previous = np.asarray(start.position, dtype=np.float64)
        previous_velocity = None
        clamped = {"position": False, "velocity": False, "acceleration": False}
        for i, duration in enumerate(durations):
            desired = (targets[i] - previous) / duration
            hard, soft, position, speed = self._intervals(i, start, duration, previous, previous_velocity,
                                                          durations, rest_caps)
            velocity = self._choose(desired, hard, soft, position, speed)
            clamped["position"] |= position.excludes(desired)
            clamped["velocity"] |= bool(np.any(np.abs(desired) > self.limits.velocity + 1e-12))
            clamped["acceleration"] |= soft.excludes(desired)
            shaped[i] = previous + velocity * duration
            previous, previous_velocity = shaped[i], velocity
        self.counters.position_clamps += clamped["position"]
        self.counters.velocity_clamps += clamped["velocity"]
        self.counters.acceleration_clamps += clamped["acceleration"]
        return shaped

    def _rest_caps(self, durations: np.ndarray) -> np.ndarray | None:
        """Per segment, the largest speed from which the path can still come to rest at its end."""
        acceleration = self.limits.acceleration
        if acceleration is None:
            return None
        caps = np.empty((durations.size, acceleration.size))
        caps[-1] = acceleration * durations[-1]
        for i in range(durations.size - 2, -1, -1):
            caps[i] = caps[i + 1] + acceleration * (durations[i] + durations[i + 1]) / 2
        return caps

    def _intervals(self, i: int, start: StartState, duration: float, previous: np.ndarray,
                   previous_velocity: np.ndarray | None, durations: np.ndarray, rest_caps: np.ndarray | None):
        """Velocity intervals for segment ``i`` (hard: position and speed limits; soft: acceleration), the
        position limits alone, and the speed allowed."""
        limits = self.limits
        # the first segment keeps the start's spread in reserve
        reserve = np.broadcast_to(start.spread, limits.velocity.shape) / duration if i == 0 \
            else np.zeros_like(limits.velocity)
        speed = np.maximum(limits.velocity - reserve, 0.0)
        position = _Interval((limits.lower - previous) / duration, (limits.upper - previous) / duration)
        hard = _Interval(-speed, speed.copy())
        hard.narrow(position.low, position.high)
        soft = _Interval(np.full_like(speed, -np.inf), np.full_like(speed, np.inf))
        acceleration = limits.acceleration
        if acceleration is None:
            return hard, soft, position, speed
        if i == 0 and start.entry_velocity is not None:
            lowest, highest = start.entry_velocity
            mean = (start.entry_duration + duration) / 2
            soft.narrow(highest - acceleration * mean + reserve, lowest + acceleration * mean - reserve)
        elif i > 0:
            mean = (durations[i - 1] + duration) / 2
            # the first segment's speed is known only up to the start's spread
            known = np.broadcast_to(start.spread, limits.velocity.shape) / durations[0] if i == 1 else 0.0
            soft.narrow(previous_velocity - acceleration * mean + known,
                        previous_velocity + acceleration * mean - known)
        if rest_caps is not None:
            cap = np.maximum(rest_caps[i] - reserve, 0.0)
            soft.narrow(-cap, cap)
        # brake before the position limits: stopping distance v^2 / (2a) fits in what is left after this segment
        room_up = np.maximum(limits.upper - previous, 0.0)
        room_down = np.maximum(previous - limits.lower, 0.0)
        limited = np.isfinite(acceleration)
        a = np.where(limited, acceleration, 1.0)
        ad = a * duration
        soft.narrow(np.where(limited, ad - np.sqrt(ad * ad + 2 * a * room_down), -np.inf),
                    np.where(limited, -ad + np.sqrt(ad * ad + 2 * a * room_up), np.inf))
        return hard, soft, position, speed

    @staticmethod
    def _choose(desired: np.ndarray, hard: _Interval, soft: _Interval, position: _Interval,
                speed: np.ndarray) -> np.ndarray:
        """The velocity nearest ``desired`` within both intervals; the hard one wins where they do not meet."""
        low, high = np.maximum(hard.low, soft.low), np.minimum(hard.high, soft.high)
        velocity = np.clip(desired, low, np.maximum(low, high))
        apart = low > high
        if np.any(apart):
            nearest_to_soft = np.clip(np.clip(desired, soft.low, soft.high), hard.low, np.maximum(hard.low, hard.high))
            velocity = np.where(apart, nearest_to_soft, velocity)
        outside = hard.low > hard.high  # the start lies beyond a limit: head back as fast as allowed
        if np.any(outside):
            back = np.clip(np.clip(desired, position.low, position.high), -speed, speed)
            velocity = np.where(outside, back, velocity)
        return velocity
