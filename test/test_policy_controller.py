"""The controller's timing logic, without ROS, on a manual clock.

The predictor here is a scripted stand-in for the policy (it returns chosen
chunks and advances the manual clock by a chosen inference time) so that late
actions, replanning and the watchdog can be checked exactly; real checkpoints
drive the controller in test_policy_node.py.
"""
import dataclasses
import time

import numpy as np
import pytest

from dp_ros.core.policy_controller import PolicyController, State
from lerobot_fixtures import node_controller_config, tiny_robot

PERIOD = 0.1


class ManualClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class ScriptedPredictor:
    """Chunk k holds the value 10*k + step index; 'inference' advances the clock by ``latency``."""

    n_obs_steps = 2
    n_action_steps = 8
    future_steps = 8

    def __init__(self, clock, latency=0.25, nan=False):
        self.clock, self.latency, self.nan = clock, latency, nan
        self.calls = []
        self.guides = []

    def predict_chunk(self, history, guide=None):
        self.calls.append([obs["observation.state"].copy() for obs in history])
        self.guides.append(guide)
        self.clock.t += self.latency
        k = len(self.calls)
        count = self.future_steps if guide is not None else self.n_action_steps
        chunk = np.array([[10.0 * k + i] * 3 for i in range(count)]) / 100.0
        if self.nan:
            chunk[2, 1] = np.nan
        return chunk


def feed(controller, t0, t1, camera=True, joints=True):
    for t in np.arange(t0, t1 + 1e-9, 0.02):
        if joints:
            controller.on_joint_state(t, np.zeros(3))
        if camera:
            controller.on_image("observation.images.front", t, np.zeros((32, 32, 3), np.uint8))


def make(latency=0.25, nan=False, future_steps=8, **config):
    clock = ManualClock()
    predictor = ScriptedPredictor(clock, latency, nan)
    predictor.future_steps = future_steps
    robot = tiny_robot(control_rate=10, command_rate=50, velocity_limit=100.0)
    settings = dict(replan_steps=4, watchdog_timeout=0.2, transition="replace")
    settings.update(config)
    controller = PolicyController(robot, predictor, node_controller_config(predictor.n_action_steps, **settings),
                                  clock=clock)
    return controller, clock, predictor


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_no_command_before_a_full_history_and_before_start():
    controller, clock, _ = make()
    feed(controller, 99.95, 100.0)
    assert controller.step(clock.t) is None and controller.state == State.IDLE
    controller.start()
    assert controller.step(clock.t) is None  # only 0.05 s of data: no observation at t - 0.1
    assert controller.state == State.WARMING_UP
    controller.close()


def test_chunk_is_stamped_from_its_observation_and_late_actions_dropped():
    controller, clock, predictor = make(latency=0.25, watchdog_timeout=1.0)
    feed(controller, 99.7, 100.0)
    controller.start()
    assert controller.step(clock.t) is None  # requests the first chunk
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    # obs at 100.0; inference took 0.25 s, so actions for 100.0, 100.1 and 100.2 are late
    assert controller.stats.actions_dropped_late == 3
    assert clock.t == pytest.approx(100.25)
    feed(controller, 100.02, clock.t)
    command = controller.step(clock.t)
    # a single-point trajectory reaches the plan one policy step ahead: at 100.35, between action 3 (100.3)
    # and action 4 (100.4)
    np.testing.assert_allclose(command.times_from_start, [0.1])
    np.testing.assert_allclose(command.positions, [[0.135] * 3])
    clock.t = 100.35
    feed(controller, 100.27, clock.t)
    np.testing.assert_allclose(controller.step(clock.t).positions, [[0.145] * 3])
    controller.close()


def test_a_chunk_trajectory_carries_the_plan_at_its_own_times():
    controller, clock, predictor = make(latency=0.25, watchdog_timeout=1.0, trajectory_lead_time=0.05)
    controller.shaper.settings = dataclasses.replace(controller.shaper.settings, single_point=False)
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    feed(controller, 100.02, clock.t)
    command = controller.step(clock.t)  # 100.25
    # first point 0.05 s ahead (100.3, action 3); the planned actions after it at their own times; action 4 at
    # 100.4 is 0.1 s after the first point
    np.testing.assert_allclose(command.times_from_start, [0.05, 0.15, 0.25, 0.35, 0.45])
    np.testing.assert_allclose(command.positions[:, 0], [0.13, 0.14, 0.15, 0.16, 0.17])
    controller.close()


