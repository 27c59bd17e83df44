"""Joint commands in the forms ros2_control controllers accept, and back to arrays.

Building: a position vector or a planned chunk -> trajectory_msgs/JointTrajectory
(joint_trajectory_controller), std_msgs/Float64MultiArray (forward_command_controller)
or sensor_msgs/JointState. Parsing (what a simulated robot does with them): a
command message -> times and positions in the robot interface's joint order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dp_ros.conversions.joint_state import JointOrder, JointStateError
from dp_ros.core.time_alignment import stamp_to_seconds


class CommandError(ValueError):
    """A command message cannot be turned into joint targets (the message says why)."""


def command_message_class(command_type: str):
    """The message class for a robot interface ``command.type``."""
    if command_type == "joint_trajectory":
        from trajectory_msgs.msg import JointTrajectory

        return JointTrajectory
    if command_type == "float64_multi_array":
        from std_msgs.msg import Float64MultiArray

        return Float64MultiArray
    if command_type == "joint_state":
        from sensor_msgs.msg import JointState

        return JointState
    raise CommandError(f"unknown command type {command_type!r}")


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration

    nanoseconds = int(round(max(0.0, seconds) * 1e9))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def make_trajectory(joint_names: Sequence[str], times_from_start: Sequence[float], positions: np.ndarray,
                    stamp: Any = None, velocities: np.ndarray | None = None):
    """A JointTrajectory with one point per row of ``positions`` (shape (P, J))."""
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    positions = np.asarray(positions, dtype=np.float64).reshape(len(times_from_start), len(joint_names))
    msg = JointTrajectory()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.joint_names = list(joint_names)
    for i, t in enumerate(times_from_start):
        point = JointTrajectoryPoint()
        point.positions = positions[i].tolist()
        if velocities is not None:
            point.velocities = np.asarray(velocities[i], dtype=np.float64).tolist()
        point.time_from_start = _duration(float(t))
        msg.points.append(point)
    return msg


def make_position_command(command_type: str, joint_names: Sequence[str], positions: np.ndarray,
                          stamp: Any = None, time_from_start: float = 0.0):
    """One position target in the given command type."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1)
    if command_type == "joint_trajectory":
        return make_trajectory(joint_names, [time_from_start], positions[None, :], stamp)
    if command_type == "float64_multi_array":
        from std_msgs.msg import Float64MultiArray, MultiArrayDimension

        msg = Float64MultiArray()
        msg.layout.dim.append(MultiArrayDimension(label="joints", size=len(positions), stride=len(positions)))
        msg.data = positions.tolist()
        return msg
    if command_type == "joint_state":
        from dp_ros.conversions.joint_state import make_joint_state

        return make_joint_state(joint_names, positions, stamp)
    raise CommandError(f"unknown command type {command_type!r}")


def command_message(command_type: str, joint_names: Sequence[str], times_from_start: np.ndarray,
                    positions: np.ndarray, stamp: Any = None):
    """The message for a command shaped by dp_ros's safety filter, with exactly its points and times.

    A JointTrajectory keeps a zero header stamp: the controller starts it when it takes it (``stamp`` is
    only for the other types, whose JointState header it fills)."""
    if command_type == "joint_trajectory":
        return make_trajectory(joint_names, times_from_start, positions)
    return make_position_command(command_type, joint_names, np.asarray(positions)[0], stamp=stamp)


@dataclass(frozen=True)
class ParsedCommand:
    """Targets from one command message, in the robot interface's joint order."""

    times_from_start: np.ndarray
    """(P,) seconds after ``stamp`` (or after receipt when stamp is None) for each target."""
    positions: np.ndarray
    """(P, J) joint position targets."""
    stamp: float | None
    """Header stamp in seconds, None when the message has none (start on receipt)."""


def _check_finite(positions: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(positions)):
        raise CommandError(f"{what} holds NaN or Inf; ignored")


def parse_command(msg: Any, order: JointOrder) -> ParsedCommand:
    """JointTrajectory, Float64MultiArray or JointState -> targets in ``order``."""
    if hasattr(msg, "points") and hasattr(msg, "joint_names"):
        if not msg.points:
            raise CommandError("JointTrajectory has no points")
        try:
            rows = [order.vector(msg.joint_names, p.positions) for p in msg.points]
        except JointStateError as exc:
            raise CommandError(f"JointTrajectory: {exc}") from None
        times = np.array([stamp_to_seconds(p.time_from_start) for p in msg.points])
        if np.any(np.diff(times) < 0):
            raise CommandError("JointTrajectory points are not in increasing time_from_start")
        stamp = stamp_to_seconds(msg.header.stamp)
        return ParsedCommand(times, np.stack(rows), stamp if stamp > 0 else None)
    if hasattr(msg, "layout") and hasattr(msg, "data"):
        data = np.asarray(msg.data, dtype=np.float64).reshape(-1)
        if data.size != len(order.joint_names):
            raise CommandError(f"Float64MultiArray has {data.size} values; the robot has {len(order.joint_names)} joints "
                               f"({order.joint_names})")
        _check_finite(data, "Float64MultiArray")
        return ParsedCommand(np.zeros(1), data[None, :], None)
    if hasattr(msg, "name") and hasattr(msg, "position"):
        try:
            positions = order.positions(msg)
        except JointStateError as exc:
            raise CommandError(str(exc)) from None
        stamp = stamp_to_seconds(msg.header.stamp)
        return ParsedCommand(np.zeros(1), positions[None, :], stamp if stamp > 0 else None)
    raise CommandError(f"not a joint command message: {type(msg).__name__}")

