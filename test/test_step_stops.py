"""Step commands (forward_command_controller, JointState) with acceleration limits stop within the limits.

The policy controller runs on a manual clock at 50 Hz with a stand-in policy whose plan sweeps every joint at
1.9 rad/s (the limit is 2 rad/s, 10 rad/s^2); then commanding stops: by request, by the watchdog, by a reset,
because the plan runs out, because a command was ready too late and withdrawn. Every command is
judged by the forward controller written out here, independently of dp_ros's ControllerModel: at each of its
updates (50 Hz) the set-point becomes the newest command received, and velocity and acceleration are the
finite differences of the set-point from update to update. Each test also judges the stream as it would have
been had commanding simply ended at the event: that breaks the acceleration limit, so the tests can fail.
"""
import threading
import time

import numpy as np
import pytest

from dp_ros.core.policy_controller import PolicyController
from lerobot_fixtures import node_controller_config, tiny_robot

UPDATE = 0.02          # the controller's update period = the command period
DELIVERY = 0.003       # seconds from a command's computation to its receipt
SPEED, VELOCITY_LIMIT, ACCELERATION_LIMIT = 1.9, 2.0, 10.0
T0 = 100.0
TOLERANCE = 1e-4       # relative: joint states are float32 in the history (a restart from one is 1e-7 rad off)


class ManualClock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


class SweepPredictor:
    """Every chunk lies on one line: each joint at SPEED rad/s from T0 (the plan's action i is at the
    observation time + i policy steps). ``stall_after`` chunks, the next call blocks until released."""

    n_obs_steps, n_action_steps, future_steps = 2, 8, 8

    def __init__(self, clock, stall_after=None, speed=SPEED):
        self.clock, self.stall_after, self.calls, self.speed = clock, stall_after, 0, speed
        self.release = threading.Event()

    def predict_chunk(self, history, guide=None):
        self.calls += 1
        if self.stall_after is not None and self.calls > self.stall_after:
            self.release.wait(30)
        t = self.clock() - T0 + 0.1 * np.arange(8)
        return np.repeat((self.speed * t)[:, None], 3, axis=1)


class ForwardControllerJudge:
    """A forward_command_controller, written from its behaviour: at every update the set-point becomes the
    newest command received by then (before the first, the start position). Updates lie half an update after
    the commands' schedule."""

    def __init__(self, start):
        self.start, self.received = np.asarray(start, dtype=float), []

    def receive(self, receipt, target):
        self.received.append((receipt, np.asarray(target, dtype=float)))

    def setpoint(self, t):
        newest = [target for receipt, target in self.received if receipt <= t]
        return newest[-1] if newest else self.start

    def acceleration_ratios(self, until):
        """Per update, the largest |acceleration| / limit."""
        return np.max(np.abs(np.diff(self.velocities(until, self.received), axis=0)), axis=1) / UPDATE / \
            ACCELERATION_LIMIT

    def velocities(self, until, received):
        updates = T0 + UPDATE / 2 + UPDATE * np.arange(int(round((until - T0) / UPDATE)))
        points, index, current = [], 0, self.start
        for t in updates:
            while index < len(received) and received[index][0] <= t:
                current = received[index][1]
                index += 1
            points.append(current)
        return np.diff(np.array(points), axis=0) / UPDATE

    def ratios(self, until, received=None):
        """Largest |velocity| / limit and |acceleration| / limit over the updates from T0 to ``until``."""
        velocity = self.velocities(until, self.received if received is None else received)
        acceleration = np.diff(velocity, axis=0) / UPDATE
        return float(np.max(np.abs(velocity)) / VELOCITY_LIMIT), float(np.max(np.abs(acceleration)) / ACCELERATION_LIMIT)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.002)
    return predicate()


