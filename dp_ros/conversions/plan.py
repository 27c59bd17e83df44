"""The policy's plan as ROS messages, and back to arrays (for viewers and tests).

- the executing plan -> trajectory_msgs/JointTrajectory whose header stamp is the
  time of its first action and whose points are due at stamp + time_from_start
  (true stamps: a plot of the points against time shows when each is due);
- a chunk as it joined the plan -> dp_ros_msgs/PolicyChunk;
- a command the safety filter changed -> dp_ros_msgs/SafetyIntervention.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dp_ros.conversions.commands import make_trajectory
from dp_ros.core.choices import Transition
from dp_ros.core.plan_events import ChunkRecord
from dp_ros.core.time_alignment import stamp_to_seconds


def seconds_to_stamp(seconds: float):
    """builtin_interfaces/Time for ``seconds`` since the clock's epoch."""
    from builtin_interfaces.msg import Time

    nanoseconds = int(round(max(0.0, float(seconds)) * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def plan_message(joint_names: Sequence[str], times: np.ndarray, actions: np.ndarray, now: float):
    """The plan as a JointTrajectory stamped with its first action's time; an empty plan (forgotten by a stop,
    reset or watchdog) is an empty trajectory stamped ``now``."""
    if len(times) == 0:
        msg = make_trajectory(joint_names, [], np.empty((0, len(joint_names))))
        msg.header.stamp = seconds_to_stamp(now)
        return msg
    times = np.asarray(times, dtype=np.float64)
    return make_trajectory(joint_names, times - times[0], actions, stamp=seconds_to_stamp(times[0]))


def parse_plan(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """JointTrajectory -> (times when each point is due, (P, J) positions)."""
    start = stamp_to_seconds(msg.header.stamp)
    times = np.array([start + stamp_to_seconds(p.time_from_start) for p in msg.points])
    positions = np.array([list(p.positions) for p in msg.points], dtype=np.float64).reshape(
        len(times), len(msg.joint_names))
    return times, positions


def chunk_message(record: ChunkRecord, joint_names: Sequence[str]):
    from dp_ros_msgs.msg import PolicyChunk

    msg = PolicyChunk()
    msg.header.stamp = seconds_to_stamp(record.merged_at)
    msg.index = int(record.index)
    msg.observation_stamp = seconds_to_stamp(record.observation_time)
    msg.period = float(record.period)
    msg.compute_time = float(record.compute_time)
    msg.delay = float(record.delay)
    msg.transition = record.transition
    msg.joint_names = list(joint_names)
    msg.positions = np.asarray(record.actions, dtype=np.float64).reshape(-1).tolist()
    msg.actions = int(record.actions.shape[0])
    msg.dropped_late = int(record.dropped_late)
    msg.pinned_start = int(record.pinned.start)
    msg.pinned_count = int(record.pinned.count)
    msg.expected_delay = float(record.pinned.expected_delay)
    return msg


@dataclass(frozen=True)
class ChunkView:
    """A PolicyChunk message as arrays."""

    index: int
    merged_at: float
    observation_time: float
    period: float
    compute_time: float
    delay: float
    times: np.ndarray
    """(N,) when each action is due."""
    actions: np.ndarray
    """(N, J)."""
    dropped_late: int
    pinned_start: int
    pinned_count: int
    transition: str
    expected_delay: float = 0.0
    """guided: the delay the chunk was sampled for (0 otherwise)."""

    @property
    def arrived_late(self) -> bool:
        """guided: its first executed action is due after the time it was sampled to arrive by, so the node
        cross-faded its first actions into the plan (dp_ros.core.action_schedule) instead of splicing it."""
        on_time = self.times[self.executable]
        return self.transition == Transition.GUIDED and bool(len(on_time)) and \
            on_time[0] > self.observation_time + self.expected_delay + 1e-9

    @property
    def executable(self) -> slice:
        """The actions that were not late at the merge."""
        return slice(self.dropped_late, len(self.times))

    @property
    def pinned(self) -> slice:
        return slice(self.pinned_start, self.pinned_start + self.pinned_count)


def parse_chunk(msg: Any) -> ChunkView:
    count, joints = int(msg.actions), len(msg.joint_names)
    actions = np.asarray(msg.positions, dtype=np.float64).reshape(count, joints)
    observation = stamp_to_seconds(msg.observation_stamp)
    return ChunkView(index=int(msg.index), merged_at=stamp_to_seconds(msg.header.stamp), observation_time=observation,
                     period=float(msg.period), compute_time=float(msg.compute_time), delay=float(msg.delay),
                     times=observation + msg.period * np.arange(count), actions=actions,
                     dropped_late=int(msg.dropped_late), pinned_start=int(msg.pinned_start),
                     pinned_count=int(msg.pinned_count), transition=msg.transition,
                     expected_delay=float(msg.expected_delay))


@dataclass(frozen=True)
class Intervention:
    """What the safety filter changed in one command."""

    stamp: float
    kinds: tuple[str, ...]
    """Any of position, velocity, acceleration, stop."""
    times_from_start: np.ndarray
    planned: np.ndarray
    """(P, J) the plan at the command's times (what the policy asked for)."""
    commanded: np.ndarray
    """(P, J) what was published."""

    @property
    def largest_change(self) -> float:
        if self.planned.size == 0 or self.planned.shape != self.commanded.shape:
            return 0.0
        return float(np.max(np.abs(self.commanded - self.planned)))


def intervention_message(intervention: Intervention, joint_names: Sequence[str]):
    from dp_ros_msgs.msg import SafetyIntervention

    msg = SafetyIntervention()
    msg.header.stamp = seconds_to_stamp(intervention.stamp)
    msg.position_clamp = "position" in intervention.kinds
    msg.velocity_clamp = "velocity" in intervention.kinds
    msg.acceleration_clamp = "acceleration" in intervention.kinds
    msg.stop_command = "stop" in intervention.kinds
    msg.joint_names = list(joint_names)
    msg.times_from_start = np.asarray(intervention.times_from_start, dtype=np.float64).tolist()
    msg.planned = np.asarray(intervention.planned, dtype=np.float64).reshape(-1).tolist()
    msg.commanded = np.asarray(intervention.commanded, dtype=np.float64).reshape(-1).tolist()
    msg.largest_change = intervention.largest_change
    return msg


def intervention_kinds(msg: Any) -> tuple[str, ...]:
    flags = (("position", msg.position_clamp), ("velocity", msg.velocity_clamp),
             ("acceleration", msg.acceleration_clamp), ("stop", msg.stop_command))
    return tuple(name for name, on in flags if on)