def test_the_watchdog_default_is_two_control_periods_unless_a_sensor_is_slower():
    controller, clock, _ = make(watchdog_timeout=0.0)
    assert controller.watchdog_limit() == pytest.approx(2 * 0.1 - 2 * 0.02)
    for t in np.arange(99.0, 100.0, 0.25):  # a 4 Hz camera
        controller.on_image("observation.images.front", t, np.zeros((32, 32, 3), np.uint8))
    assert controller.watchdog_limit() == pytest.approx(1.5 * 0.25)
    controller.history.clear()
    for t in np.arange(99.0, 100.0, 0.05):  # a 20 Hz camera that now and then skips three frames
        if round(t / 0.05) % 10 not in (1, 2, 3):
            controller.on_image("observation.images.front", t, np.zeros((32, 32, 3), np.uint8))
    assert 2 * 0.1 - 2 * 0.02 < controller.watchdog_limit() <= 1.5 * 0.2, "stretched for the uneven camera"
    controller.close()


def test_replans_early_enough_that_commands_never_stop():
    controller, clock, predictor = make(latency=0.15, replan_steps=4)
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    published = 0
    while clock.t < 102.0:
        clock.t += 0.02
        feed(controller, clock.t - 0.019, clock.t)
        before = controller.stats.chunks_produced
        command = controller.step(clock.t)
        assert command is not None, f"no command at {clock.t:.2f}: {controller.reason}"
        published += 1
        if controller.inference_pending:
            # inference runs now; the scripted predictor moves the clock by its latency
            assert wait_for(lambda: controller.stats.chunks_produced > before)
    assert controller.stats.chunks_produced >= 4
    assert controller.stats.queue_underruns == 0
    assert published > 40
    controller.close()


def test_guided_chunks_continue_the_plan_with_the_measured_delay():
    # 12 actions per guided chunk: 4 of reserve after the 8 committed ones
    controller, clock, predictor = make(latency=0.25, future_steps=12, transition="guided", replan_steps=4,
                                        delay_margin=0.05)
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    assert predictor.guides[0].is_empty  # nothing to continue yet
    assert controller.expected_delay() == pytest.approx(0.25 + 0.05)
    # chunk 1 (obs 100.0) holds actions for 100.3 .. 101.1 after the late ones; the next is requested when
    # replan_steps of its 8 committed actions (100.0 .. 100.7) remain, the reserve keeps the plan going meanwhile
    feed(controller, 100.0, clock.t)  # the sensors went on while the first chunk was computed
    requested_at = None
    while requested_at is None:
        clock.t = round(clock.t + 0.02, 6)
        feed(controller, clock.t - 0.019, clock.t)
        controller.step(clock.t)
        if controller.inference_pending:
            requested_at = clock.t
    assert 100.3 < requested_at <= 100.4
    assert wait_for(lambda: controller.stats.chunks_produced == 2)
    guide = predictor.guides[1]
    # the plan in policy steps after the new observation, and the chunk's expected arrival
    assert guide.delay == pytest.approx(3.0)
    np.testing.assert_allclose(guide.steps * 0.1 + requested_at, [100.3 + 0.1 * i for i in range(9)], atol=1e-9)
    np.testing.assert_allclose(guide.actions[:, 0], [0.13 + 0.01 * i for i in range(9)])
    # merged without blending: the old plan up to the new chunk's first on-time action, then the new chunk
    assert controller.stats.actions_dropped_late == 3 + 3
    first_on_time = requested_at + 0.3
    np.testing.assert_allclose(controller.schedule.at(first_on_time), [0.23] * 3)
    np.testing.assert_allclose(controller.schedule.at(100.6), [0.16] * 3)
    controller.close()


def test_watchdog_stops_on_stale_camera_and_resumes_with_fresh_data():
    controller, clock, _ = make(latency=0.0)
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    # camera goes silent after 100.0; joint states keep coming; commands go on until the watchdog trips
    last_regular = None
    for t in np.arange(100.02, 100.3, 0.02):
        clock.t = t
        feed(controller, t - 0.019, t, camera=False)
        command = controller.step(t)
        if controller.stats.watchdog_trips:
            break
        assert command is not None
        last_regular = t
    # the newest frame is from 100.0 and the timeout 0.2 s: the last regular command comes at 100.2 at the latest
    assert 100.17 < last_regular < 100.21 and clock.t == pytest.approx(last_regular + 0.02)
    assert command is not None and controller.stats.stop_commands == 1, "one command brings the arm to rest"
    assert controller.shaper.published.end_time <= clock.t + 0.1 + 1e-9
    assert controller.step(clock.t + 0.02) is None
    assert controller.state == State.STOPPED and "observation.images.front" in controller.reason
    assert controller.stats.watchdog_trips == 1
    assert controller.queue_depth(clock.t) == 0, "the plan made from old data is discarded"
    # fresh frames again: a full, fresh history is needed before commanding
    clock.t = 100.5
    feed(controller, 100.45, 100.5)
    assert controller.step(clock.t) is None
    feed(controller, 100.52, 100.6)
    clock.t = 100.6
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 2)
    assert controller.step(clock.t + 0.01) is not None
    assert controller.state == State.RUNNING and controller.stats.watchdog_trips == 1
    controller.close()


