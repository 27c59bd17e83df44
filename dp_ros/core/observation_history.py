"""The policy's time-aligned observation history.

Observations are kept per stream (joint state, each camera) with their stamps.
A history for time ``t`` has ``n_obs_steps`` observations spaced one control
period apart (t - (n-1)·dt, ..., t), each made of the latest joint state and
camera frames at or before that time, never a later one. A history is complete
only when every stream has a sample for every one of those times that is no
older than ``max_sample_age``; otherwise ``sample`` says what is missing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dp_ros.core.time_alignment import TimestampedBuffer, history_times
from dp_ros.robot_interface import STATE_FEATURE, RobotInterface

JOINT_STATE_STREAM = "joint_states"


@dataclass(frozen=True)
class History:
    times: list[float]
    observations: list[dict[str, np.ndarray]]


class HistoryNotReady(Exception):
    """No complete history exists for the requested time (the message says which stream lacks what)."""


class ObservationHistory:
    def __init__(self, robot: RobotInterface, n_obs_steps: int, period: float, max_sample_age: float,
                 keep: float | None = None):
        if max_sample_age <= 0:
            raise ValueError("max_sample_age must be positive")
        self.robot = robot
        self.n_obs_steps = n_obs_steps
        self.period = period
        self.max_sample_age = max_sample_age
        keep = keep or max(2.0, (n_obs_steps + 2) * period + max_sample_age)
        self.streams: dict[str, TimestampedBuffer] = {JOINT_STATE_STREAM: TimestampedBuffer(keep)}
        for cam in robot.cameras:
            self.streams[cam.feature] = TimestampedBuffer(keep)

    def add_joint_state(self, stamp: float, positions: np.ndarray) -> None:
        self.streams[JOINT_STATE_STREAM].add(stamp, np.asarray(positions, dtype=np.float32))

    def add_image(self, feature: str, stamp: float, rgb: np.ndarray) -> None:
        self.streams[feature].add(stamp, rgb)

    def newest_stamps(self) -> dict[str, float | None]:
        result = {}
        for name, buffer in self.streams.items():
            latest = buffer.latest()
            result[name] = None if latest is None else latest.stamp
        return result

    def newest_age(self, now: float) -> tuple[float, str]:
        """Age of the stalest stream's newest sample, and that stream's name (inf if a stream has nothing)."""
        worst, worst_name = -np.inf, ""
        for name, stamp in self.newest_stamps().items():
            age = np.inf if stamp is None else now - stamp
            if age > worst:
                worst, worst_name = age, name
        return float(worst), worst_name

    def out_of_order_counts(self) -> dict[str, int]:
        return {name: buffer.out_of_order for name, buffer in self.streams.items()}

    def sample(self, t: float) -> History:
        """The complete history ending at ``t``; raises HistoryNotReady otherwise."""
        times = history_times(t, self.n_obs_steps, self.period)
        observations = []
        for ti in times:
            observation: dict[str, np.ndarray] = {}
            for name, buffer in self.streams.items():
                picked = buffer.at_or_before(ti)
                if picked is None:
                    raise HistoryNotReady(f"no {name} at or before t-{t - ti:.3f}s yet "
                                          f"(history needs {self.n_obs_steps} steps of {self.period:.3f}s)")
                if ti - picked.stamp > self.max_sample_age:
                    raise HistoryNotReady(f"newest {name} at or before t-{t - ti:.3f}s is {ti - picked.stamp:.3f}s old "
                                          f"(max_sample_age {self.max_sample_age:.3f}s)")
                observation[STATE_FEATURE if name == JOINT_STATE_STREAM else name] = picked.value
            observations.append(observation)
        return History(times, observations)

    def clear(self) -> None:
        for buffer in self.streams.values():
            buffer.clear()
