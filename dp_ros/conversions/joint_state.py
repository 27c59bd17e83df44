"""sensor_msgs/JointState to ordered position vectors, and back.

Joints are matched by name: the vector follows the robot interface's order,
extra joints in the message are ignored, missing ones are an error. Works on
rclpy and rosbags message objects alike.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class JointStateError(ValueError):
    """A JointState message cannot give the robot's joint vector (the message says why)."""


class JointOrder:
    """Reorders JointState positions into a fixed joint order (index maps are cached)."""

    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = list(joint_names)
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def _indices(self, names: tuple[str, ...]) -> np.ndarray:
        indices = self._cache.get(names)
        if indices is None:
            position = {name: i for i, name in enumerate(names)}
            missing = [n for n in self.joint_names if n not in position]
            if missing:
                raise JointStateError(
                    f"JointState lacks joints {missing} (it has {list(names)}); the robot interface needs {self.joint_names}")
            indices = np.array([position[n] for n in self.joint_names], dtype=np.intp)
            if len(self._cache) < 64:
                self._cache[names] = indices
        return indices

    def positions(self, msg: Any) -> np.ndarray:
        """The positions of this order's joints, float64, validated finite."""
        return self.vector(msg.name, msg.position, what="position")

    def vector(self, names: Sequence[str], values: Sequence[float], what: str = "position") -> np.ndarray:
        names = tuple(names)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.size != len(names):
            raise JointStateError(f"JointState has {len(names)} names but {values.size} {what} values")
        vector = values[self._indices(names)]
        if not np.all(np.isfinite(vector)):
            bad = [n for n, v in zip(self.joint_names, vector) if not np.isfinite(v)]
            raise JointStateError(f"JointState {what} is NaN or Inf for joints {bad}")
        return vector


def make_joint_state(joint_names: Sequence[str], positions: Sequence[float], stamp: Any = None,
                     velocities: Sequence[float] | None = None):
    """An rclpy sensor_msgs/JointState."""
    from sensor_msgs.msg import JointState

    msg = JointState()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.name = list(joint_names)
    msg.position = [float(p) for p in positions]
    if velocities is not None:
        msg.velocity = [float(v) for v in velocities]
    return msg
