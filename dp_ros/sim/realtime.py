"""A :class:`~dp_ros.sim.environment.SimEnvironment` running in real time in its own thread.

The physics thread steps the environment so that simulated time follows the
wall clock, hands a copy of the state to ``on_state`` at ``state_rate`` (in
simulated time, so the spacing of the states is exact), and keeps the latest
state for other threads (cameras, status). Other threads change the
environment only through :meth:`RealTimeSimulation.call` / ``call_soon``,
which run a function in the physics thread between two steps, so nothing
there waits on a lock held by ROS callbacks.

Stamps: with ``clock="wall"`` a state taken at simulated time ``t`` is stamped
``epoch + t``, the wall-clock time it was taken. When the physics falls more
than ``max_lag`` behind (a starved CPU), it does not race to catch up: the
lost time is skipped, the epoch moves on and commanded trajectories keep their
wall-clock schedule. With ``clock="sim"`` a state is stamped ``t`` (for
``/clock`` and use_sim_time users); falling behind then just slows simulated
time down, as Gazebo does with a real-time factor below one.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from concurrent.futures import Future
from typing import Any, Callable

from dp_ros.node_params.sim import SIM
from dp_ros.sim.environment import SimEnvironment, SimState

CLOCKS = ("wall", "sim")


class RealTimeSimulation:
    """Runs ``env`` in real time; see the module docstring."""

    def __init__(self, env: SimEnvironment, state_rate: float = 100.0,
                 on_state: Callable[[SimState], None] | None = None, clock: str = "wall",
                 max_lag: float = SIM["max_lag"].default,
                 logger=None, monotonic: Callable[[], float] = time.monotonic,
                 wall_time: Callable[[], float] = time.time, sleep: Callable[[float], None] | None = None):
        """``logger``: anything with ``warning`` and ``error`` methods (a logging.Logger or an rclpy logger).

        ``monotonic``, ``wall_time`` and ``sleep`` are the clocks the physics follows and how it waits for
        them (default: the machine's; a test gives its own to run time exactly).
        """
        if clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
        if state_rate <= 0:
            raise ValueError(f"state_rate must be positive, got {state_rate}")
        self.env = env
        self.state_period = 1.0 / state_rate
        self.on_state = on_state
        self.clock = clock
        self.max_lag = max_lag
        self.logger = logger or logging.getLogger(__name__)
        self.resyncs = 0
        """How often the physics fell more than ``max_lag`` behind and skipped ahead."""
        self._resyncs_reported = 0
        self._last_resync_report = -1e9
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._monotonic, self._wall_time = monotonic, wall_time
        self._sleep = sleep or self._stop.wait
        self._epoch = wall_time() - env.time
        self._mono_start, self._sim_start = monotonic(), env.time
        self._latest = env.snapshot()

    # --- time ------------------------------------------------------------------------
    def stamp(self, sim_time: float) -> float:
        """The stamp (seconds) of a state taken at ``sim_time``."""
        return sim_time if self.clock == "sim" else self._epoch + sim_time

    def now(self) -> float:
        """The simulated time it is now by the wall clock (the physics may still be catching up to it)."""
        return self.sim_time_at(self._monotonic())

    def sim_time_at(self, monotonic: float) -> float:
        """The simulated time of a ``time.monotonic()`` reading. Call it in the physics thread (in a
        :meth:`call_soon` function): a skip ahead changes the answer, and the physics thread sees the change
        together with the schedules it moved."""
        return self._sim_start + (monotonic - self._mono_start)

    def sim_time_of(self, stamp: float) -> float:
        """The simulated time a stamp (seconds, this simulation's clock) stands for."""
        return stamp if self.clock == "sim" else stamp - self._epoch

    # --- thread ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="dp_ros_physics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._run_calls()  # complete what was still queued

    def latest(self) -> SimState:
        """The state after the most recent physics step (a copy; any thread)."""
        return self._latest

    def call_soon(self, function: Callable[[SimEnvironment], Any]) -> Future:
        """Run ``function(env)`` in the physics thread before its next step; returns a Future of its result."""
        future: Future = Future()
        if not self.running:
            self._run_one(function, future)
        else:
            self._calls.put((function, future))
        return future

    def call(self, function: Callable[[SimEnvironment], Any], timeout: float = 5.0) -> Any:
        """Like :meth:`call_soon`, waiting for the result (exceptions are re-raised here)."""
        return self.call_soon(function).result(timeout)

    def _run_one(self, function, future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = function(self.env)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._latest = self.env.snapshot()
            future.set_exception(exc)
            return
        self._latest = self.env.snapshot()  # before the caller wakes up, so it sees the change
        future.set_result(result)

    def _run_calls(self) -> None:
        while True:
            try:
                function, future = self._calls.get_nowait()
            except queue.Empty:
                return
            self._run_one(function, future)

    def _emit(self, state: SimState) -> None:
        if self.on_state is None:
            return
        try:
            self.on_state(state)
        except Exception:  # noqa: BLE001 - a listener must not stop the physics
            self.logger.error(f"state listener failed: {traceback.format_exc()}")

    def _report_resync(self, lag: float) -> None:
        now = self._monotonic()
        if now - self._last_resync_report < 5.0:
            return
        count = self.resyncs - self._resyncs_reported
        self._last_resync_report, self._resyncs_reported = now, self.resyncs
        self.logger.warning(f"physics fell {lag * 1000:.0f} ms behind the wall clock and skipped ahead "
                            f"({count} time(s) since the last report): the CPU is busy; fewer camera frames "
                            f"(camera_rate) or other programs closed would help")

    def _loop(self) -> None:
        env = self.env
        step = env.timestep
        self._mono_start, self._sim_start = self._monotonic(), env.time
        self._epoch = self._wall_time() - env.time
        next_state = env.time + step  # the first state comes with the first step
        while not self._stop.is_set():
            self._run_calls()
            due = self.now()
            lag = due - env.time
            if lag > self.max_lag:
                skipped = lag - step
                self._sim_start -= skipped
                due -= skipped
                if self.clock == "wall":
                    # stamps jump ahead with the wall clock; trajectories keep their wall-clock schedule
                    self._epoch += skipped
                    env.shift_schedule(-skipped)
                self.resyncs += 1
                self._report_resync(lag)
            while env.time + 0.5 * step <= due:
                env.step()
                if env.time + 1e-9 >= next_state:
                    state = env.snapshot()
                    self._latest = state
                    self._emit(state)
                    next_state += self.state_period
                    if next_state < env.time:
                        next_state = env.time + self.state_period
            self._latest = env.snapshot()
            wait = env.time + step - self.now()
            if wait > 0:
                self._sleep(wait)
