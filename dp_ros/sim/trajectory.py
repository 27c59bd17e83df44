"""Position targets over time, the way ros2_control's controllers turn commands into set-points.

A new trajectory replaces the current one (joint_trajectory_controller): the
set-point moves linearly from where it starts (the set-point it had when the
trajectory arrived, or the measured position, see ``interpolate_from`` in the
robot interface) to the first point, then from point to point at their times,
and holds the last point.
Points already in the past are passed over (sampling at the current time), as
the controller does. A single position (forward_command_controller) is held
from now on.
"""
from __future__ import annotations

import numpy as np


class TrajectoryFollower:
    """Piecewise-linear joint set-points in one time base (seconds)."""

    def __init__(self, initial: np.ndarray):
        self._times = np.zeros(1)
        self._points = np.asarray(initial, dtype=np.float64).reshape(1, -1).copy()

    @property
    def num_joints(self) -> int:
        return self._points.shape[1]

    @property
    def end_time(self) -> float:
        return float(self._times[-1])

    def hold(self, positions: np.ndarray) -> None:
        """Hold ``positions`` from now on."""
        self._times = np.zeros(1)
        self._points = np.asarray(positions, dtype=np.float64).reshape(1, -1).copy()

    def follow(self, now: float, times: np.ndarray, positions: np.ndarray, start: np.ndarray | None = None) -> None:
        """From ``now`` on, reach ``positions[k]`` (P, J) at absolute ``times[k]`` (P,), starting from ``start``
        (default: the set-point at ``now``). Before ``now`` the old trajectory stays as it was (``now`` may lie
        ahead of the time the set-point is sampled at)."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        positions = np.asarray(positions, dtype=np.float64).reshape(len(times), self.num_joints)
        if np.any(np.diff(times) < 0):
            raise ValueError("trajectory times must not decrease")
        if times[0] > now:
            origin = self.sample(now) if start is None else np.asarray(start, dtype=np.float64)
        else:  # points already in the past are passed over: the set-point jumps to where the trajectory is now
            origin = np.array([np.interp(now, times, positions[:, j]) for j in range(self.num_joints)])
        future = times > now
        before = self._times < now
        self._times = np.concatenate([self._times[before], [now], times[future]])
        self._points = np.concatenate([self._points[before], origin[None, :], positions[future]])

    def shift(self, seconds: float) -> None:
        """Move every point ``seconds`` later (earlier when negative)."""
        self._times = self._times + seconds

    def sample(self, t: float) -> np.ndarray:
        """The set-point at time ``t``."""
        times, points = self._times, self._points
        if t <= times[0]:
            return points[0].copy()
        if t >= times[-1]:
            return points[-1].copy()
        k = int(np.searchsorted(times, t, side="right"))
        t0, t1 = times[k - 1], times[k]
        if t1 <= t0:
            return points[k].copy()
        weight = (t - t0) / (t1 - t0)
        return points[k - 1] + weight * (points[k] - points[k - 1])
