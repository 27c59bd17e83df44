"""How a ros2_control controller executes dp_ros's commands, and whether that execution keeps the limits.

One model serves three users: the safety filter shapes every command so that its execution keeps the
joint limits, the simulator judges every command it receives, and the tests judge every published message.

A JointTrajectory (positions only, header stamp zero) is executed as joint_trajectory_controller on Jazzy
executes it:

- it starts at the controller update that takes it (its *receipt*);
- the set-point moves linearly from the *start state* to point 0, reached ``time_from_start[0]`` after the
  receipt, then from point to point at their times, and holds the last point;
- the start state is the measured joint position (``interpolate_from: measured``, the controller's default),
  or the set-point of the trajectory being replaced (``interpolate_from: desired``, the controller's
  ``interpolate_from_desired_state: true``).

A Float64MultiArray (forward_command_controller) or JointState command is a *step* of the set-point to the
target at the controller update that takes it (the first update at or after its receipt, at the controller
manager's ``update_rate``); a step counts as motion over one command period from that update. Two commands
taken in one update are one *double step* from the target executed before them (the first is never
executed); an update that passes without a new command after a step's period holds the set-point: the
stream has stopped, from its speed to zero at once. Where the controller's updates lie against the command
stream is unknown here: they are placed half an update before the first command's receipt (the phase at which
an even stream lands one command per update).

A continuous joint (``continuous``) has no position limits, and a trajectory starts from the start position
moved by whole turns to lie within half a turn of its first point, as joint_trajectory_controller's
wraparound does for URDF continuous joints; a step of a continuous joint moves the shortest way round.

Speed is judged per linear segment. Acceleration, where the robot interface gives acceleration limits, is
the change of velocity between consecutive segments over the mean of their durations. Where a command
replaces another, the old path executed since the previous command is the segment before; a trajectory
also comes to rest at its end (its last segment is followed by a hold), so each one is safe even if it is
the last the controller ever receives. A stream of steps is judged update by update (above).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dp_ros.core.choices import CommandForm, InterpolateFrom, values
from dp_ros.core.joint_limits import RATIO_TOLERANCE, JointLimits, LimitCheck, check_path

INTERPOLATE_FROM = values(InterpolateFrom)
COMMAND_FORMS = values(CommandForm)
UPDATE_TOLERANCE = 1e-6
"""Seconds by which a receipt may pass an update and still be taken by it (rounding of stamps)."""


JUMP_DURATION = 1e-9
"""Seconds a jump of the set-point takes in a judged path (a trajectory whose start lies in the past)."""


def points_from_receipt(times: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A trajectory's points from the moment the controller takes it: ``times`` are seconds after that moment.

    Points already in the past are passed over, as joint_trajectory_controller does; the set-point then jumps
    to where the trajectory is now, which shows as a segment of (almost) zero duration.
    """
    times = np.asarray(times, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if times[0] > 0:
        return times, positions
    future = times > 0
    now = np.array([np.interp(0.0, times, positions[:, j]) for j in range(positions.shape[1])])
    return np.concatenate([[JUMP_DURATION], times[future]]), np.vstack([now[None, :], positions[future]])


class ControllerModel:
    """The set-point a controller follows, command after command, with each command judged as executed.

    ``form``: ``trajectory`` (joint_trajectory_controller) or ``step`` (forward_command_controller, JointState).
    ``step_period``: the command period a step counts as (1/command_rate). ``update_period``: the controller
    manager's update period (1/update_rate; default: the step period). ``update_phase``: the time of one of its
    updates, where known (steps). Times are seconds in any one clock.
    """

    def __init__(self, limits: JointLimits, form: str, interpolate_from: str = InterpolateFrom.MEASURED,
                 step_period: float = 0.02, update_period: float | None = None, update_phase: float | None = None):
        if form not in COMMAND_FORMS:
            raise ValueError(f"form must be one of {COMMAND_FORMS}; got {form!r}")
        if interpolate_from not in INTERPOLATE_FROM:
            raise ValueError(f"interpolate_from must be one of {INTERPOLATE_FROM}; got {interpolate_from!r}")
        self.limits = limits
        self.form = form
        self.interpolate_from = interpolate_from
        self.step_period = step_period
        self.update_period = update_period or step_period
        if self.update_period > step_period * (1 + RATIO_TOLERANCE):
            raise ValueError(f"the controller's update period ({self.update_period}s) must not be longer than the "
                             f"command period ({step_period}s): it would drop commands")
        self._updates_per_step = max(1, int(round(step_period / self.update_period)))
        self._phase: float | None = update_phase
        """The time of one controller update (None: unknown, placed half an update before the first receipt)."""
        self.off_schedule = False
        """Steps: the last one was taken in the same update as the one before (a double step) or after updates
        without one while the stream moved (a hold), or right after such a step (it enters at the speed that
        made): its delivery, not its content, decided how it executes."""
        self.reset()

    def reset(self) -> None:
        """Forget the path: the controller holds still (after a pause, a stop or a new episode)."""
        self._times = np.empty(0)
        self._positions = np.empty((0, 0))
        self._last_receipt: float | None = None
        self._step: _Step | None = None

    def state(self) -> tuple:
        """What the model remembers, for :meth:`restore` (its arrays are replaced, never changed in place)."""
        return self._times, self._positions, self._last_receipt, self._step

    def restore(self, state: tuple) -> None:
        """Back to a remembered state: the command taken since was not sent after all."""
        self._times, self._positions, self._last_receipt, self._step = state

    @property
    def active(self) -> bool:
        return self._times.size > 0

    @property
    def last_receipt(self) -> float | None:
        return self._last_receipt

    @property
    def end_time(self) -> float:
        return float(self._times[-1]) if self.active else -np.inf

    def shift(self, seconds: float) -> None:
        """Move the current path ``seconds`` later (earlier when negative)."""
        self._times = self._times + seconds
        if self._last_receipt is not None:
            self._last_receipt += seconds
        if self._phase is not None:
            self._phase += seconds

    def setpoint(self, t: float) -> np.ndarray | None:
        """Where the set-point is at ``t`` (None before any command)."""
        if not self.active:
            return None
        return np.array([np.interp(t, self._times, self._positions[:, j]) for j in range(self._positions.shape[1])])

    # --- steps: the controller's updates -------------------------------------------------
    def update_index(self, receipt: float) -> int:
        """The controller update that takes a command received at ``receipt``."""
        if self._phase is None:
            self._phase = receipt - self.update_period / 2
        return int(np.ceil((receipt - self._phase - UPDATE_TOLERANCE) / self.update_period))

    def update_time(self, index: int) -> float:
        return self._phase + index * self.update_period

    def single_step_receipt(self, receipt: float) -> float:
        """Steps: ``receipt``, or the start of the update after the last step's where ``receipt`` falls in the
        same update (a double step for a controller at this phase; at another phase, the next step)."""
        if self.form != CommandForm.STEP or self._step is None or self.update_index(receipt) > self._step.update:
            return receipt
        return self.update_time(self._step.update + 1)

    def step_velocity_at(self, receipt: float, slack: int = 0) -> np.ndarray:
        """The set-point velocity a step taken at ``receipt`` follows: the last step's, when it is taken no later
        than ``slack`` updates after the one at which the stream's next step is due; zero (still) otherwise."""
        step = self._step
        if step is None or self.update_index(receipt) > step.update + self._updates_per_step + slack:
            return np.zeros(self.limits.velocity.shape)
        return step.velocity.copy()

    def velocities_between(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Lowest and highest set-point velocity per joint over [t0, t1] (None before any command)."""
        if not self.active:
            return None
        if self.form == CommandForm.STEP:
            step, zero = self._step, np.zeros(self._positions.shape[1])
            if step is None:
                return zero, zero.copy()
            moving_until = self.update_time(step.update) + self.step_period
            candidates = [step.velocity] if t0 < moving_until else []
            if t1 >= moving_until:
                candidates.append(zero)
            stacked = np.vstack(candidates)
            return stacked.min(axis=0), stacked.max(axis=0)
        times = self._times
        if times.size == 1:
            zero = np.zeros(self._positions.shape[1])
            return zero, zero.copy()
        segment_velocities = np.diff(self._positions, axis=0) / np.diff(times)[:, None]
        # segments of this path overlapping [t0, t1] (it replaced whatever came before its start); after its
        # last point the set-point is still
        t0 = max(t0, times[0])
        overlapping = (times[1:] >= t0) & (times[:-1] <= max(t1, times[0]))   # before its start: its first segment
        candidates = [segment_velocities[overlapping]]
        if t1 > times[-1]:
            candidates.append(np.zeros((1, self._positions.shape[1])))
        stacked = np.vstack(candidates)
        return stacked.min(axis=0), stacked.max(axis=0)

    def start_for(self, receipt: float, measured: np.ndarray | None) -> np.ndarray:
        """Where the controller starts interpolating a command taken at ``receipt``."""
        if self.form == CommandForm.STEP:
            return self._positions[-1].copy() if self.active else np.asarray(measured, dtype=np.float64)
        if self.interpolate_from == InterpolateFrom.DESIRED and self.active:
            return self.setpoint(receipt)
        if measured is None:
            raise ValueError("the measured position is needed where the controller interpolates from it")
        return np.asarray(measured, dtype=np.float64)

    def execute(self, receipt: float, times_from_start: np.ndarray, positions: np.ndarray,
                measured: np.ndarray | None = None) -> LimitCheck:
        """Take a command at ``receipt`` and judge its execution; the command then is the current path.

        ``times_from_start`` (P,) and ``positions`` (P, J): a trajectory's points, or one step target at time 0.
        ``measured``: the measured joint position at ``receipt`` (needed for interpolate_from measured and for
        the first command).
        """
        positions = np.asarray(positions, dtype=np.float64).reshape(len(times_from_start), -1)
        times_from_start = np.asarray(times_from_start, dtype=np.float64)
        start = self.start_for(receipt, measured)
        if self.form == CommandForm.STEP:
            check = self._execute_step(receipt, start, positions[-1])
        else:
            start = self.limits.shortest_way(start, positions[0])
            check = self._execute_trajectory(receipt, start, times_from_start, positions)
        self._last_receipt = receipt
        return check

    def settle(self, now: float) -> LimitCheck | None:
        """Steps: the update at which the stream's next step was due has passed by ``now`` without one (no
        command received up to ``now`` is left unjudged): the set-point stopped from the last step's speed
        at once. That stop judged (None when there is nothing to judge); the stream is still from then on."""
        step = self._step
        if self.form != CommandForm.STEP or step is None or not np.any(step.velocity):
            return None
        due = step.update + self._updates_per_step
        if now < self.update_time(due) - UPDATE_TOLERANCE:
            return None
        target = self._positions[-1]
        check = check_path(self.limits, np.array([0.0, self.update_period]), np.vstack([target, target]),
                           step.velocity, self.step_period)
        self._step = _Step(step.update, step.origin, np.zeros_like(step.velocity), step.entry, step.off_schedule)
        return check

    def _entry(self, receipt: float, first_duration: float) -> tuple[np.ndarray | None, float]:
        """The set-point's velocity at ``receipt`` and how long it has been held (the segment before)."""
        if not self.active or self._last_receipt is None:
            return None, 0.0
        low, high = self.velocities_between(receipt, receipt)
        velocity = np.where(np.abs(low) > np.abs(high), low, high)
        if receipt > self.end_time:
            return velocity, first_duration  # the old path ended: the set-point has been still
        return velocity, max(receipt - self._last_receipt, 1e-9)

    def _execute_trajectory(self, receipt: float, start: np.ndarray, times: np.ndarray,
                            positions: np.ndarray) -> LimitCheck:
        path_times = np.concatenate([[0.0], times])
        path_positions = np.vstack([start, positions])
        entry_velocity, entry_duration = self._entry(receipt, float(path_times[1] - path_times[0]) if times.size else 0)
        check = check_path(self.limits, path_times, path_positions, entry_velocity, entry_duration,
                           comes_to_rest=True)
        self._times, self._positions = receipt + path_times, path_positions
        return check

    def _execute_step(self, receipt: float, start: np.ndarray, target: np.ndarray) -> LimitCheck:
        update, period = self.update_index(receipt), self.step_period
        previous = self._step
        moving = previous is not None and bool(np.any(previous.velocity))
        idle = 0.0
        if previous is not None and update <= previous.update:
            # taken in the same update as the step before, which is never executed: one double step
            start, entry = previous.origin, previous.entry
        elif previous is None:
            # the first step (after a reset): from a set-point known only as the measured position, so its
            # speed is judged but not its change
            entry = (None, 0.0)
        elif not moving:
            entry = (np.zeros(self.limits.velocity.shape), period)   # from rest
        elif update - previous.update <= self._updates_per_step:
            entry = (previous.velocity, (update - previous.update) * self.update_period)
        else:
            entry = (previous.velocity, period)
            idle = (update - previous.update) * self.update_period - period
        taken_off_schedule = previous is not None and (update <= previous.update or idle > UPDATE_TOLERANCE)
        # the step right after one taken off schedule enters at a speed the delivery made, not the command
        self.off_schedule = taken_off_schedule or (previous is not None and previous.off_schedule)
        target = self.limits.shortest_way(target, start)
        if idle > UPDATE_TOLERANCE:   # updates passed without a new step: the set-point stopped, then steps again
            # (held one update after the last step, and one update before this one)
            update_period = self.update_period
            holds = np.unique(np.round([0.0, min(update_period, idle), max(idle - update_period, 0.0), idle], 12))
            times = np.concatenate([holds, [idle + period]])
            path = np.vstack([np.repeat(start[None, :], holds.size, axis=0), target[None, :]])
        else:
            times, path = np.array([0.0, period]), np.vstack([start, target])
        check = check_path(self.limits, times, path, *entry)
        self._step = _Step(update, start, (target - start) / period, entry, taken_off_schedule)
        self._times, self._positions = np.array([receipt]), target[None, :].copy()
        return check


@dataclass(frozen=True)
class _Step:
    """The last step a controller took: at which update, from where, at what speed, after what."""

    update: int
    origin: np.ndarray
    velocity: np.ndarray
    entry: tuple[np.ndarray, float]
    off_schedule: bool = False
    """Taken in the same update as the step before, or after a hold."""


@dataclass
class CommandLedger:
    """Commands judged one after the other by a :class:`ControllerModel`, and the tally."""

    model: ControllerModel
    judged: int = 0
    violations: int = 0
    """Commands whose execution broke a limit."""
    worst: LimitCheck = LimitCheck()
    off_schedule: int = 0
    """Steps taken off the stream's schedule: a double step, or after a hold (see ControllerModel.off_schedule)."""
    off_schedule_violations: int = 0
    """Of the violations, those of steps taken off schedule (delivery timing: no command's content prevents it)."""

    def judge(self, receipt: float, times_from_start: np.ndarray, positions: np.ndarray,
              measured: np.ndarray | None = None) -> LimitCheck:
        check = self.model.execute(receipt, times_from_start, positions, measured)
        self.judged += 1
        self.violations += not check.within_limits
        if self.model.form == CommandForm.STEP and self.model.off_schedule:
            self.off_schedule += 1
            self.off_schedule_violations += not check.within_limits
        self.worst = self.worst.worst(check)
        return check

    def settle(self, now: float) -> LimitCheck | None:
        """Judge a step stream that stopped by ``now`` (see :meth:`ControllerModel.settle`); counted with the
        last command (whose execution it ends)."""
        check = self.model.settle(now)
        if check is not None:
            self.violations += not check.within_limits
            self.worst = self.worst.worst(check)
        return check
