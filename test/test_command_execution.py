"""How a controller executes commands, and the judge of limits (no ROS)."""
import numpy as np
import pytest

from dp_ros.core.command_execution import (CommandLedger, ControllerModel, JointLimits, check_path,
                                           points_from_receipt)


def limits(acceleration=None):
    return JointLimits(np.full(2, -1.0), np.full(2, 1.0), np.full(2, 2.0),
                       None if acceleration is None else np.full(2, acceleration))


def test_a_path_within_limits_passes_and_each_limit_is_measured():
    ok = check_path(limits(), np.array([0.0, 0.1, 0.2]), np.array([[0, 0], [0.1, 0], [0.2, 0.05]]))
    assert ok.within_limits and ok.velocity_ratio == pytest.approx(0.5)
    fast = check_path(limits(), np.array([0.0, 0.01]), np.array([[0, 0], [0.1, 0]]))
    assert not fast.within_limits and fast.velocity_ratio == pytest.approx(5.0)
    outside = check_path(limits(), np.array([0.0, 1.0]), np.array([[0.9, 0], [1.2, 0]]))
    assert outside.position_excess == pytest.approx(0.2)


def test_acceleration_is_the_change_of_segment_velocity_over_their_mean_duration():
    times, points = np.array([0.0, 0.1, 0.2]), np.array([[0, 0], [0.1, 0], [0.1, 0]])
    check = check_path(limits(acceleration=5.0), times, points)
    assert check.acceleration_ratio == pytest.approx((1.0 / 0.1) / 5.0)
    resting = check_path(limits(acceleration=5.0), times, points, comes_to_rest=True)
    assert resting.acceleration_ratio == pytest.approx(2.0)
    entering = check_path(limits(acceleration=5.0), np.array([0.0, 0.1]), np.array([[0, 0], [0.1, 0]]),
                          entry_velocity=np.array([1.0, 0.0]), entry_duration=0.1)
    assert entering.acceleration_ratio == pytest.approx(0.0)


def test_trajectory_starts_from_the_measured_position_or_the_replaced_set_point():
    desired = ControllerModel(limits(), "trajectory", "desired")
    measured = ControllerModel(limits(), "trajectory", "measured")
    for model in (desired, measured):
        model.execute(0.0, np.array([0.1, 0.2]), np.array([[0.1, 0.0], [0.2, 0.0]]), measured=np.zeros(2))
    # half-way along the first segment, the arm lags 0.04 behind the set-point (0.05)
    arm = np.array([0.01, 0.0])
    np.testing.assert_allclose(desired.start_for(0.05, arm), [0.05, 0.0])
    np.testing.assert_allclose(measured.start_for(0.05, arm), arm)
    check = measured.execute(0.05, np.array([0.02]), np.array([[0.06, 0.0]]), measured=arm)
    assert check.velocity_ratio == pytest.approx((0.05 / 0.02) / 2.0)


def test_the_first_segment_of_the_old_bug_is_caught():
    """The first round placed the current command at 1/command_rate but kept the plan's times for the rest:
    a point 0.5 ms after it asked for many times the velocity limit."""
    model = ControllerModel(limits(), "trajectory", "desired")
    check = model.execute(0.0, np.array([0.02, 0.0205]), np.array([[0.02, 0], [0.06, 0]]), measured=np.zeros(2))
    assert check.velocity_ratio > 30 and not check.within_limits


def test_steps_are_judged_over_one_command_period_from_the_previous_target():
    model = ControllerModel(limits(acceleration=50.0), "step", step_period=0.02)
    assert model.execute(0.0, np.zeros(1), np.array([[0.02, 0]]), measured=np.zeros(2)).velocity_ratio == \
        pytest.approx(0.5)
    jump = model.execute(0.02, np.zeros(1), np.array([[0.2, 0]]), measured=np.zeros(2))
    assert jump.velocity_ratio == pytest.approx(4.5) and jump.acceleration_ratio == pytest.approx(8.0)


def test_a_trajectory_stamped_in_the_past_jumps():
    times, points = points_from_receipt(np.array([-0.05, 0.05]), np.array([[0.0, 0.0], [0.2, 0.0]]))
    np.testing.assert_allclose(points[0], [0.1, 0.0])
    assert times[0] < 1e-6
    model = ControllerModel(limits(), "trajectory", "desired")
    assert not model.execute(0.0, times, points, measured=np.zeros(2)).within_limits


def test_the_ledger_counts_violations_and_keeps_the_worst():
    ledger = CommandLedger(ControllerModel(limits(), "trajectory", "desired"))
    ledger.judge(0.0, np.array([0.1]), np.array([[0.1, 0.0]]), np.zeros(2))
    ledger.judge(0.1, np.array([0.01]), np.array([[0.5, 0.0]]), np.zeros(2))
    assert ledger.judged == 2 and ledger.violations == 1
    assert ledger.worst.velocity_ratio == pytest.approx(20.0)


def test_a_shifted_path_keeps_its_schedule():
    model = ControllerModel(limits(), "trajectory", "desired")
    model.execute(1.0, np.array([0.1]), np.array([[0.1, 0.0]]), measured=np.zeros(2))
    model.shift(-0.5)
    np.testing.assert_allclose(model.setpoint(0.55), [0.05, 0.0])
