"""From the plan to the command that is published, at exactly the times that are published.

A trajectory command's first point is the plan ``lead_time`` after now (stretched while the node is slow to
send its commands); the planned actions after it follow
at their own times (an action closer than a quarter policy step to the point before is left out, so no
segment is a sliver). A step command (forward_command_controller, JointState) is the plan now; a stream of
steps that must stop (stop, watchdog, reset, fault, the plan running out) decelerates within the acceleration
limits over as many further steps as that needs (:meth:`CommandShaper.continue_stop`). A continuous joint's
targets go the shortest way round from where the command starts. The safety
filter shapes these very points from where the controller will start them, and the shaper remembers what
it published, as the controller will execute it, to know where the next command starts. ROS-free.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dp_ros.core.choices import CommandForm, InterpolateFrom
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
    update_period: float = 0.0
    """Seconds between the controller's updates (0: one command period)."""

    @classmethod
    def for_robot(cls, robot, command_type: str | None = None, trajectory_mode: str | None = None,
                  *, lead_time: float, timing_margin: float) -> "CommandSettings":
        """Commands for the robot interface's controller (command type and trajectory mode may be overridden);
        ``lead_time`` 0 = one policy step."""
        command_type = command_type or robot.command.type
        return cls(form=CommandForm.of(command_type),
                   single_point=(trajectory_mode or robot.command.trajectory_mode) == "single_point",
                   interpolate_from=robot.command.interpolate_from, command_period=1.0 / robot.command_rate,
                   control_period=robot.control_period, lead_time=lead_time or robot.control_period,
                   timing_margin=timing_margin, update_period=robot.update_period)

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
                                         settings.command_period, settings.update_period or None)
        self._braking = False
        self._reset_when_still = False
        self._held = False
        """Steps: a command tick passed without a step (withdrawn or none), so the controller holds its target."""
        self.stop_steps = 0
        """Steps sent to bring a stream of steps to rest."""

        self._speeds: deque[tuple[float, np.ndarray]] = deque()
        self.self_check_failures = 0
        """Commands that, judged right after shaping, broke a limit (a defect if ever non-zero)."""
        self.last_check = LimitCheck()
        self._publish_delays: deque[float] = deque(maxlen=PUBLISH_DELAY_WINDOW)
        self._before_last: tuple | None = None
        self._last_sent: tuple | None = None
        self.reserved_delay = 0.0
        """The publish delay the last command was shaped for."""

    def note_publish_delay(self, seconds: float) -> None:
        """How long after its ``now`` the last command left the process (measured by whoever publishes it)."""
        self._publish_delays.append(max(0.0, float(seconds)))

    def note_sent(self, seconds: float) -> None:
        """The last command was sent ``seconds`` after its ``now``: noted as a publish delay, and a step is
        taken at the controller update its sending falls in (an update the node's model now places it in)."""
        self.note_publish_delay(seconds)
        if (self.settings.form != CommandForm.STEP or seconds <= 0 or self._last_sent is None
                or self._before_last is None):
            return
        receipt, times, positions, measured = self._last_sent
        if self.published.update_index(receipt + seconds) > self.published.update_index(receipt):
            # taken in a later update than it was computed for: the next step enters at the speed it has there
            self.published.restore(self._before_last[0])
            self._record(receipt + seconds, times, positions, measured)

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

    @property
    def braking(self) -> bool:
        """Step commands: a stop is under way (see :meth:`continue_stop`): call it at the next command time."""
        return self._braking or self._reset_when_still

    def reset(self) -> None:
        """The controller holds still: the next command starts from the measured position. While a stream of
        steps is still braking, after its stop."""
        if self._braking:
            self._reset_when_still = True
            return
        self.published.reset()
        self._speeds.clear()

    def command(self, now: float, plan_at: Callable[[float], np.ndarray | None], plan_after: Callable,
                measured: np.ndarray, measured_age: float) -> Command | None:
        """The safe command for ``now``; None when the plan has nothing for now or holds NaN/Inf.

        ``plan_at(t)``: the planned position at ``t`` (None past the plan's end). ``plan_after(t)``: the planned
        actions strictly after ``t`` as (times, positions). ``measured``: the newest measured joint position,
        ``measured_age`` seconds old.
        """
        self._braking = False   # the plan goes on: a stop under way ends here
        plan_at = self._shortest_way_plan(plan_at, plan_after)
        if self.settings.form == CommandForm.STEP:
            target = plan_at(now)
            if target is None:
                return None
            start = self._start(now, measured, measured_age, self.settings.command_period)
            target = self.safety.limits.shortest_way(target, start.position)
            shaped = self.safety.shape_step(start, target, self.settings.command_period)
            return None if shaped is None else self._publish(now, np.zeros(1), shaped[None, :], measured)
        times, targets = self._trajectory_points(now, plan_at, plan_after)
        if times is None:
            return None
        start = self._start(now, measured, measured_age, float(times[0]))
        previous, targets = start.position, np.array(targets, dtype=np.float64)   # a copy: the plan's stay as they are
        for row in range(len(targets)):   # continuous joints: each point the shortest way from the one before
            targets[row] = previous = self.safety.limits.shortest_way(targets[row], previous)
        shaped = self.safety.shape_trajectory(start, times, targets)
        return None if shaped is None else self._publish(now, times, shaped, measured)

    def stop_command(self, now: float, measured: np.ndarray, measured_age: float) -> Command | None:
        """A trajectory that brings the set-point to rest within the limits, or None where no command is needed.

        Steps: the first step of a stop within the acceleration limits (:meth:`continue_stop`). A still
        set-point needs none.
        """
        if self.settings.form == CommandForm.STEP:
            return self.continue_stop(now)
        if not self.published.active or now >= self.published.end_time:
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

    def continue_stop(self, now: float) -> Command | None:
        """Step commands: the next step of a stop, or None once the set-point can stop where it is.

        A forward controller holds its last target: a stream of steps that just ends stops the set-point from
        full speed within one update. Here each joint's speed falls by its acceleration limit per command
        period until it is within one period's deceleration of zero (the controller's hold then stops it
        within the limit). Without acceleration limits, or for trajectories (which come to rest at their end by
        themselves), there is nothing to do."""
        acceleration = self.safety.limits.acceleration
        if self.settings.form != CommandForm.STEP or acceleration is None or not self.published.active:
            return self._stopped()
        period = self.settings.command_period
        velocity = self._step_velocity(now)
        if np.all(np.abs(velocity) <= acceleration * period * (1 + 1e-9)):
            return self._stopped()
        slower = np.sign(velocity) * np.maximum(np.abs(velocity) - acceleration * period, 0.0)
        start = StartState(self.published.start_for(now, None), 0.0, (velocity, velocity.copy()), period)
        shaped = self.safety.shape_step(start, start.position + slower * period, period)
        if shaped is None:
            return self._stopped()
        self._braking = bool(np.any(np.abs(slower) > acceleration * period * (1 + 1e-9)))
        self.stop_steps += 1
        return self._publish(now, np.zeros(1), shaped[None, :], start.position)

    def _stopped(self) -> None:
        self._braking = False
        if self._reset_when_still:
            self._reset_when_still = False
            self.reset()
        return None

    # --- internals ----------------------------------------------------------------------
    def _shortest_way_plan(self, plan_at, plan_after):
        """``plan_at`` with continuous joints interpolated the shortest way round between planned actions (one
        policy step apart), not through the long way a wrapped action (3.1 then -3.1) would give."""
        limits, period = self.safety.limits, self.settings.control_period
        if limits.continuous is None:
            return plan_at

        def at(t: float) -> np.ndarray | None:
            value = plan_at(t)
            times, positions = plan_after(t)
            before = None if value is None or not len(times) else plan_at(times[0] - period)
            if before is None:
                return value
            after = limits.shortest_way(positions[0], before)
            weight = float(np.clip((t - (times[0] - period)) / period, 0.0, 1.0))
            return np.where(limits.continuous, before + weight * (after - before), value)
        return at

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
        from_set_point = settings.form == CommandForm.STEP or settings.interpolate_from == InterpolateFrom.DESIRED
        if published.active and from_set_point:
            position = published.start_for(now, measured)
            # the set-point moves on (or back) while the command is on its way, and an error in where the
            # last few commands started carries over, fading, into this one
            spread = 0.0 if settings.form == CommandForm.STEP else DESIRED_RESERVE * margin * self._recent_speed(now)
        else:
            # the arm moves on, at most at full speed, after its position was measured and while the command travels
            position = np.asarray(measured, dtype=np.float64)
            spread = self.safety.limits.velocity * (margin + max(0.0, measured_age))
        if settings.form == CommandForm.STEP:
            # the stream goes on at the last step's speed if this step is taken on time; after a pause it is still
            velocity = self._step_velocity(now) if published.active else np.zeros_like(np.asarray(position))
            return StartState(position, spread, (velocity, velocity.copy()), settings.command_period)
        if velocities is None or published.last_receipt is None:
            return StartState(position, spread)
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
        to rest within the limits at its end) and the delay counts towards the next commands' reserve. A withdrawn
        step leaves a forward controller holding its last target for an update (sent late, it would land with the
        next one: a double step), a stop from the stream's speed that no later command undoes; the steps after
        it start again from rest within the acceleration limit."""
        allowed = self.reserved_delay + self.settings.timing_margin / 2
        if delay <= allowed:
            return True

        self.retract()
        self.note_publish_delay(delay)
        return False

    def _step_velocity(self, now: float) -> np.ndarray:
        """The set-point speed a step computed now enters at, as the controller will take it: the last step's,
        unless more than one update more than a command period passed (the controller takes a command computed
        up to an update late in its own update, as far as the node can tell: where it did not, the judge counts
        a step taken off schedule). After a tick without a step (withdrawn, or nothing to send) the controller
        holds unless this step lands in the update right after the last one sent (ticks that bunch up): no
        slack then."""
        return self.published.step_velocity_at(now, slack=0 if self._held else 1)

    def skipped(self) -> None:
        """No command was sent at this command tick: a forward controller holds its last target for the update,
        so the next step enters from rest unless it lands in the update right after the last one sent."""
        if self.settings.form == CommandForm.STEP:
            self._held = True

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
        self._held = self.settings.form == CommandForm.STEP

    def _publish(self, now: float, times: np.ndarray, positions: np.ndarray, measured: np.ndarray) -> Command:
        self._before_last = (self.published.state(), len(self._speeds))
        self._held = False
        self.reserved_delay = self.publish_delay
        start = self.published.start_for(now, measured) if self.published.active else np.asarray(measured, float)
        self._speeds.append((now, np.abs(positions[0] - start) / (times[0] or self.settings.command_period)))
        check = self._record(now, times, positions, measured)
        if not check.within_limits:
            self.self_check_failures += 1
        return Command(now, times, positions)

    def _record(self, now: float, times: np.ndarray, positions: np.ndarray, measured: np.ndarray) -> LimitCheck:
        """The command as the controller will execute it. A step is shaped from the last step's target and speed,
        so it is recorded as taken in the update after it, never as a double step: whether two steps close in
        time share an update depends on the controller's phase, which the node cannot know (a double step is a
        delivery fault the judge counts, not a speed the next step may enter at)."""
        receipt = self.published.single_step_receipt(now)
        self._last_sent = (receipt, times, positions, measured)
        self.last_check = self.published.execute(receipt, times, positions, measured)
        return self.last_check