class Run:
    """The controller, its clock and the judge; ``tick`` advances one command period."""

    def __init__(self, command_type="float64_multi_array", stall_after=None, speed=SPEED):
        self.clock = ManualClock()
        self.predictor = SweepPredictor(self.clock, stall_after, speed)
        robot = tiny_robot(control_rate=10, command_rate=50, command_type=command_type, limit=10.0,
                           velocity_limit=VELOCITY_LIMIT, acceleration_limit=ACCELERATION_LIMIT)
        self.controller = PolicyController(robot, self.predictor, node_controller_config(
            replan_steps=4, watchdog_timeout=0.2, transition="replace"), clock=self.clock)
        self.judge = ForwardControllerJudge(np.zeros(3))
        self.camera = True
        for t in np.arange(T0 - 0.3, T0 + 1e-9, 0.02):
            self.feed(t)
        self.controller.start()
        self.event_index = None

    def feed(self, t):
        self.controller.on_joint_state(t, self.judge.setpoint(t))
        if self.camera:
            self.controller.on_image("observation.images.front", t, np.zeros((32, 32, 3), np.uint8))

    def tick(self, publish_delay=0.0):
        self.clock.t = round(self.clock.t + UPDATE, 9)
        self.feed(self.clock.t)
        command = self.controller.step(self.clock.t)
        sent = command is not None and self.controller.confirm(command, publish_delay)
        if sent:
            self.judge.receive(self.clock.t + DELIVERY + publish_delay, command.target)
        stalled = self.predictor.stall_after is not None
        assert wait_for(lambda: not self.controller.inference_pending or
                        (stalled and self.predictor.calls > self.predictor.stall_after))
        return command if sent else None

    def run(self, seconds):
        for _ in range(int(round(seconds / UPDATE))):
            self.tick()

    def mark_event(self):
        """The stop happens now: remember which commands came before it."""
        self.event_index = len(self.judge.received)

    def assert_bounded_stop(self, comes_to_rest=True):
        until = self.clock.t + 0.3
        self.run(0.3)
        velocity, acceleration = self.judge.ratios(until)
        assert velocity <= 1 + TOLERANCE and acceleration <= 1 + TOLERANCE, (velocity, acceleration)
        if comes_to_rest:   # nothing is sent any more
            np.testing.assert_allclose(self.judge.setpoint(until), self.judge.received[-1][1])
        # the same stream ended at the event breaks the acceleration limit: the stop was from speed
        _, abrupt = self.judge.ratios(until, self.judge.received[:self.event_index])
        assert abrupt > 5, abrupt
        assert len(self.judge.received) - self.event_index >= 5, "the stop takes several commands"
        self.controller.close()


@pytest.fixture(params=["float64_multi_array", "joint_state"])
def moving(request):
    run = Run(request.param)
    run.run(1.0)
    speed = np.abs(np.diff([target for _, target in run.judge.received[-3:]], axis=0)) / UPDATE
    assert np.all(speed > 1.7), "the arm moves at full speed before the stop"
    return run


def test_a_stop_by_request_decelerates_within_the_limit(moving):
    moving.mark_event()
    moving.controller.stop()
    moving.assert_bounded_stop()
    assert moving.controller.shaper.stop_steps >= 5


def test_a_watchdog_stop_decelerates_within_the_limit(moving):
    moving.camera = False
    moving.run(0.18)
    while not moving.controller.stats.watchdog_trips:
        moving.mark_event()
        moving.tick()
    moving.assert_bounded_stop()


def test_a_reset_decelerates_within_the_limit_before_forgetting(moving):
    """Commanding goes on after a reset (with a new history and plan); the first command after it starts from
    the measured position."""
    moving.mark_event()
    moving.controller.reset()
    moving.tick()
    while moving.controller.shaper.braking:
        assert moving.controller.shaper.published.active, "the set-point is remembered while it brakes"
        moving.tick()
    assert not moving.controller.shaper.published.active, "forgotten once still"
    moving.assert_bounded_stop(comes_to_rest=False)


def test_a_plan_that_runs_out_decelerates_within_the_limit():
    run = Run(stall_after=3)
    run.run(1.0)
    while run.controller.schedule.at(run.clock.t + UPDATE) is not None:
        run.tick()
    run.mark_event()
    run.assert_bounded_stop()
    assert run.controller.stats.queue_underruns > 0
    run.predictor.release.set()


def test_after_a_withdrawn_step_the_stream_starts_again_from_rest_within_the_limit(moving):
    """A step ready 50 ms after it was computed is withdrawn: the forward controller holds its last target for
    that update, a stop from full speed that no later command can undo (sent late, it would land with the next
    step: a double step). The judge sees that one update and nothing else: the steps after it start from rest
    within the acceleration limit (taking the stream as still going on would break it a second time)."""
    moving.mark_event()
    assert moving.tick(publish_delay=0.05) is None
    assert moving.controller.stats.late_commands_withdrawn == 1
    until = moving.clock.t + 0.3
    moving.run(0.3)
    ratios = moving.judge.acceleration_ratios(until)
    assert np.count_nonzero(ratios > 1 + TOLERANCE) == 1 and ratios.max() > 5
    moving.controller.close()


