"""The policy node's behaviour, without ROS: observe, plan asynchronously, command safely.

The node feeds it sensor samples and calls ``step(now)`` at the command rate;
it answers with the next safe command (or nothing). Inference runs in a worker
thread so commands keep flowing while the next chunk is computed: when few
planned actions remain, the worker samples the observation history at that
moment, runs the policy, and merges the new chunk into the plan, stamped from
the observation time. With ``transition: guided`` the worker hands the policy
the current plan and the chunk's expected delay, so the chunk continues the plan
(dp_ros.core.chunk_guidance). Every command is shaped by the safety filter exactly
as it will be published (see command_shaping). A watchdog stops commanding while
any input is stale and resumes when fresh data and a full history return, with a
chunk computed from that data (never one computed before the stall); whenever
commanding stops (watchdog, stop, reset, fault) one last command brings the arm
to rest within the limits. The phases and their transitions are one table,
dp_ros.core.controller_states.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from dp_ros.core.choices import CommandForm
from dp_ros.core.chunk_planner import ChunkPlanner
from dp_ros.core.command_shaping import Command, CommandSettings, CommandShaper
from dp_ros.core.controller_config import ChunkPredictor, ControllerConfig
from dp_ros.core.controller_states import Event, InvalidTransition, PendingStop, Phase, State, next_phase
from dp_ros.core.controller_stats import Stats
from dp_ros.core.live_settings import LiveSettings
from dp_ros.core.log_throttle import LogThrottle
from dp_ros.core.observation_history import JOINT_STATE_STREAM, HistoryNotReady, ObservationHistory
from dp_ros.core.plan_events import ChunkListener
from dp_ros.core.safety import SafetyFilter
from dp_ros.robot_interface import RobotInterface

__all__ = ["ChunkPredictor", "ControllerConfig", "PolicyController", "State", "Stats"]


class PolicyController:
    """Observe, plan asynchronously, command safely; its phases are those of dp_ros.core.controller_states."""

    def __init__(self, robot: RobotInterface, predictor: ChunkPredictor, config: ControllerConfig,
                 clock: Callable[[], float], log: Callable[[str, str], None] | None = None,
                 command_type: str | None = None, trajectory_mode: str | None = None):
        self.robot = robot
        self.predictor = predictor
        self.config = config
        self.clock = clock
        self.log = log or (lambda level, text: None)
        period = robot.control_period
        self.history = ObservationHistory(robot, predictor.n_obs_steps, period,
                                          config.watchdog_timeout or self.default_watchdog_timeout(robot),
                                          clock=clock, log=lambda level, text: self.log(level, text))
        self.safety = SafetyFilter.for_robot(robot, config.velocity_scale)
        self.command_type = command_type or robot.command.type
        self.trajectory_mode = trajectory_mode or robot.command.trajectory_mode
        self.shaper = CommandShaper(CommandSettings.for_robot(robot, self.command_type, self.trajectory_mode,
                                                              lead_time=config.trajectory_lead_time,
                                                              timing_margin=config.timing_margin),
                                    self.safety)
        self.stats = Stats()
        self._lock = threading.Lock()
        self.planner = ChunkPlanner(robot, predictor, config, clock, self.history, self._lock, self.stats,
                                    self.safety, lambda level, text: self.log(level, text),
                                    accepts=self._accepts_chunks, on_failure=self._inference_failed)
        self.schedule = self.planner.schedule
        self.delays = self.planner.delays
        self.live = LiveSettings(robot, config, self.log)  # settings changed while running (retune)
        self.phase = Phase.IDLE
        self.reason = "waiting for start"
        self._idle_status = State.IDLE
        self._moving = False
        """The last command came from the plan (so the arm may be moving)."""
        self._pending_stop: PendingStop | None = None
        self._withdrawable: Command | None = None
        self.command_plan: tuple[np.ndarray, np.ndarray] | None = None
        """The plan (times, actions) the last command of :meth:`step` was shaped from; None for a stop command
        or none (read it before the next step: another thread may discard the plan meanwhile)."""
        self._publish_delay_warned = False
        self._late_log = LogThrottle(5.0)

    # --- observers -------------------------------------------------------------------------
    def add_chunk_listener(self, listener: ChunkListener) -> None:
        """Call ``listener(record)`` for every chunk that joins the plan (in the inference thread, after the merge,
        without the lock held; it must be quick)."""
        self.planner.chunk_listeners.append(listener)

    def add_plan_cleared_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever the plan is forgotten (stop, reset, watchdog, fault); it runs with the
        controller's lock held, so it must only take note."""
        self.planner.plan_cleared_listeners.append(listener)

    # --- the watchdog ---------------------------------------------------------------------
    @staticmethod
    def default_watchdog_timeout(robot: RobotInterface) -> float:
        """Two control periods from the newest sample to the last command's arrival: the last command comes up to
        a command period after the timeout, and one more is left for its delivery."""
        return 2 * robot.control_period - 2.0 / robot.command_rate

    def watchdog_limit(self) -> float:
        """The watchdog timeout in force: the configured one, or the default stretched to 1.5 times the longest
        usual gap of the slowest sensor (the 90th percentile of its recent intervals): a 5 Hz camera, or one
        whose frames come unevenly, cannot be fresh within 0.2 s."""
        if self.config.watchdog_timeout:
            return self.config.watchdog_timeout
        intervals = [b.interval_percentile(90) for b in self.history.streams.values()]
        slowest = max((i for i in intervals if i is not None), default=0.0)
        return max(self.default_watchdog_timeout(self.robot), 1.5 * slowest)

    # --- inputs -------------------------------------------------------------------------
    def on_joint_state(self, stamp: float, positions: np.ndarray) -> None:
        self.history.add_joint_state(stamp, positions)

    def on_image(self, feature: str, stamp: float, rgb: np.ndarray) -> None:
        self.history.add_image(feature, stamp, rgb)

    # --- control: the state machine's events ---------------------------------------------------
    @property
    def state(self) -> State:
        """The PolicyStatus code of the current phase."""
        return self._idle_status if self.phase is Phase.IDLE else self.phase.status

    def set_status(self, state: State, reason: str) -> None:
        """The node's own report before start (loading, warm-up): only while IDLE, and only IDLE or WARMING_UP."""
        with self._lock:
            if self.phase is not Phase.IDLE or state not in (State.IDLE, State.WARMING_UP):
                raise InvalidTransition(f"set_status({state.name}) while {self.phase.value}: use start, stop, reset")
            if (state, reason) != (self._idle_status, self.reason):
                self.log("info", f"{state.name.lower()}: {reason}")
            self._idle_status, self.reason = state, reason

    def start(self) -> str:
        with self._lock:
            self._enter(Event.START, "started: waiting for a full observation history")
        return "started"

    def stop(self, reason: str = "stopped by request") -> str:
        with self._lock:
            self._enter(Event.STOP, reason)
        return reason

    def reset(self) -> str:
        """Clear the history and the plan (bringing the arm to rest); keep running if running.

        The next command starts from the measured position: after a reset the world may have changed."""
        with self._lock:
            self._enter(Event.RESET, "reset: waiting for a full observation history")
            self.history.clear()
            self._forget_frames()
        return "history and action queue cleared"

    def _forget_frames(self) -> None:
        """A predictor that caches per-frame features (PolicyRuntime) starts afresh after a reset or a sensor gap."""
        forget = getattr(self.predictor, "forget_frames", None)
        if forget is not None:
            forget()

    def set_fault(self, reason: str) -> None:
        with self._lock:
            self._enter(Event.FAULT, reason)

    def _enter(self, event: Event, reason: str, announce: bool = False) -> None:
        """Take ``event`` (call with the lock held): the next phase by the transition table, and its effects.

        Leaving the plan (any phase but RUNNING after WARMING_UP, RUNNING or STALLED; a reset; a watchdog
        recovery) starts a new epoch: the plan and any chunk being computed are discarded. If the arm may be
        moving, the next step brings it to rest (the single stop path, :meth:`_stop_command`)."""
        before = self.phase
        after = next_phase(before, event)
        leaves_plan = event in (Event.RESET, Event.FRESH) or (
            before in (Phase.WARMING_UP, Phase.RUNNING, Phase.STALLED) and after is not Phase.RUNNING
            and after is not before)
        if leaves_plan:
            self.planner.discard()
            if self._moving or event is Event.RESET:
                self._request_stop(forget=event is Event.RESET)
        self.phase = after
        if after is not before or (announce and reason != self.reason):
            level = {Phase.FAULT: "error", Phase.STOPPED: "warn", Phase.STALLED: "warn"}.get(after, "info")
            self.log(level, f"{after.value}: {reason}")
        self.reason = reason

    def _request_stop(self, forget: bool) -> None:
        """Bring the arm to rest at the next step; ``forget``: then also forget what was sent."""
        brake = self._moving or (self._pending_stop is not None and self._pending_stop.brake)
        forget = forget or (self._pending_stop is not None and self._pending_stop.forget)
        newest = self.history.streams[JOINT_STATE_STREAM].latest()
        measured = None if newest is None else (np.asarray(newest.value, dtype=np.float64), newest.stamp)
        self._pending_stop = PendingStop(brake=brake, forget=forget, measured=measured)

    def _say(self, reason: str, announce: bool = False) -> None:
        """A new reason for the current phase (logged if ``announce``)."""
        if announce and reason != self.reason:
            self.log("info", f"{self.phase.value}: {reason}")
        self.reason = reason

    # --- the command step -------------------------------------------------------------------
    def confirm(self, command: Command, delay: float) -> bool:
        """Whether ``command`` may still be sent ``delay`` seconds after the ``now`` it was computed for
        (:meth:`CommandShaper.confirm`); a withdrawn command is counted and reported. Stop commands are always
        sent."""
        with self._lock:
            if command is not self._withdrawable:
                return True
            self._withdrawable = None
            if self.shaper.confirm(delay):
                return True
            self.stats.commands_published -= 1
            self.stats.late_commands_withdrawn += 1
            withdrawn = self.stats.late_commands_withdrawn
        if self._late_log.ready():
            self.log("warn", f"a command was ready {delay * 1000:.0f} ms after it was computed, later than it was "
                             f"shaped for: withdrawn, the controller keeps executing the previous one ({withdrawn} "
                             "so far; the CPU is busy)")
        return False

    def note_publish_delay(self, seconds: float) -> None:
        """The command of ``step(now)`` left the process ``seconds`` after ``now``; later commands keep the
        slowest recent delay in reserve."""
        with self._lock:
            self.shaper.note_sent(seconds)
            self.stats.worst_publish_delay = max(self.stats.worst_publish_delay, seconds)
            settings = self.shaper.settings
            starved = settings.form == CommandForm.TRAJECTORY and self.shaper.lead_time > settings.lead_time
            if starved and not self._publish_delay_warned:
                self.log("warn", f"commands leave this node up to {self.shaper.publish_delay * 1000:.0f} ms after "
                                 f"they are computed: trajectories start {self.shaper.lead_time * 1000:.0f} ms ahead "
                                 f"instead of {settings.lead_time * 1000:.0f} ms (twice the timing margin plus that "
                                 "delay), so the limits hold but commands react later. Give the node a less busy CPU "
                                 "(fewer inference_threads, no other heavy programs)")
            self._publish_delay_warned = starved

    def step(self, now: float) -> Command | None:
        """The command to send at ``now``, or None to send nothing (a stream of steps then pauses: a forward
        controller holds its last target, so the next step starts from rest)."""
        command = self._next_command(now)
        if command is None:
            with self._lock:
                self.shaper.skipped()
        return command

    def _next_command(self, now: float) -> Command | None:
        age, stream = self.history.newest_age(now)
        with self._lock:
            self.command_plan = None
            self.live.ease(self.safety, self.shaper.published)
            if self._pending_stop is not None or self.shaper.braking:
                return self._stop_command(now)
            if self.phase not in (Phase.WARMING_UP, Phase.RUNNING, Phase.STALLED):
                return None
            if age == np.inf and self.phase is not Phase.STALLED:
                self._say(f"waiting for the first {stream} message")
                return None
            limit = self.watchdog_limit()
            self.history.max_sample_age = limit
            if age > limit:
                if self.phase is Phase.STALLED:
                    return None
                self.stats.watchdog_trips += 1
                self._forget_frames()
                what = "never received" if age == np.inf else f"{age:.3f}s old"
                self._enter(Event.STALE, f"watchdog: newest {stream} is {what} (timeout {limit:.3f}s); holding")
                return self._stop_command(now)
            if self.phase is not Phase.RUNNING and not self._history_ready(now):
                return None
            self.live.take_if_due(self.planner, now)
            self.planner.request_if_due(now)
            command = self._plan_command(now)
            if command is None:
                return None
            self.command_plan = self.schedule.plan()
            self._moving = True
            self._withdrawable = command
            self.stats.commands_published += 1
            if self.phase is Phase.WARMING_UP:
                self._enter(Event.READY, "commanding")
            elif self.reason != "commanding":
                self._say("commanding", announce=True)
            return command

    def _history_ready(self, now: float) -> bool:
        """Whether a full, fresh history can be sampled at ``now`` (the watchdog's recovery, the warm-up's end)."""
        try:
            self.history.sample(now)
        except HistoryNotReady as exc:
            stalled = self.phase is Phase.STALLED
            self._say(("watchdog: fresh data again, " if stalled else "") + f"waiting: {exc}")
            return False
        if self.phase is Phase.STALLED:
            self._enter(Event.FRESH, "watchdog: fresh data again; waiting for a chunk made from it")
        return True

    def _measured(self, now: float) -> tuple[np.ndarray, float] | None:
        newest = self.history.streams[JOINT_STATE_STREAM].latest()
        if newest is None:
            return None
        return np.asarray(newest.value, dtype=np.float64), max(0.0, now - newest.stamp)

    def _plan_command(self, now: float) -> Command | None:
        if self.schedule.at(now) is None:
            stopping = self.shaper.continue_stop(now)   # step commands: the plan ran out, brake within the limits
            if stopping is not None:
                return stopping
            if self.phase is Phase.RUNNING:
                self.stats.queue_underruns += 1
                self._say("action queue ran dry: inference is slower than the plan it makes; lower "
                          "num_inference_steps or raise replan_steps", announce=True)
            else:
                self._say("waiting for the first action chunk")
            return None
        measured, age = self._measured(now)
        return self.shaper.command(now, self.schedule.at, self.schedule.upcoming, measured, age)

    def _stop_command(self, now: float) -> Command | None:
        """The single stop path: once a stop is pending, the command that brings the arm to rest (None if it
        was not moving or nothing was measured), then the stop is done."""
        pending, self._pending_stop = self._pending_stop, None
        if pending is None and not self.shaper.braking:
            return None
        measured = self._measured(now)
        if pending is not None and measured is None and pending.measured is not None:  # history cleared (reset)
            position, stamp = pending.measured
            measured = position, max(0.0, now - stamp)
        stopping = (pending is not None and pending.brake) or self.shaper.braking
        command = None if measured is None or not stopping else self.shaper.stop_command(now, *measured)
        self._moving = False
        if pending is not None and pending.forget:
            self.shaper.reset()
        if command is not None:
            self.stats.stop_commands += 1
            self.stats.commands_published += 1
        return command

    # --- chunks ---------------------------------------------------------------------------------
    def _accepts_chunks(self) -> bool:
        return self.phase.commanding

    def _inference_failed(self, reason: str) -> None:
        self._enter(Event.FAULT, reason)

    @property
    def inference_pending(self) -> bool:
        """A chunk has been requested and is neither merged nor given up yet."""
        return self.planner.pending

    def expected_delay(self) -> float:
        """Seconds from a chunk's observation to its merge, as the next chunk should expect them (a capped
        quantile of the recent delays plus the margin, see dp_ros.core.chunk_delay)."""
        return self.planner.delays.expected()

    def queue_depth(self, now: float) -> int:
        return self.schedule.remaining(now)

    def retune(self, changes: dict) -> None:
        """Change LiveSettings.NAMES from the next chunk on (raises ValueError, changing nothing, if refused)."""
        with self._lock:
            self.live.stage(changes)

    def close(self) -> None:
        self.planner.close()
