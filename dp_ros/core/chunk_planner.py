"""The policy controller's chunks: when to request one, computing it in a worker thread, merging it. ROS-free.

The plan has *epochs*: a new one starts whenever the controller discards the plan (stop, reset, fault,
watchdog, its recovery; dp_ros.core.controller_states). A chunk is requested with a ticket of the current
epoch and merged only if its epoch is still current, so a chunk computed from observations before a
stall is never executed and never guides another (the guide is this epoch's plan, empty after a discard).
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable

import numpy as np

from dp_ros.core.action_schedule import ActionSchedule
from dp_ros.core.choices import Transition
from dp_ros.core.chunk_delay import DelayEstimate
from dp_ros.core.chunk_guidance import ChunkGuide
from dp_ros.core.controller_states import ChunkTicket
from dp_ros.core.log_throttle import LogThrottle
from dp_ros.core.observation_history import HistoryNotReady
from dp_ros.core.plan_events import ChunkRecord, PinnedSpan, pinned_span


class ChunkPlanner:
    """The plan (an ActionSchedule), the delay estimate and the inference worker of one controller.

    Shares the controller's lock: every method but the worker's is called with it held, except
    :meth:`close`. ``accepts()`` says whether the controller takes chunks now; ``on_failure(reason)`` is
    called (lock held) when inference raises.
    """

    def __init__(self, robot, predictor, config, clock, history, lock: threading.Lock, stats, safety, log,
                 accepts: Callable[[], bool], on_failure: Callable[[str], None]):
        self.robot, self.predictor, self.config, self.clock = robot, predictor, config, clock
        self.history = history
        self._lock, self.stats, self.safety, self.log = lock, stats, safety, log
        self._accepts, self._on_failure = accepts, on_failure
        self.schedule = ActionSchedule(robot.control_period, transition=config.transition,
                                       blend_steps=config.blend_steps, ensemble_decay=config.ensemble_decay,
                                       late_margin=config.late_margin,
                                       blend_max_deviation=config.blend_max_deviation)
        self.delays = DelayEstimate(config.delay_margin)
        self.use_config()
        self._epoch = 0
        self._ticket: ChunkTicket | None = None
        """The chunk requested and not yet merged or given up."""
        self._late_chunk_log = LogThrottle(5.0)
        self.chunk_listeners: list[Callable[[ChunkRecord], None]] = []
        """Called with each chunk that joined the plan (worker thread, lock released; must be quick)."""
        self.plan_cleared_listeners: list[Callable[[], None]] = []
        """Called whenever the plan is forgotten (lock held; must only take note)."""
        self._request = threading.Event()
        self._closing = threading.Event()
        self._worker = threading.Thread(target=self._inference_loop, name="dp_ros_inference", daemon=True)
        self._worker.start()

    def use_config(self) -> None:
        """Take ``config``'s transition and delay margin (changed while running: call with the lock held and no
        chunk pending, so the next chunk is the first requested, sampled and merged with them)."""
        self.schedule.transition = self.config.transition  # one of TRANSITIONS (the parameter says so)
        self.delays.margin = float(self.config.delay_margin)
        self._guided = self.config.transition == Transition.GUIDED
        # guided: the next chunk is requested when replan_steps of the committed actions remain; the
        # reserve after them keeps the plan going while it is computed
        reserve = self.predictor.future_steps - self.predictor.n_action_steps if self._guided else 0
        self._replan_threshold = self.config.replan_steps + reserve

    def due(self, now: float) -> bool:
        """Whether the next chunk would be requested at ``now`` (few planned actions left, none being computed)."""
        return self.schedule.remaining(now) <= self._replan_threshold and self._ticket is None

    @property
    def pending(self) -> bool:
        """A chunk has been requested and is neither merged nor given up yet."""
        return self._ticket is not None

    def request_if_due(self, now: float) -> None:
        """Request the next chunk when few planned actions remain and none is being computed."""
        if self.due(now):
            self._ticket = ChunkTicket(self._epoch)
            self._request.set()

    def discard(self) -> None:
        """Start a new epoch: forget the plan; the chunk being computed, if any, will not be merged."""
        self._epoch += 1
        self.schedule.clear()
        for listener in self.plan_cleared_listeners:
            listener()

    def _inference_loop(self) -> None:
        while not self._closing.is_set():
            if not self._request.wait(timeout=0.2):
                continue
            self._request.clear()
            if self._closing.is_set():
                return
            with self._lock:
                ticket = self._ticket
            if ticket is not None:
                self._compute_chunk(ticket)

    def _compute_chunk(self, ticket: ChunkTicket) -> None:
        obs_time = self.clock()
        try:
            history = self.history.sample(obs_time)
        except HistoryNotReady:
            with self._lock:
                self._ticket = None
            return
        started = time.perf_counter()
        guide = None
        try:
            if self._guided:
                guide = self._guide(obs_time, ticket)
                prediction = self.predictor.predict_chunk(history.observations, guide=guide)
            else:
                ticket.expected_delay = self.delays.expected()
                prediction = self.predictor.predict_chunk(history.observations)
            actions = np.asarray(prediction, dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - any inference failure must stop commanding, not crash
            self.stats.inference_errors += 1
            self.log("error", traceback.format_exc())
            with self._lock:
                self._ticket = None
                self._on_failure(f"inference failed: {exc}")
            return
        elapsed = time.perf_counter() - started
        with self._lock:
            self._ticket = None
            record = self._merge(ticket, history.times[-1], actions, elapsed, guide)
        for listener in self.chunk_listeners if record is not None else ():
            listener(record)

    def _merge(self, ticket: ChunkTicket, obs_time: float, actions: np.ndarray, elapsed: float,
               guide: ChunkGuide | None = None) -> ChunkRecord | None:
        """Merge a computed chunk into the plan, unless its epoch has passed (call with the lock held); its record
        for the chunk listeners (None if it was not merged or nobody listens)."""
        # a ticket is issued in an epoch and its observation is taken after that: an old epoch means an old
        # observation (the clock is not compared, it may be a simulation's, reset with it)
        if ticket.epoch != self._epoch or not self._accepts():
            self.stats.chunks_discarded += 1  # stopped, reset or watchdog while computing: obsolete
            return None
        self.stats.last_inference_time = elapsed
        self.stats.total_inference_time += elapsed
        if not np.all(np.isfinite(actions)):
            self.safety.counters.nonfinite_rejections += int(np.count_nonzero(~np.isfinite(actions).all(axis=1)))
            self.log("warn", "the policy returned NaN/Inf actions; chunk rejected")
            return None
        merged_at = self.clock()
        pinned_until = obs_time + ticket.expected_delay if self._guided else None
        result = self.schedule.add_chunk(obs_time, actions, now=merged_at, pinned_until=pinned_until)
        delay = merged_at - obs_time
        if self.delays.add(delay, ticket.expected_delay) and self._late_chunk_log.ready():
            self.log("warn", f"a chunk arrived {delay * 1000:.0f} ms after its observation, "
                             f"{(delay - ticket.expected_delay) * 1000:.0f} ms later than expected: its first actions "
                             f"were cross-faded into the plan ({self.delays.outliers.count} late chunks so far)")
        self.stats.chunks_produced += 1
        self.stats.actions_dropped_late += result.dropped_late
        if not self.chunk_listeners:
            return None
        period = self.robot.control_period
        pinned = PinnedSpan() if guide is None else pinned_span(guide.steps, guide.delay, len(actions), period)
        plan_times, plan_actions = self.schedule.plan()
        return ChunkRecord(index=self.stats.chunks_produced - 1, observation_time=float(obs_time), merged_at=merged_at,
                           compute_time=elapsed, period=period, actions=actions, dropped_late=result.dropped_late,
                           pinned=pinned, transition=self.config.transition, plan_times=plan_times,
                           plan_actions=plan_actions)

    def _guide(self, obs_time: float, ticket: ChunkTicket) -> ChunkGuide:
        """The plan as the chunk for an observation at ``obs_time`` should continue it (only this epoch's plan:
        the schedule is cleared whenever an epoch ends)."""
        with self._lock:
            if ticket.epoch != self._epoch:
                times, actions = np.empty(0), np.empty((0, 0))
            else:
                times, actions = self.schedule.plan()
            ticket.expected_delay = self.delays.expected()
        period = self.robot.control_period
        return ChunkGuide(steps=(times - obs_time) / period, actions=actions,
                          delay=ticket.expected_delay / period, gradient_steps=self.config.guidance_gradient_steps,
                          max_weight=self.config.guidance_max_weight)

    def close(self) -> None:
        self._closing.set()
        self._request.set()
        self._worker.join(timeout=5.0)
