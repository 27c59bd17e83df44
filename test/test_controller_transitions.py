"""The controller's state machine transition by transition, the epochs that discard pre-stall chunks, and the
robust delay estimate, on a manual clock (a scripted predictor stands in for the policy, as in
test_policy_controller.py; real checkpoints drive the controller in test_policy_node.py)."""
import threading
import time

import numpy as np
import pytest

from dp_ros.core.controller_states import TRANSITIONS, Event, InvalidTransition, Phase, next_phase
from dp_ros.core.policy_controller import PolicyController
from lerobot_fixtures import node_controller_config, tiny_robot
from test_policy_controller import ManualClock, ScriptedPredictor, feed, make, wait_for

ROBOT_EVENTS = {
    Event.START: lambda c, clock: c.start(),
    Event.STOP: lambda c, clock: c.stop(),
    Event.RESET: lambda c, clock: c.reset(),
    Event.FAULT: lambda c, clock: c.set_fault("a fault for the test"),
}


def running(controller, clock):
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    clock.t = 100.02
    feed(controller, 100.0, clock.t)
    assert controller.step(clock.t) is not None


def stalled(controller, clock):
    running(controller, clock)
    while controller.stats.watchdog_trips == 0:  # the camera goes silent; the joint states go on
        clock.t = round(clock.t + 0.02, 6)
        feed(controller, clock.t - 0.019, clock.t, camera=False)
        controller.step(clock.t)
    assert controller.stats.stop_commands == 1


def into(phase, controller, clock):
    """Bring a fresh controller into ``phase`` through its public interface only."""
    if phase is Phase.WARMING_UP:
        controller.start()
    elif phase is Phase.RUNNING:
        running(controller, clock)
    elif phase is Phase.STALLED:
        stalled(controller, clock)
    elif phase is Phase.STOPPED:
        controller.start()
        controller.stop()
    elif phase is Phase.FAULT:
        controller.set_fault("a fault for the test")
    assert controller.phase is phase


@pytest.mark.parametrize("phase, event", [(p, e) for (p, e) in TRANSITIONS if e in ROBOT_EVENTS])
def test_every_service_event_takes_the_tabled_transition(phase, event):
    controller, clock, _ = make(latency=0.0, transition="guided", future_steps=12)
    into(phase, controller, clock)
    had_plan = controller.queue_depth(clock.t) > 0
    ROBOT_EVENTS[event](controller, clock)
    after = TRANSITIONS[(phase, event)]
    assert controller.phase is after and controller.state is after.status
    leaves_plan = event is Event.RESET or (phase.commanding or phase is Phase.STALLED) and after is not phase
    if leaves_plan:
        assert controller.queue_depth(clock.t) == 0, "the plan is discarded"
    if phase is Phase.RUNNING and after is not Phase.RUNNING:
        assert controller.step(clock.t + 0.02) is not None, "one command brings the arm to rest"
        assert controller.stats.stop_commands == 1 and controller.step(clock.t + 0.04) is None
    elif phase is Phase.RUNNING:
        assert had_plan and controller.queue_depth(clock.t) > 0, "start while running keeps the plan"
    controller.close()


def test_the_watchdog_transitions_stale_fresh_and_ready():
    controller, clock, _ = make(latency=0.0)
    controller.start()
    feed(controller, 99.7, 100.0)
    clock.t = 100.5
    controller.step(clock.t)
    assert controller.phase is Phase.STALLED, "stale while warming up"
    feed(controller, 100.4, 100.5)
    controller.step(clock.t)
    assert controller.phase is Phase.WARMING_UP, "fresh: warming up again, waiting for a chunk of fresh data"
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    assert controller.step(clock.t) is not None and controller.phase is Phase.RUNNING, "ready"
    controller.close()


def test_events_that_cannot_happen_are_refused_as_bugs():
    impossible = [(p, e) for p in Phase for e in Event if (p, e) not in TRANSITIONS]
    assert (Phase.IDLE, Event.READY) in impossible and (Phase.RUNNING, Event.FRESH) in impossible
    for phase, event in impossible:
        with pytest.raises(InvalidTransition):
            next_phase(phase, event)


class GatedPredictor(ScriptedPredictor):
    """A chunk takes as long as the test holds its gate (real threads, manual clock)."""

    def __init__(self, clock):
        super().__init__(clock, latency=0.0)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def predict_chunk(self, history, guide=None):
        self.entered.set()
        assert self.gate.wait(10.0)
        return super().predict_chunk(history, guide)


