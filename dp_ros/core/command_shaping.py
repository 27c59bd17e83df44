"""From the plan to the command that is published, at exactly the times that are published.

A trajectory command's first point is the plan ``lead_time`` after now (stretched while the node is slow to
send its commands); the planned actions after it follow
at their own times (an action closer than a quarter policy step to the point before is left out, so no
segment is a sliver). A step command (forward_command_controller, JointState) is the plan now. The safety
filter shapes these very points from where the controller will start them, and the shaper remembers what
it published, as the controller will execute it, to know where the next command starts. ROS-free.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dp_ros.core.command_execution import ControllerModel, LimitCheck
from dp_ros.core.safety import SafetyFilter, StartState

DESIRED_RESERVE = 2.0
"""Timing margins kept in reserve where the controller starts from the set-point it replaces: an error in
where one command starts carries over, fading, into the start of the next few (measured: seen in
test_safety's closed loop)."""
PUBLISH_DELAY_WINDOW = 100
"""Commands over which the slowest time from computing a command to its leaving the process is kept."""
MIN_SEGMENT_FRACTION = 0.25
"""Planned actions closer than this fraction of a policy step to the previous point are left out."""


@dataclass(frozen=True)
class CommandSettings:
    """How commands are formed for the robot's controller (from the robot interface and the node's parameters)."""

    form: str
    """``trajectory`` (JointTrajectory) or ``step`` (Float64MultiArray, JointState)."""
    single_point: bool
    """Trajectories of one point (trajectory_mode single_point) instead of the remaining plan."""
    interpolate_from: str
    """Where the controller starts a trajectory: ``measured`` or ``desired`` (see command_execution)."""
    command_period: float
    control_period: float
    lead_time: float
    """Seconds after its start at which a trajectory's first point is reached."""
    timing_margin: float
    """Seconds by which the controller may take a command later or earlier than expected (its update period
    plus delivery jitter); the first segment keeps this much full-speed motion in reserve."""

    @classmethod
    def for_robot(cls, robot, command_type: str | None = None, trajectory_mode: str | None = None,
                  lead_time: float = 0.0, timing_margin: float = 0.02) -> "CommandSettings":
        """Commands for the robot interface's controller (command type and trajectory mode may be overridden);
        ``lead_time`` 0 = one policy step."""
        command_type = command_type or robot.command.type
        return cls(form="trajectory" if command_type == "joint_trajectory" else "step",
                   single_point=(trajectory_mode or robot.command.trajectory_mode) == "single_point",
                   interpolate_from=robot.command.interpolate_from, command_period=1.0 / robot.command_rate,
                   control_period=robot.control_period, lead_time=lead_time or robot.control_period,
                   timing_margin=timing_margin)

    def __post_init__(self) -> None:
        if self.lead_time < 2 * self.timing_margin:
            raise ValueError(f"trajectory lead time ({self.lead_time}s) must be at least twice the timing margin "
                             f"({self.timing_margin}s): the first segment keeps the margin in reserve")
        if self.timing_margin < 0 or self.lead_time <= 0:
            raise ValueError("trajectory lead time must be positive and the timing margin not negative")


@dataclass(frozen=True)
class Command:
    """One command exactly as it will be published."""

    stamp: float
    """When it was computed (the node's clock)."""
    times_from_start: np.ndarray
    """(P,) seconds after the controller takes it; [0.0] for a step."""
    positions: np.ndarray
    """(P, J) safe joint positions."""

    @property
    def target(self) -> np.ndarray:
        """The first (for a step: the only) position."""
        return self.positions[0]


class CommandShaper:
    """Forms safe commands from the plan and remembers what was published."""

    def __init__(self, settings: CommandSettings, safety: SafetyFilter):
        self.settings = settings
        self.safety = safety
        self.published = ControllerModel(safety.limits, settings.form, settings.interpolate_from,
                                         settings.command_period)
        self._speeds: deque[tuple[float, np.ndarray]] = deque()
        self.self_check_failures = 0
        """Commands that, judged right after shaping, broke a limit (a defect if ever non-zero)."""
        self.last_check = LimitCheck()
        self._publish_delays: deque[float] = deque(maxlen=PUBLISH_DELAY_WINDOW)
        self._before_last: tuple | None = None
        self.reserved_delay = 0.0
        """The publish delay the last command was shaped for."""

    def note_publish_delay(self, seconds: float) -> None:
        """How long after its ``now`` the last command left the process (measured by whoever publishes it)."""
        self._publish_delays.append(max(0.0, float(seconds)))

    @property
    def lead_time(self) -> float:
        """Seconds after now of a trajectory's first point: the configured lead time, stretched to twice the
        timing margin plus the publish delay where the node is slow to send (a first segment shorter than the
        start's uncertainty could not keep the limits however slowly it moved)."""
        return max(self.settings.lead_time, 2 * (self.settings.timing_margin + self.publish_delay))

    @property
    def publish_delay(self) -> float:
        """The slowest recent publish delay: the arm moves on meanwhile, so it is kept in reserve with the
        timing margin (a busy CPU or a GIL held by inference can take milliseconds from ``now`` to sending)."""
        return max(self._publish_delays, default=0.0)

    def reset(self) -> None:
        """The controller holds still: the next command starts from the measured position."""
        self.published.reset()
        self._speeds.clear()

    def command(self, now: float, plan_at: Callable[[float], np.ndarray | None], plan_after: Callable,
                measured: np.ndarray, measured_age: float) -> Command | None:
        """The safe command for ``now``; None when the plan has nothing for now or holds NaN/Inf.

        ``plan_at(t)``: the planned position at ``t`` (None past the plan's end). ``plan_after(t)``: the planned
        actions strictly after ``t`` as (times, positions). ``measured``: the newest measured joint position,
        ``measured_age`` seconds old.
        """
        if self.settings.form == "step":
            target = plan_at(now)
            if target is None:
                return None
            start = self._start(now, measured, measured_age, self.settings.command_period)
            shaped = self.safety.shape_step(start, target, self.settings.command_period)
            return None if shaped is None else self._publish(now, np.zeros(1), shaped[None, :], measured)
        times, targets = self._trajectory_points(now, plan_at, plan_after)
        if times is None:
            return None
        start = self._start(now, measured, measured_age, float(times[0]))
        shaped = self.safety.shape_trajectory(start, times, targets)
        return None if shaped is None else self._publish(now, times, shaped, measured)

    def stop_command(self, now: float, measured: np.ndarray, measured_age: float) -> Command | None:
        """A trajectory that brings the set-point to rest within the limits, or None where no command is needed.

        Steps need none (the controller holds the last target); a still set-point needs none.
        """
        if self.settings.form == "step" or not self.published.active or now >= self.published.end_time:
            return None
        lead_time = self.lead_time
        if measured_age > lead_time:
            # the joint states went silent: where the set-point is now is the better estimate of the arm
            measured, measured_age = self.published.setpoint(now), 0.0
        start = self._start(now, measured, measured_age, lead_time)
        lowest, highest = start.entry_velocity
        velocity = np.where(np.abs(lowest) > np.abs(highest), lowest, highest)
        acceleration = self.safety.limits.acceleration
        if acceleration is None:
            times, targets = np.array([lead_time]), start.position[None, :]
        else:
            stopping_time = float(np.max(np.abs(velocity) / acceleration))
            steps = int(np.ceil(stopping_time / self.settings.control_period)) + 2
            times = lead_time + self.settings.control_period * np.arange(steps)
            stop_at = start.position + velocity * np.abs(velocity) / (2 * acceleration)
            targets = np.repeat(stop_at[None, :], steps, axis=0)
        shaped = self.safety.shape_trajectory(start, times, targets)
        return None if shaped is None else self._publish(now, times, shaped, measured)

    # --- internals ----------------------------------------------------------------------
    def _trajectory_points(self, now: float, plan_at, plan_after) -> tuple[np.ndarray | None, np.ndarray | None]:
        settings, lead_time = self.settings, self.lead_time
        if plan_at(now) is None:
            return None, None
        first = plan_at(now + lead_time)
        if first is None:  # the plan ends within the lead time: aim for its last action
            plan_times, plan_positions = plan_after(now)
            first = plan_positions[-1] if len(plan_times) else plan_at(now)
        if settings.single_point:
            return np.array([lead_time]), first[None, :]
        plan_times, plan_positions = plan_after(now + lead_time)
        keep = plan_times - now >= lead_time + MIN_SEGMENT_FRACTION * settings.control_period
        times = np.concatenate([[lead_time], plan_times[keep] - now])
        return times, np.vstack([first[None, :], plan_positions[keep]])

    def _start(self, now: float, measured: np.ndarray, measured_age: float, first_duration: float) -> StartState:
        """Where the controller will start a command published now, and how well that is known."""
        settings, published = self.settings, self.published
        margin = settings.timing_margin + self.publish_delay
        velocities = published.velocities_between(now - margin, now + margin) if published.active else None
        if published.active and (settings.form == "step" or settings.interpolate_from == "desired"):
            position = published.start_for(now, measured)
            # the set-point moves on (or back) while the command is on its way, and an error in where the
            # last few commands started carries over, fading, into this one
            spread = 0.0 if settings.form == "step" else DESIRED_RESERVE * margin * self._recent_speed(now)
        else:
            # the arm moves on, at most at full speed, after its position was measured and while the command travels
            position = np.asarray(measured, dtype=np.float64)
            spread = self.safety.limits.velocity * (margin + max(0.0, measured_age))
        if velocities is None or published.last_receipt is None:
            return StartState(position, spread)
        if settings.form == "step":
            return StartState(position, spread, velocities, settings.command_period)
        held = first_duration if now > published.end_time else max(now - published.last_receipt - margin, 1e-3)
        return StartState(position, spread, velocities, held)

    def _recent_speed(self, now: float) -> np.ndarray:
        """Per joint, the highest set-point speed of the commands published within the last lead time."""
        while self._speeds and self._speeds[0][0] < now - self.lead_time - 1e-9:
            self._speeds.popleft()
        low, high = self.published.velocities_between(now - self.settings.timing_margin,
                                                      now + self.settings.timing_margin)
        return np.max([np.abs(low), np.abs(high), *(speed for _, speed in self._speeds)], axis=0)

    def confirm(self, delay: float) -> bool:
        """Whether the last command may still be sent ``delay`` seconds after the ``now`` it was shaped for:
        within the publish delay kept in reserve plus half the timing margin (the other half is the
        network's). Otherwise it is retracted (the controller keeps executing the command before, which comes
        to rest within the limits at its end) and the delay counts towards the next commands' reserve."""
        allowed = self.reserved_delay + self.settings.timing_margin / 2
        if delay <= allowed:
            return True
        self.retract()
        self.note_publish_delay(delay)
        return False

    def retract(self) -> None:
        """The last command was not sent after all (too late): forget it, the controller still runs the one
        before. Only the last command can be retracted, once."""
        if self._before_last is None:
            raise RuntimeError("no command to retract")
        state, speeds = self._before_last
        self.published.restore(state)
        while len(self._speeds) > speeds:
            self._speeds.pop()
        self._before_last = None

    def _publish(self, now: float, times: np.ndarray, positions: np.ndarray, measured: np.ndarray) -> Command:
        self._before_last = (self.published.state(), len(self._speeds))
        self.reserved_delay = self.publish_delay
        start = self.published.start_for(now, measured) if self.published.active else np.asarray(measured, float)
        self._speeds.append((now, np.abs(positions[0] - start) / (times[0] or self.settings.command_period)))
        check = self.published.execute(now, times, positions, measured)
        self.last_check = check
        if not check.within_limits:
            self.self_check_failures += 1
        return Command(now, times, positions)
