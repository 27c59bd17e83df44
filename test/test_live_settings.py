"""Settings changed while the controller runs (core.live_settings), without ROS, on a manual clock: they take
effect at the next chunk; a lower velocity_scale eases the limits down within the new acceleration limits; a
looser one is refused. The predictor is the scripted stand-in of test_policy_controller (real checkpoints:
test_policy_lifecycle.py)."""
import numpy as np
import pytest

from dp_ros.core.command_execution import CommandLedger, ControllerModel
from dp_ros.core.joint_limits import JointLimits
from dp_ros.core.live_settings import LimitEasing
from dp_ros.core.policy_controller import PolicyController
from lerobot_fixtures import node_controller_config, tiny_robot
from test_policy_controller import ManualClock, feed, make, wait_for

VELOCITY, ACCELERATION, COMMAND_PERIOD = 1.0, 5.0, 0.02


class FarPredictor:
    """Chunks far beyond where the arm can go in a chunk, alternating in sign: commands at the limits."""

    n_obs_steps = 2
    n_action_steps = 8
    future_steps = 8

    def __init__(self):
        self.calls = 0

    def predict_chunk(self, history, guide=None):
        self.calls += 1
        return np.full((self.n_action_steps, 3), 1.5 if self.calls % 2 else -1.5)


def step_robot():
    return tiny_robot(control_rate=10, command_rate=50, command_type="float64_multi_array", limit=2.0,
                      velocity_limit=VELOCITY, acceleration_limit=ACCELERATION)


def run(controller, clock, seconds, commands, ledger, follower):
    """Step the controller at the command rate; the arm follows each step exactly (its joint states)."""
    end = clock.t + seconds
    while clock.t < end - 1e-9:
        clock.t = round(clock.t + COMMAND_PERIOD, 6)
        controller.on_joint_state(clock.t, follower[0])
        controller.on_image("observation.images.front", clock.t, np.zeros((32, 32, 3), np.uint8))
        before = controller.stats.chunks_produced
        command = controller.step(clock.t)
        if command is not None:
            commands.append((clock.t, command.target.copy()))
            ledger.judge(clock.t, command.times_from_start, command.positions, follower[0])
            follower[0] = command.target.copy()
        if controller.inference_pending:
            wait_for(lambda: controller.stats.chunks_produced > before or not controller.inference_pending)


def test_a_lower_velocity_scale_eases_in_at_the_next_chunk_within_the_limits():
    robot, clock = step_robot(), ManualClock()
    controller = PolicyController(robot, FarPredictor(), node_controller_config(
        replan_steps=4, watchdog_timeout=1.0, transition="replace"), clock=clock)
    ledger = CommandLedger(ControllerModel(JointLimits.for_robot(robot), "step", "measured", COMMAND_PERIOD))
    follower, commands = [np.zeros(3)], []
    feed(controller, 99.7, 100.0)
    controller.start()
    run(controller, clock, 2.0, commands, ledger, follower)
    speeds = np.abs(np.diff([target for _, target in commands], axis=0)) / COMMAND_PERIOD
    assert speeds.max() == pytest.approx(VELOCITY, rel=1e-3), "the policy drives the arm at the velocity limit"

    controller.retune({"velocity_scale": 0.4})
    assert controller.config.velocity_scale == 1.0, "staged until the next chunk is requested"
    changed_at = len(commands)
    run(controller, clock, 3.0, commands, ledger, follower)
    assert controller.config.velocity_scale == 0.4 and controller.live.easing.scale == pytest.approx(0.4)
    targets = np.array([target for _, target in commands])
    speeds = np.abs(np.diff(targets, axis=0)) / COMMAND_PERIOD
    accelerations = np.abs(np.diff(np.diff(targets, axis=0), axis=0)) / COMMAND_PERIOD ** 2
    # every command, easing or not, executes within the robot's limits and the limits in force when it was sent
    assert ledger.violations == 0, ledger.worst.describe()
    assert controller.shaper.self_check_failures == 0
    assert accelerations.max() <= ACCELERATION * (1 + 1e-6)
    # the limit falls by at most half the new acceleration limit per command period
    ramp = 1.0 / (0.5 * 0.4 * ACCELERATION / VELOCITY * COMMAND_PERIOD)
    settled = changed_at + int(np.ceil(ramp)) + 10
    assert speeds[settled:].max() <= 0.4 * VELOCITY * (1 + 1e-6), "the new velocity limit once eased in"
    assert accelerations[settled:].max() <= 0.4 * ACCELERATION * (1 + 1e-6), "the new acceleration limit"
    assert speeds[settled:].max() == pytest.approx(0.4 * VELOCITY, rel=1e-3), "still commanding at the new limit"
    controller.close()


def test_a_looser_velocity_scale_or_a_setting_read_at_configure_is_refused_with_the_reason():
    controller, clock, _ = make(velocity_scale=0.5)
    with pytest.raises(ValueError, match="can only be lowered"):
        controller.retune({"velocity_scale": 0.8})
    with pytest.raises(ValueError, match="not changeable while running: replan_steps"):
        controller.retune({"replan_steps": 2, "transition": "blend"})
    with pytest.raises(ValueError, match="transition must be one of"):
        controller.retune({"transition": "teleport"})
    assert controller.live.staged == {}, "a refused change stages nothing"
    controller.retune({"velocity_scale": 0.5})  # unchanged: accepted
    controller.close()


def test_a_transition_change_takes_effect_at_the_next_chunk_requested():
    controller, clock, predictor = make(latency=0.15, replan_steps=4, transition="replace")
    feed(controller, 99.7, 100.0)
    controller.start()
    controller.step(clock.t)
    assert wait_for(lambda: controller.stats.chunks_produced == 1)
    controller.retune({"transition": "blend", "delay_margin": 0.2})
    assert controller.schedule.transition == "replace", "the plan of the chunks before goes on"
    while controller.stats.chunks_produced < 3:
        clock.t += 0.02
        feed(controller, clock.t - 0.019, clock.t)
        before = controller.stats.chunks_produced
        controller.step(clock.t)
        if controller.inference_pending:
            assert wait_for(lambda: controller.stats.chunks_produced > before)
    assert controller.schedule.transition == "blend" and controller.config.transition == "blend"
    assert controller.delays.margin == 0.2
    controller.close()


def test_limit_easing_steps_down_and_without_acceleration_limits_at_once():
    robot = step_robot()
    easing = LimitEasing(robot, 1.0, COMMAND_PERIOD)
    assert easing.next_limits() is None
    easing.tighten(0.5)
    step = 0.5 * 0.5 * COMMAND_PERIOD * ACCELERATION / VELOCITY
    first = easing.next_limits()
    np.testing.assert_allclose(first.velocity, VELOCITY * (1.0 - step))
    scales = [easing.scale]
    while easing.next_limits() is not None:
        scales.append(easing.scale)
    assert scales[-1] == 0.5 and np.all(np.diff(scales) >= -step - 1e-12)
    free = LimitEasing(tiny_robot(velocity_limit=VELOCITY), 1.0, COMMAND_PERIOD)
    free.tighten(0.3)
    np.testing.assert_allclose(free.next_limits().velocity, 0.3 * VELOCITY)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        free.tighten(0.0)