def test_no_chunk_from_before_a_stall_is_executed_or_guides_after_recovery():
    clock = ManualClock()
    predictor = GatedPredictor(clock)
    predictor.future_steps = 12
    robot = tiny_robot(control_rate=10, command_rate=50, velocity_limit=100.0)
    controller = PolicyController(robot, predictor, node_controller_config(replan_steps=4, watchdog_timeout=0.2,
                                                                     transition="guided"), clock=clock)
    running(controller, clock)
    # run until the second chunk is requested, then hold it in inference while the camera goes silent
    predictor.gate.clear()
    predictor.entered.clear()
    while not predictor.entered.is_set():
        clock.t = round(clock.t + 0.02, 6)
        feed(controller, clock.t - 0.019, clock.t)
        controller.step(clock.t)
        time.sleep(0.002)
    stalled_from = clock.t
    while controller.stats.watchdog_trips == 0:
        clock.t = round(clock.t + 0.02, 6)
        feed(controller, clock.t - 0.019, clock.t, camera=False)
        controller.step(clock.t)
    assert controller.phase is Phase.STALLED and clock.t < stalled_from + 0.3
    # fresh data: recovery; then the chunk computed from pre-stall observations arrives
    clock.t = round(clock.t + 0.3, 6)
    feed(controller, clock.t - 0.3, clock.t)
    assert controller.step(clock.t) is None and controller.phase is Phase.WARMING_UP
    recovered_at = clock.t
    predictor.gate.set()
    assert wait_for(lambda: controller.stats.chunks_discarded == 1 and not controller.inference_pending)
    assert controller.stats.chunks_produced == 1 and controller.queue_depth(clock.t) == 0
    # the next chunk is made from fresh data and continues nothing
    commands = []
    for _ in range(20):
        clock.t = round(clock.t + 0.02, 6)
        feed(controller, clock.t - 0.019, clock.t)
        command = controller.step(clock.t)
        if command is not None:
            commands.append(command)
        time.sleep(0.002)
    assert controller.stats.chunks_produced >= 2 and len(predictor.guides) >= 3
    assert predictor.guides[2].is_empty, "the pre-stall plan guides nothing"
    assert commands and controller.phase is Phase.RUNNING
    # chunk 3 holds 0.30 + 0.01 i (and chunk 4 0.4x): every command after the recovery comes from them, none
    # from chunk 2 (0.2x)
    for command in commands:
        assert np.all(command.positions >= 0.299), command.positions
    assert predictor.calls and recovered_at < clock.t
    controller.close()


class PlanFollowingPredictor:
    """Follows the guide's pinned actions; after them, it moves smoothly (over 5 steps, as guidance's decaying
    weights do) to its own solution 0.5 rad away from the plan: a late chunk's first on-time actions are
    therefore not the plan's. Each chunk takes the next of ``delays``
    seconds of the manual clock, while the test keeps stepping."""

    n_obs_steps = 2
    n_action_steps = 8
    future_steps = 16

    def __init__(self, clock, delays):
        self.clock, self.delays = clock, list(delays)
        self.count = 0
        self.due = float("inf")
        """Manual-clock time at which the chunk under way is done (the test waits for it there)."""

    def predict_chunk(self, history, guide=None):
        start = self.clock()
        delay = self.delays[min(self.count, len(self.delays) - 1)]
        self.count += 1
        self.due = start + delay
        while self.clock() < start + delay - 1e-9:
            time.sleep(0.0005)
        offsets = np.arange(self.future_steps, dtype=float)
        if guide is None or guide.is_empty:
            return np.tile(0.01 * offsets[:, None], (1, 3))
        planned = np.interp(offsets, guide.steps, guide.actions[:, 0])
        departure = np.clip((offsets - np.ceil(guide.delay) + 1) / 5, 0.0, 1.0)
        chunk = planned + (0.5 if self.count % 2 else -0.5) * departure
        return np.tile(chunk[:, None], (1, 3))


def test_a_late_chunk_and_a_one_second_outlier_join_the_plan_without_a_jump():
    clock = ManualClock()
    delays = [0.25] * 12 + [0.45] + [0.25] * 8 + [1.0] + [0.25] * 12
    predictor = PlanFollowingPredictor(clock, delays)
    robot = tiny_robot(control_rate=10, command_rate=50, velocity_limit=3.0)
    controller = PolicyController(robot, predictor, node_controller_config(replan_steps=4, watchdog_timeout=0.3,
                                                                     transition="guided", delay_margin=0.05),
                                  clock=clock)
    feed(controller, 99.7, 100.0)
    controller.start()
    limit_per_step = 3.0 * robot.control_period
    worst_step, estimates, merged = 0.0, [], 0
    while predictor.count < len(delays) and clock.t < 130:
        clock.t = round(clock.t + 0.02, 6)
        feed(controller, clock.t - 0.019, clock.t)
        controller.step(clock.t)
        time.sleep(0.0005)
        if controller.inference_pending and clock.t >= predictor.due - 1e-9:
            # the chunk takes exactly its delay of the manual clock, however busy the machine
            deadline = time.monotonic() + 10
            while controller.inference_pending and time.monotonic() < deadline:
                time.sleep(0.0005)
            predictor.due = float("inf")
        if controller.stats.chunks_produced > merged:
            merged = controller.stats.chunks_produced
            times, actions = controller.schedule.plan()
            worst_step = max(worst_step, float(np.abs(np.diff(actions[:, 0])).max(initial=0.0)))
            estimates.append(controller.expected_delay())
    assert merged >= len(delays) - 2 and controller.stats.queue_underruns == 0
    assert worst_step <= limit_per_step, f"a plan step of {worst_step:.3f} rad in {robot.control_period} s"
    outliers = controller.delays.outliers
    assert outliers.count >= 2 and outliers.last_delay == pytest.approx(1.0, abs=0.05)
    assert max(estimates) < 0.25 + 0.05 + 0.1, "one slow chunk does not hold the estimate up"
    controller.close()


def test_delay_outliers_and_discarded_chunks_are_reported_in_diagnostics():
    from dataclasses import fields

    from dp_ros.conversions.status import PolicySnapshot, policy_diagnostics_msg
    from dp_ros.core.policy_controller import State

    values = {f.name: 0 for f in fields(PolicySnapshot)}
    values.update(state=State.RUNNING, reason="commanding", late_chunks=2, last_late_chunk_delay=1.02,
                  expected_chunk_delay=0.31, chunks_discarded=1)
    reported = {kv.key: kv.value for kv in policy_diagnostics_msg("policy", PolicySnapshot(**values)).status[0].values}
    assert reported["late_chunks"] == "2" and reported["last_late_chunk_delay_s"] == "1.020"
    assert reported["expected_chunk_delay_s"] == "0.310" and reported["chunks_discarded"] == "1"
