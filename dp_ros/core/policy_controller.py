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
any input is stale and resumes when fresh data and a full history return; whenever
commanding stops (watchdog, stop, reset, fault) one last command brings the arm
to rest within the limits.
"""
from __future__ import annotations

import enum
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from dp_ros.core.action_schedule import ActionSchedule
from dp_ros.core.chunk_guidance import ChunkGuide
from dp_ros.core.command_shaping import Command, CommandSettings, CommandShaper
from dp_ros.core.log_throttle import LogThrottle
from dp_ros.core.observation_history import JOINT_STATE_STREAM, HistoryNotReady, ObservationHistory
from dp_ros.core.plan_events import ChunkListener, ChunkRecord, PinnedSpan, pinned_span
from dp_ros.core.safety import SafetyFilter
from dp_ros.robot_interface import RobotInterface


class State(enum.IntEnum):
    # values match dp_ros_msgs/PolicyStatus
    IDLE = 0
    WARMING_UP = 1
    RUNNING = 2
    STOPPED = 3
    FAULT = 4


class ChunkPredictor(Protocol):
    n_obs_steps: int
    n_action_steps: int
    future_steps: int
    """Actions a guided chunk holds (from the newest observation's time to the end of the horizon)."""

    def predict_chunk(self, history: Sequence[dict[str, np.ndarray]], guide: ChunkGuide | None = None) -> np.ndarray: ...


DELAY_WINDOW = 10
"""Chunks whose measured delay (observation to merge) sets the expected delay of the next one."""


@dataclass
class ControllerConfig:
    """Behaviour of the policy controller (the policy node's parameters of the same names)."""

    replan_steps: int = 4
    """Request the next chunk when this many planned actions or fewer remain (guided: this many of the
    chunk's first n_action_steps; the actions after those are a reserve that runs while the next chunk
    is late)."""
    transition: str = "guided"
    """How a new chunk joins the old plan: blend, ensemble, replace or guided (the chunk is sampled as a
    continuation of the plan, see dp_ros.core.chunk_guidance)."""
    blend_steps: int = 4
    """Actions over which blend moves from the old plan to the new one."""
    blend_max_deviation: float = 0.15
    """blend: plans differing by more than this (rad or m) anywhere in the overlap are different
    solutions; the new chunk then replaces the old instead of being averaged with it."""
    ensemble_decay: float = 0.1
    """ensemble: weight exp(-decay * age) of older predictions."""
    watchdog_timeout: float = 0.0
    """Seconds after which a silent camera or joint state stops commanding. 0: two control periods from the
    newest sample to the last command (longer only for a sensor slower than that; see watchdog_limit)."""
    velocity_scale: float = 1.0
    """Fraction of the velocity (and acceleration) limits the commands may use."""
    late_margin: float = 0.0
    """Actions due within this many seconds after a chunk arrives count as late too."""
    trajectory_lead_time: float = 0.0
    """Seconds after the controller takes a trajectory at which its first point is reached; 0: one policy step."""
    timing_margin: float = 0.02
    """Seconds by which the controller may start a command earlier or later than expected (its update period
    plus the delivery jitter); the first segment keeps that much full-speed motion in reserve."""
    delay_margin: float = 0.05
    """guided: seconds added to the expected delay of a chunk (the longest of the last few, from observation to
    merge); the plan's actions due before then are pinned in the new chunk."""
    guidance_gradient_steps: int = 2
    """guided: denoising steps (after the first) that also get RTC's guidance on the predicted clean sample, a
    vector-Jacobian product through the network costing about two network calls each; 0 = inpainting only."""
    guidance_max_weight: float = 5.0
    """guided: largest weight of that guidance (RTC's beta)."""


@dataclass
class Stats:
    chunks_produced: int = 0
    actions_dropped_late: int = 0
    commands_published: int = 0
    watchdog_trips: int = 0
    inference_errors: int = 0
    queue_underruns: int = 0
    stop_commands: int = 0
    last_inference_time: float = 0.0
    total_inference_time: float = 0.0
    worst_publish_delay: float = 0.0
    """Longest time from computing a command to its leaving the process (seconds)."""
    late_commands_withdrawn: int = 0
    """Commands not sent because they were ready too long after they were computed (see ``confirm``)."""

    @property
    def mean_inference_time(self) -> float:
        return self.total_inference_time / self.chunks_produced if self.chunks_produced else 0.0


class PolicyController:
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
                                          config.watchdog_timeout or self.default_watchdog_timeout(robot))
        self.schedule = ActionSchedule(period, config.transition, config.blend_steps, config.ensemble_decay,
                                       config.late_margin, config.blend_max_deviation)
        self._guided = config.transition == "guided"
        # guided: the next chunk is requested when replan_steps of the committed actions remain; the
        # reserve after them keeps the plan going while it is computed
        reserve = predictor.future_steps - predictor.n_action_steps if self._guided else 0
        self._replan_threshold = config.replan_steps + reserve
        self._delays: deque[float] = deque(maxlen=DELAY_WINDOW)
        self.safety = SafetyFilter.for_robot(robot, config.velocity_scale)
        self.command_type = command_type or robot.command.type
        self.trajectory_mode = trajectory_mode or robot.command.trajectory_mode
        self.shaper = CommandShaper(CommandSettings.for_robot(robot, self.command_type, self.trajectory_mode,
                                                              config.trajectory_lead_time, config.timing_margin),
                                    self.safety)
        self.stats = Stats()
        self.state = State.IDLE
        self.reason = "waiting for start"
        self._enabled = False
        self._stale = False
        self._commanding = False
        """The last command came from the plan (so the arm may be moving)."""
        self._brake = False
        self._forget = False
        self._lock = threading.Lock()
        self._publish_delay_warned = False
        self._withdrawable: Command | None = None
        self._late_log = LogThrottle(5.0)
        self._request = threading.Event()
        self._inflight = False
        self._generation = 0
        self._closing = False
        self._chunk_listeners: list[ChunkListener] = []
        self._plan_cleared_listeners: list[Callable[[], None]] = []
        self._worker = threading.Thread(target=self._inference_loop, name="dp_ros_inference", daemon=True)
        self._worker.start()

    # --- observers -------------------------------------------------------------------------
    def add_chunk_listener(self, listener: ChunkListener) -> None:
        """Call ``listener(record)`` for every chunk that joins the plan (in the inference thread, after the merge,
        without the lock held; it must be quick)."""
        self._chunk_listeners.append(listener)

    def add_plan_cleared_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever the plan is forgotten (stop, reset, watchdog, fault); it runs with the
        controller's lock held, so it must only take note."""
        self._plan_cleared_listeners.append(listener)

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

    # --- control ------------------------------------------------------------------------
    def start(self) -> str:
        with self._lock:
            self._enabled = True
            self.set_status(State.WARMING_UP, "started: waiting for a full observation history")
        return "started"

    def stop(self, reason: str = "stopped by request") -> str:
        with self._lock:
            self._enabled = False
            self._halt()
            self.set_status(State.STOPPED, reason)
        return reason

    def reset(self) -> str:
        """Clear the history and the plan (bringing the arm to rest); keep running if running.

        The next command starts from the measured position: after a reset the world may have changed."""
        with self._lock:
            self._halt(forget=True)
            self.history.clear()
            if self._enabled:
                self.set_status(State.WARMING_UP, "reset: waiting for a full observation history")
        return "history and action queue cleared"

    def set_fault(self, reason: str) -> None:
        with self._lock:
            self._enabled = False
            self._halt()
            self.set_status(State.FAULT, reason)

    def _halt(self, forget: bool = False, keep_inflight: bool = False) -> None:
        """Forget the plan; the next step brings the arm to rest (call with the lock held).

        ``forget``: also forget what was published, so the next command starts from the measured position.
        ``keep_inflight``: a chunk being computed (from data that was fresh) may still join the plan; its actions
        whose time has passed are dropped when commanding resumes."""
        if not keep_inflight:
            self._generation += 1
        self.schedule.clear()
        for listener in self._plan_cleared_listeners:
            listener()
        self._brake = self._brake or self._commanding
        self._forget = self._forget or forget

    def set_status(self, state: State, reason: str, announce: bool = False) -> None:
        """Change state; the log hears of state changes (and of reasons marked ``announce``)."""
        if state != self.state or (announce and reason != self.reason):
            level = {State.FAULT: "error", State.STOPPED: "warn"}.get(state, "info")
            self.log(level, f"{state.name.lower()}: {reason}")
        self.state, self.reason = state, reason

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
            self.shaper.note_publish_delay(seconds)
            self.stats.worst_publish_delay = max(self.stats.worst_publish_delay, seconds)
            settings = self.shaper.settings
            starved = settings.form == "trajectory" and self.shaper.lead_time > settings.lead_time
            if starved and not self._publish_delay_warned:
                self.log("warn", f"commands leave this node up to {self.shaper.publish_delay * 1000:.0f} ms after "
                                 f"they are computed: trajectories start {self.shaper.lead_time * 1000:.0f} ms ahead "
                                 f"instead of {settings.lead_time * 1000:.0f} ms (twice the timing margin plus that "
                                 "delay), so the limits hold but commands react later. Give the node a less busy CPU "
                                 "(fewer inference_threads, no other heavy programs)")
            self._publish_delay_warned = starved

    def step(self, now: float) -> Command | None:
        """The command to send at ``now``, or None to send nothing."""
        age, stream = self.history.newest_age(now)
        with self._lock:
            if self._brake or self._forget:
                return self._stop_command(now)
            if not self._enabled:
                return None
            if age == np.inf and not self._stale:
                self.set_status(State.WARMING_UP, f"waiting for the first {stream} message")
                return None
            limit = self.watchdog_limit()
            self.history.max_sample_age = limit
            if age > limit:
                if not self._stale:
                    self._stale = True
                    self.stats.watchdog_trips += 1
                    self._halt(keep_inflight=True)
                    what = "never received" if age == np.inf else f"{age:.3f}s old"
                    self.set_status(State.STOPPED, f"watchdog: newest {stream} is {what} (timeout {limit:.3f}s); "
                                                   "holding")
                    return self._stop_command(now)
                return None
            if self._stale or self.state != State.RUNNING:
                try:
                    self.history.sample(now)
                except HistoryNotReady as exc:
                    self.set_status(State.WARMING_UP if not self._stale else State.STOPPED,
                                    ("watchdog: fresh data again, " if self._stale else "") + f"waiting: {exc}")
                    return None
                if self._stale:
                    self._stale = False
            if self.schedule.remaining(now) <= self._replan_threshold and not self._inflight:
                self._inflight = True
                self._request.set()
            command = self._plan_command(now)
            if command is None:
                return None
            self._commanding = True
            self._withdrawable = command
            self.stats.commands_published += 1
            if self.state != State.RUNNING or self.reason != "commanding":
                self.set_status(State.RUNNING, "commanding", announce=True)
            return command

    def _measured(self, now: float) -> tuple[np.ndarray, float] | None:
        newest = self.history.streams[JOINT_STATE_STREAM].latest()
        if newest is None:
            return None
        return np.asarray(newest.value, dtype=np.float64), max(0.0, now - newest.stamp)

    def _plan_command(self, now: float) -> Command | None:
        if self.schedule.at(now) is None:
            if self.stats.chunks_produced and self.state == State.RUNNING:
                self.stats.queue_underruns += 1
                self.set_status(State.RUNNING, "action queue ran dry: inference is slower than the plan it makes; "
                                               "lower num_inference_steps or raise replan_steps", announce=True)
            elif not self.stats.chunks_produced:
                self.set_status(State.WARMING_UP, "waiting for the first action chunk")
            return None
        measured, age = self._measured(now)
        return self.shaper.command(now, self.schedule.at, self.schedule.upcoming, measured, age)

    def _stop_command(self, now: float) -> Command | None:
        """Once, after the controller stopped planning: the command that brings the arm to rest."""
        measured = self._measured(now)
        command = None if measured is None or not self._brake else self.shaper.stop_command(now, *measured)
        self._brake = self._commanding = False
        if self._forget:
            self._forget = False
            self.shaper.reset()
        if command is not None:
            self.stats.stop_commands += 1
            self.stats.commands_published += 1
        return command

    # --- inference worker -------------------------------------------------------------------
    def _inference_loop(self) -> None:
        while not self._closing:
            if not self._request.wait(timeout=0.2):
                continue
            self._request.clear()
            if self._closing:
                return
            with self._lock:
                generation = self._generation
            obs_time = self.clock()
            try:
                history = self.history.sample(obs_time)
            except HistoryNotReady:
                with self._lock:
                    self._inflight = False
                continue
            started = time.perf_counter()
            guide = None
            try:
                if self._guided:
                    guide = self._guide(obs_time)
                    prediction = self.predictor.predict_chunk(history.observations, guide=guide)
                else:
                    prediction = self.predictor.predict_chunk(history.observations)
                actions = np.asarray(prediction, dtype=np.float64)
            except Exception as exc:  # noqa: BLE001 - any inference failure must stop commanding, not crash
                self.stats.inference_errors += 1
                self.log("error", traceback.format_exc())
                self.set_fault(f"inference failed: {exc}")
                with self._lock:
                    self._inflight = False
                continue
            elapsed = time.perf_counter() - started
            pinned = PinnedSpan() if guide is None else pinned_span(guide.steps, guide.delay, len(actions),
                                                                    self.robot.control_period)
            with self._lock:
                self._inflight = False
                if generation != self._generation or not self._enabled:
                    continue  # stopped, reset or watchdog while computing: this chunk is obsolete
                self.stats.last_inference_time = elapsed
                self.stats.total_inference_time += elapsed
                if not np.all(np.isfinite(actions)):
                    self.safety.counters.nonfinite_rejections += int(np.count_nonzero(~np.isfinite(actions).all(axis=1)))
                    self.log("warn", "the policy returned NaN/Inf actions; chunk rejected")
                    continue
                merged_at = self.clock()
                result = self.schedule.add_chunk(history.times[-1], actions, now=merged_at)
                self._delays.append(merged_at - history.times[-1])
                self.stats.chunks_produced += 1
                self.stats.actions_dropped_late += result.dropped_late
                record = self._chunk_record(history.times[-1], merged_at, elapsed, actions, result.dropped_late,
                                            pinned) if self._chunk_listeners else None
            for listener in self._chunk_listeners if record is not None else ():
                listener(record)

    def _chunk_record(self, obs_time: float, merged_at: float, elapsed: float, actions: np.ndarray, dropped: int,
                      pinned: PinnedSpan) -> ChunkRecord:
        plan_times, plan_actions = self.schedule.plan()
        return ChunkRecord(index=self.stats.chunks_produced - 1, observation_time=float(obs_time),
                           merged_at=merged_at, compute_time=elapsed, period=self.robot.control_period,
                           actions=actions, dropped_late=dropped, pinned=pinned, transition=self.config.transition,
                           plan_times=plan_times, plan_actions=plan_actions)

    @property
    def inference_pending(self) -> bool:
        """A chunk has been requested and is neither merged nor given up yet."""
        return self._inflight

    def expected_delay(self) -> float:
        """Seconds from a chunk's observation to its merge, as the next chunk should expect them."""
        return (max(self._delays) if self._delays else 0.0) + self.config.delay_margin

    def _guide(self, obs_time: float) -> ChunkGuide:
        """The plan as the chunk for an observation at ``obs_time`` should continue it."""
        times, actions = self.schedule.plan()
        period = self.robot.control_period
        return ChunkGuide(steps=(times - obs_time) / period, actions=actions, delay=self.expected_delay() / period,
                          gradient_steps=self.config.guidance_gradient_steps,
                          max_weight=self.config.guidance_max_weight)

    def queue_depth(self, now: float) -> int:
        return self.schedule.remaining(now)

    def close(self) -> None:
        self._closing = True
        self._request.set()
        self._worker.join(timeout=5.0)
