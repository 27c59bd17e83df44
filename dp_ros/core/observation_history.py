"""The policy's time-aligned observation history.

Observations are kept per stream (joint state, each camera) with their stamps.
A history for time ``t`` has ``n_obs_steps`` observations spaced one control
period apart (t - (n-1)·dt, ..., t), each made of the latest joint state and
camera frames at or before that time, never a later one. A history is complete
only when every stream has a sample for every one of those times that is no
older than ``max_sample_age``; otherwise ``sample`` says what is missing.

Given the receiver's clock, a sample stamped more than ``FUTURE_TOLERANCE`` after its arrival is bad input
(a sensor clock ahead of the node's): counted per stream, warned about, and not used. A stream's age is then
also the time since its newest sample arrived, so the watchdog never waits for a clock offset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dp_ros.core.log_throttle import LogThrottle
from dp_ros.core.time_alignment import TimestampedBuffer, history_times
from dp_ros.robot_interface import STATE_FEATURE, RobotInterface

JOINT_STATE_STREAM = "joint_states"
FUTURE_TOLERANCE = 0.05
"""Seconds a sample's stamp may lie after the receiver's clock at its arrival (clocks synchronised over a
network differ by milliseconds; a sensor that stamps later than that has a clock that runs ahead)."""


@dataclass(frozen=True)
class History:
    times: list[float]
    observations: list[dict[str, np.ndarray]]


class HistoryNotReady(Exception):
    """No complete history exists for the requested time (the message says which stream lacks what)."""


class ObservationHistory:
    def __init__(self, robot: RobotInterface, n_obs_steps: int, period: float, max_sample_age: float,
                 keep: float | None = None, clock: Callable[[], float] | None = None,
                 log: Callable[[str, str], None] | None = None):
        """``clock``: the receiver's clock (the node's), to refuse stamps from the future and to age streams by
        the arrival of their newest sample; ``log(level, text)`` hears of refused stamps."""
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
        self.clock = clock
        self.log = log or (lambda level, text: None)
        self._future_log = LogThrottle(5.0)

    def add_joint_state(self, stamp: float, positions: np.ndarray) -> bool:
        return self._add(JOINT_STATE_STREAM, stamp, np.asarray(positions, dtype=np.float32))

    def add_image(self, feature: str, stamp: float, rgb: np.ndarray) -> bool:
        return self._add(feature, stamp, rgb)

    def _add(self, name: str, stamp: float, value) -> bool:
        """Whether the sample was taken (a stamp from the future is not: counted and warned about)."""
        buffer = self.streams[name]
        now = None if self.clock is None else self.clock()
        if buffer.add(stamp, value, now, FUTURE_TOLERANCE):
            return True
        if now is not None and stamp > now + FUTURE_TOLERANCE and self._future_log.ready(name):
            self.log("warn", f"{name} is stamped {stamp - now:.3f}s after it arrived (more than "
                             f"{FUTURE_TOLERANCE:.3f}s): the sensor's clock runs ahead of this node's; ignoring "
                             f"such samples ({buffer.future} so far). Synchronise the clocks (chrony/PTP) or set "
                             "stamp_source:=receive")
        return False

    def future_counts(self) -> dict[str, int]:
        """Per stream, samples refused because they were stamped in the future."""
        return {name: buffer.future for name, buffer in self.streams.items()}

    def newest_stamps(self) -> dict[str, float | None]:
        result = {}
        for name, buffer in self.streams.items():
            latest = buffer.latest()
            result[name] = None if latest is None else latest.stamp
        return result

    def newest_age(self, now: float) -> tuple[float, str]:
        """Age of the stalest stream's newest sample, and that stream's name (inf if a stream has nothing): by
        its stamp, or, given the receiver's clock, by its arrival where that is longer ago."""
        worst, worst_name = -np.inf, ""
        for name, stamp in self.newest_stamps().items():
            age = np.inf if stamp is None else now - stamp
            arrival = self.streams[name].last_arrival
            if arrival is not None:
                age = max(age, now - arrival)
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