def test_a_slow_stream_that_runs_out_restarts_from_rest_within_the_limit():
    """The plan runs out while the arm moves slowly enough to stop within one update (no braking steps): the
    forward controller holds, so the arm is still when the next chunk arrives two updates or more later. The
    steps after it start from rest within the acceleration limit (taken as the stream going on at its old
    speed, they would break it)."""
    run = Run(stall_after=3, speed=0.15)
    run.run(1.0)
    while run.controller.schedule.at(run.clock.t + UPDATE) is not None:
        run.tick()
    run.tick()
    assert run.controller.stats.queue_underruns > 0 and run.controller.shaper.stop_steps == 0
    run.predictor.speed = SPEED   # the next chunk wants the arm far away at full speed
    run.predictor.stall_after = None   # from now on each tick waits for the chunk it requested
    run.predictor.release.set()
    until = run.clock.t + 0.5
    run.run(0.5)
    velocity, acceleration = run.judge.ratios(until)
    assert velocity <= 1 + TOLERANCE and acceleration <= 1 + TOLERANCE, (velocity, acceleration)
    assert velocity > 0.5, "the arm speeds up after the restart"
    run.controller.close()


class WildPredictor:
    """Every chunk is random within the position limits: each step asks for more than the limits allow."""

    n_obs_steps, n_action_steps, future_steps = 2, 8, 8

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def predict_chunk(self, history, guide=None):
        return self.rng.uniform(-1, 1, (8, 3))


@pytest.mark.parametrize("phase", [0.003, 0.011, 0.019])
def test_steps_whose_ticks_bunch_up_or_leave_late_keep_the_limits_at_any_controller_phase(phase):
    """A busy node: some command ticks come late (the next comes on schedule, right after), some commands leave
    the process late. Whether two steps close in time share a controller update depends on the controller's
    phase, which the node cannot know; each step is shaped for the update after the last one sent (and for the
    update its sending really falls in), so whatever the phase, no step taken on schedule breaks a limit.
    Steps taken off schedule (a double step, a hold) are the delivery's doing: counted, not asserted. Judged
    by dp_ros's per-update controller model with its updates placed at ``phase`` (as the DDS tests judge)."""
    from dp_ros.core.command_execution import CommandLedger, ControllerModel, JointLimits

    rng, clock = np.random.default_rng(7), ManualClock()
    robot = tiny_robot(control_rate=10, command_rate=50, command_type="float64_multi_array", limit=1.0,
                       velocity_limit=1.5, acceleration_limit=20.0)
    controller = PolicyController(robot, WildPredictor(3), node_controller_config(), clock=clock)
    model = ControllerModel(JointLimits.for_robot(robot), "step", "measured", UPDATE, update_phase=T0 + phase)
    ledger = CommandLedger(model)
    setpoint, now, content_violations = np.zeros(3), T0, []
    for t in np.arange(T0 - 0.3, T0 + 1e-9, UPDATE):
        controller.on_joint_state(t, setpoint)
        controller.on_image("observation.images.front", t, np.zeros((32, 32, 3), np.uint8))
    controller.start()
    for k in range(1, 600):
        now = max(T0 + UPDATE * k + rng.choice([0.0005, 0.012, 0.025, 0.035], p=[0.85, 0.07, 0.05, 0.03]),
                  now + 0.001)
        clock.t = now
        controller.on_joint_state(now - 0.001, setpoint)
        controller.on_image("observation.images.front", now - 0.001, np.zeros((32, 32, 3), np.uint8))
        command = controller.step(now)
        assert wait_for(lambda: not controller.inference_pending)
        delay = rng.choice([0.0002, 0.006, 0.015, 0.03], p=[0.85, 0.07, 0.05, 0.03])
        if command is None or not controller.confirm(command, delay):
            continue
        controller.note_publish_delay(delay)
        check = ledger.judge(now + delay + DELIVERY, command.times_from_start, command.positions, setpoint)
        setpoint = command.positions[-1]
        if not check.within_limits and not model.off_schedule:
            content_violations.append((k, check.describe()))
    controller.close()
    assert ledger.off_schedule > 20, "the delivery must take some steps off schedule for this test to mean anything"
    assert ledger.judged > 500 and content_violations == [], content_violations[:3]