def test_stop_reset_and_start():
    controller, clock, _ = make(latency=0.0)
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    assert controller.step(clock.t + 0.02) is not None
    controller.stop()
    assert controller.step(clock.t + 0.04) is not None, "the stop command"
    assert controller.step(clock.t + 0.06) is None and controller.state == State.STOPPED
    controller.start()
    controller.reset()
    assert controller.queue_depth(clock.t) == 0
    assert controller.step(clock.t) is None and controller.state == State.WARMING_UP


def test_a_command_keeps_the_plan_it_was_shaped_from_when_a_stop_discards_the_plan():
    """The plan topics name what a clamped command departed from; a stop from another thread (a deactivate) may
    discard the plan between the command's step and its publication."""
    controller, clock, _ = make(latency=0.0)
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    command = controller.step(clock.t + 0.02)
    times, actions = controller.command_plan
    assert command is not None and len(times) and actions.shape == (len(times), 3)
    controller.stop()
    assert controller.queue_depth(clock.t + 0.02) == 0, "the stop discarded the plan"
    np.testing.assert_array_equal(controller.command_plan[0], times)
    stop = controller.step(clock.t + 0.04)
    assert stop is not None and controller.command_plan is None, "a stop command has no plan behind it"
    controller.close()


def test_a_command_ready_too_late_is_withdrawn_but_a_stop_command_always_goes():
    controller, clock, _ = make(latency=0.0)
    logs = []
    controller.log = lambda level, text: logs.append((level, text))
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    first = controller.step(clock.t + 0.02)
    assert controller.confirm(first, 0.003)
    expected_start = controller.shaper.published.state()
    late = controller.step(clock.t + 0.04)
    assert not controller.confirm(late, 0.05), "ready 50 ms after it was computed, shaped for 10"
    assert controller.stats.late_commands_withdrawn == 1 and controller.stats.commands_published == 1
    assert controller.shaper.published.state() == expected_start, "the controller still runs the first"
    assert controller.shaper.publish_delay == 0.05 and any("withdrawn" in text for _, text in logs)
    controller.stop()
    stop = controller.step(clock.t + 0.06)
    assert stop is not None and controller.confirm(stop, 0.5), "a stop command is never withdrawn"
    controller.close()


def test_nonfinite_chunks_are_rejected():
    controller, clock, _ = make(latency=0.0, nan=True)
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.safety.counters.nonfinite_rejections > 0)
    assert controller.step(clock.t) is None
    assert controller.stats.chunks_produced == 0
    controller.close()


def test_a_slow_publisher_is_reported_and_its_delay_kept_in_reserve():
    controller, clock, _ = make(latency=0.0)
    logs = []
    controller.log = lambda level, text: logs.append((level, text))
    controller.note_publish_delay(0.004)
    assert controller.shaper.publish_delay == 0.004 and not logs
    controller.note_publish_delay(0.045)   # with the 20 ms margin, more than half the 100 ms lead time
    assert controller.stats.worst_publish_delay == 0.045 and controller.shaper.publish_delay == 0.045
    assert [level for level, _ in logs] == ["warn"] and "start 130 ms ahead" in logs[0][1]
    assert controller.shaper.lead_time == pytest.approx(0.13)
    controller.note_publish_delay(0.005)
    assert len(logs) == 1, "reported once, not on every command"
    controller.close()


def test_inference_failure_is_a_fault_not_a_crash():
    controller, clock, predictor = make(latency=0.0)
    predictor.predict_chunk = lambda history, guide=None: (_ for _ in ()).throw(RuntimeError("CUDA out of memory"))
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.state == State.FAULT)
    assert "CUDA out of memory" in controller.reason
    assert controller.step(clock.t) is None
    controller.close()


def test_rate_loop_keeps_its_period_survives_errors_and_skips_missed_ticks():
    from dp_ros.core.rate_loop import RateLoop

    now = [50.0]
    calls, errors = [], []

    def sleep(seconds: float) -> None:   # time passes only while the loop waits
        now[0] += seconds
        time.sleep(0)

    def body():
        calls.append(now[0])
        if len(calls) == 3:
            raise RuntimeError("one bad tick")
        if len(calls) == 10:
            now[0] += 0.035   # a tick that overran by three and a half periods

    loop = RateLoop(100.0, body, on_error=errors.append, realtime_priority=0, clock=lambda: now[0], sleep=sleep)
    loop.start()
    assert wait_for(lambda: len(calls) >= 30)
    loop.stop()
    assert len(errors) == 1 and loop.errors == 1, "the loop went on after the error"
    spacing = np.diff(calls)
    np.testing.assert_allclose(spacing[:9], 0.01, atol=1e-9)
    assert spacing[9] == pytest.approx(0.04) and loop.overruns == 3, "missed ticks are skipped, not caught up"
    np.testing.assert_allclose(spacing[10:25], 0.01, atol=1e-9)
    assert loop.jitter()["count"] == len(calls) - 1
