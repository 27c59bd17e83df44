"""Sensor clocks that differ from the node's: the watchdog never waits for the offset (no ROS).

The policy controller runs on a manual clock at 50 Hz with a stand-in policy (a chunk is a slow ramp); the
sensors stamp their samples with their own clock, offset from the node's, and the camera stalls after a
second. Whatever the offset, no command may be sent later than the watchdog timeout after the newest camera
frame *arrived*: a sensor clock 0.5 s ahead used to keep commands flowing for 0.5 s into a stall.
"""
import time

import numpy as np
import pytest

from dp_ros.core.observation_history import FUTURE_TOLERANCE
from dp_ros.core.policy_controller import PolicyController
from lerobot_fixtures import node_controller_config, tiny_robot

TICK, T0, STALL_AT = 0.02, 100.0, 101.0


class Clock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


class RampPredictor:
    n_obs_steps, n_action_steps, future_steps = 2, 8, 8

    def __init__(self, clock):
        self.clock = clock

    def predict_chunk(self, history, guide=None):
        t = self.clock() - T0 + 0.1 * np.arange(8)
        return np.repeat((0.2 * t)[:, None], 3, axis=1)


def run(offset, command_type="joint_trajectory", watchdog_timeout=0.0, seconds=2.0):
    """(times commands were sent, arrival time of the last camera frame, controller, log)."""
    clock, logs = Clock(), []
    robot = tiny_robot(control_rate=10, command_rate=50, command_type=command_type, trajectory_mode="chunk",
                       limit=5.0)
    controller = PolicyController(robot, RampPredictor(clock), node_controller_config(
        replan_steps=4, transition="replace", watchdog_timeout=watchdog_timeout), clock=clock,
        log=lambda level, text: logs.append((level, text)))
    controller.start()
    sent, last_frame = [], None
    for k in range(int(round(seconds / TICK))):
        clock.t = T0 + k * TICK
        controller.on_joint_state(clock.t + offset, np.zeros(3))
        if clock.t < STALL_AT:
            controller.on_image("observation.images.front", clock.t + offset, np.zeros((32, 32, 3), np.uint8))
            last_frame = clock.t
        if controller.step(clock.t) is not None:
            sent.append(clock.t)
        deadline = time.monotonic() + 5
        while controller.inference_pending and time.monotonic() < deadline:
            time.sleep(0.002)
    controller.close()
    return sent, last_frame, controller, logs


@pytest.mark.parametrize("offset", [0.5, -0.5, 0.04, -0.04, 0.0])
@pytest.mark.parametrize("command_type", ["joint_trajectory", "float64_multi_array"])
def test_no_command_goes_later_than_the_watchdog_after_the_last_frame_arrived(offset, command_type):
    sent, last_frame, controller, logs = run(offset, command_type)
    limit = controller.watchdog_limit()
    after_stall = [t for t in sent if t > last_frame]
    # the watchdog's own stop command comes at the first tick past the limit: one tick of slack
    assert all(t <= last_frame + limit + TICK + 1e-9 for t in after_stall), (after_stall, limit)
    if abs(offset) < FUTURE_TOLERANCE:   # a small offset: commanding as usual until the stall
        assert len(sent) > 30 and controller.stats.watchdog_trips == 1
    elif offset > 0:   # stamps from the future: refused, counted, warned about; nothing commanded
        assert sent == [] and min(controller.history.future_counts().values()) >= 50
        assert any(level == "warn" and "clock runs ahead" in text for level, text in logs)
    else:   # stamps 0.5 s old: older than the watchdog allows; nothing commanded
        assert sent == [] and "watchdog" in controller.reason


def test_a_sensor_clock_behind_within_a_longer_watchdog_trips_no_later_than_the_timeout():
    """With watchdog_timeout 1 s the frames stamped 0.5 s behind are fresh enough: commanding runs, and the
    stall trips the watchdog by the frames' stamps, 0.5 s after the last one arrived."""
    sent, last_frame, controller, _ = run(-0.5, watchdog_timeout=1.0, seconds=2.5)
    assert len(sent) > 10 and controller.stats.watchdog_trips == 1
    assert max(sent) <= last_frame + 0.5 + TICK + 1e-9
