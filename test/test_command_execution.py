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


def stream(model, receipts, step=0.02):
    """Steps of ``step`` rad per command on joint 0, taken at ``receipts``; their checks."""
    return [model.execute(t, np.zeros(1), np.array([[step * (k + 1), 0.0]]), measured=np.zeros(2))
            for k, t in enumerate(receipts)]


def test_steps_are_taken_per_controller_update_and_two_in_one_update_are_a_double_step():
    """A forward controller at 50 Hz: two steps taken in one update execute as one step of twice the size."""
    even = stream(ControllerModel(limits(), "step", step_period=0.02), 0.02 * np.arange(6) + 0.001, step=0.03)
    assert all(check.within_limits for check in even)
    # the fourth step is 12 ms late: it lands in the update of the fifth, which then steps twice as far
    late = stream(ControllerModel(limits(), "step", step_period=0.02), [0.001, 0.021, 0.041, 0.073, 0.081],
                  step=0.03)
    assert late[3].within_limits and not late[4].within_limits
    assert late[4].velocity_ratio == pytest.approx(2 * 0.03 / 0.02 / 2.0)
    ledger = CommandLedger(ControllerModel(limits(), "step", step_period=0.02))
    for k, t in enumerate([0.001, 0.021, 0.041, 0.073, 0.081, 0.101]):
        ledger.judge(t, np.zeros(1), np.array([[0.03 * (k + 1), 0.0]]), np.zeros(2))
    # the hold, the double step and the step after it (entering at the double step's speed)
    assert (ledger.off_schedule, ledger.off_schedule_violations, ledger.violations) == (3, 1, 1)
    with pytest.raises(ValueError, match="drop commands"):
        ControllerModel(limits(), "step", step_period=0.02, update_period=0.05)


def test_a_stream_of_steps_that_stops_is_a_stop_from_its_speed():
    def accelerate(model, receipts):   # 0.5, 1.0, 1.5 rad/s: 25 rad/s^2, within 30
        return [model.execute(t, np.zeros(1), np.array([[x, 0.0]]), measured=np.zeros(2))
                for t, x in zip(receipts, [0.01, 0.03, 0.06])]

    model = ControllerModel(limits(acceleration=30.0), "step", step_period=0.02)
    assert all(check.within_limits for check in accelerate(model, [0.0, 0.02, 0.04]))
    # updates at 0.01, 0.03, 0.05 (half an update after the first receipt): the next step is due at 0.07
    assert model.settle(0.065) is None, "the next step is not due yet"
    stop = model.settle(0.071)
    assert stop.acceleration_ratio == pytest.approx((1.5 / 0.02) / 30.0) and not stop.within_limits
    assert model.settle(0.1) is None, "judged once: the stream is still now"
    # a pause shorter than any 'still' window is a stop and a restart, seen when the next step comes
    paused = ControllerModel(limits(acceleration=30.0), "step", step_period=0.02)
    accelerate(paused, [0.0, 0.02, 0.04])
    restart = paused.execute(0.1, np.zeros(1), np.array([[0.09, 0.0]]), measured=np.zeros(2))
    assert restart.acceleration_ratio == pytest.approx((1.5 / 0.02) / 30.0)
    ledger = CommandLedger(ControllerModel(limits(acceleration=30.0), "step", step_period=0.02))
    for t, x in zip([0.0, 0.02, 0.04], [0.01, 0.03, 0.06]):
        ledger.judge(t, np.zeros(1), np.array([[x, 0.0]]), np.zeros(2))
    ledger.settle(0.2)
    assert ledger.judged == 3 and ledger.violations == 1   # the stop, counted with the last command


def test_a_continuous_joint_starts_a_trajectory_the_shortest_way_round():
    """As joint_trajectory_controller's wraparound: the start moves by whole turns to within half a turn of
    the first point; position limits do not apply."""
    wrapping = JointLimits(np.array([-np.inf, -1.0]), np.array([np.inf, 1.0]), np.full(2, 2.0),
                           continuous=np.array([True, False]))
    model = ControllerModel(wrapping, "trajectory", "measured")
    measured = np.array([np.pi - 0.01, 0.0])    # a joint state wrapped to +-pi, just short of +pi
    check = model.execute(0.0, np.array([0.1]), np.array([[-np.pi + 0.05, 0.0]]), measured=measured)
    assert check.within_limits and check.velocity_ratio == pytest.approx(0.06 / 0.1 / 2.0)
    np.testing.assert_allclose(wrapping.shortest_way(np.array([3.0, 3.0]), np.array([-3.0, -3.0])),
                               [3.0 - 2 * np.pi, 3.0])
    plain = ControllerModel(limits(), "trajectory", "measured")
    assert not plain.execute(0.0, np.array([0.1]), np.array([[0.9, 0.0]]), measured=np.array([-0.9, 0.0])).within_limits
