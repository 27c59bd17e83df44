"""The safety filter shapes commands so that their execution keeps the limits (no ROS).

The property tests feed adversarial plans (random, huge, alternating extremes) through the command shaper
at 50 Hz and judge every command with an independent ControllerModel, taking it as a controller would:
later by a random delivery delay, from the measured position of an arm that lags its set-point.
"""
import numpy as np
import pytest

from dp_ros.core.command_execution import ControllerModel, JointLimits
from dp_ros.core.command_shaping import CommandSettings, CommandShaper
from dp_ros.core.safety import SafetyFilter, StartState
from lerobot_fixtures import tiny_robot

JOINTS = 3
COMMAND_PERIOD, CONTROL_PERIOD = 0.02, 0.1


def make_limits(acceleration=None):
    return JointLimits(np.full(JOINTS, -1.0), np.full(JOINTS, 1.0), np.full(JOINTS, 2.0),
                       None if acceleration is None else np.full(JOINTS, acceleration))


def test_limits_come_from_the_robot_interface():
    safety = SafetyFilter.for_robot(tiny_robot(limit=1.0, velocity_limit=2.0), scale=0.5)
    np.testing.assert_allclose(safety.limits.velocity, 1.0)
    assert safety.limits.acceleration is None


def test_trajectory_points_are_clamped_and_slowed_and_counted():
    safety = SafetyFilter(make_limits())
    shaped = safety.shape_trajectory(StartState(np.zeros(JOINTS)), np.array([0.1, 0.2]),
                                     np.array([[5.0, -5.0, 0.1], [5.0, -5.0, 0.2]]))
    np.testing.assert_allclose(shaped[:, 0], [0.2, 0.4])
    np.testing.assert_allclose(shaped[:, 2], [0.1, 0.2])
    assert safety.counters.velocity_clamps == 1 and safety.counters.position_clamps == 1  # 5.0 is beyond 1.0 too


def test_the_first_segment_keeps_the_start_uncertainty_in_reserve():
    safety = SafetyFilter(make_limits())
    shaped = safety.shape_trajectory(StartState(np.zeros(JOINTS), spread=0.04), np.array([0.1]),
                                     np.full((1, JOINTS), 1.0))
    np.testing.assert_allclose(shaped[0], 2.0 * (0.1 - 0.02))


def test_nan_inf_wrong_sizes_and_unordered_times_are_rejected():
    safety = SafetyFilter(make_limits())
    start = StartState(np.zeros(JOINTS))
    assert safety.shape_trajectory(start, np.array([0.1]), np.array([[np.nan, 0, 0]])) is None
    assert safety.shape_trajectory(start, np.array([0.1]), np.array([[np.inf, 0, 0]])) is None
    assert safety.shape_trajectory(start, np.array([0.1]), np.zeros((1, 4))) is None
    assert safety.shape_trajectory(start, np.array([0.2, 0.1]), np.zeros((2, JOINTS))) is None
    assert safety.shape_step(start, np.array([np.nan, 0, 0]), 0.02) is None
    assert safety.counters.nonfinite_rejections == 5


def test_a_start_beyond_the_limits_heads_back_at_full_speed():
    safety = SafetyFilter(make_limits())
    shaped = safety.shape_trajectory(StartState(np.array([3.0, 0, 0])), np.array([0.1]), np.zeros((1, JOINTS)))
    assert shaped[0, 0] == pytest.approx(3.0 - 0.2)


def test_with_acceleration_limits_a_trajectory_brakes_to_rest_at_its_end():
    safety = SafetyFilter(make_limits(acceleration=4.0))
    times = 0.1 * np.arange(1, 11)
    shaped = safety.shape_trajectory(StartState(np.zeros(JOINTS)), times, np.full((10, JOINTS), 0.9))
    velocities = np.diff(np.vstack([np.zeros(JOINTS), shaped]), axis=0) / 0.1
    assert abs(velocities[-1, 0]) <= 4.0 * 0.1 + 1e-9
    assert np.all(np.abs(np.diff(velocities[:, 0])) <= 4.0 * 0.1 + 1e-9)


def plan_source(kind, rng):
    def plan(t0):
        times = t0 + CONTROL_PERIOD * np.arange(8)
        if kind == "random":
            return times, rng.normal(0, 3, (8, JOINTS))
        if kind == "alternating":
            sign = np.where((np.arange(8) + int(round(t0 / CONTROL_PERIOD))) % 2 == 0, 1.0, -1.0)
            return times, 50.0 * sign[:, None] * np.ones((8, JOINTS))
        return times, 0.9 * np.sin(3 * times[:, None] + np.arange(JOINTS))
    return plan


def run_closed_loop(form, interpolate_from, acceleration, kind, single_point=False, seed=0, ticks=200,
                    jitter=0.02, joint_state_age=0.015, margin=None, publish_delay=0.0, note_publish_delay=True,
                    spikes=0.0, confirm=True):
    """Commands at 50 Hz from a plan replaced every policy step; returns (commands judged, violations).

    ``publish_delay``: seconds from computing a command to sending it (before the delivery jitter), told to
    the shaper when ``note_publish_delay``. ``spikes``: the share of commands held up 40-80 ms more; each
    is confirmed (or withdrawn: not judged) before it is sent when ``confirm``, else sent anyway."""
    rng = np.random.default_rng(seed)
    lim = make_limits(acceleration)
    settings = CommandSettings(form, single_point, interpolate_from, COMMAND_PERIOD, CONTROL_PERIOD,
                               lead_time=CONTROL_PERIOD, timing_margin=jitter if margin is None else margin)
    shaper = CommandShaper(settings, SafetyFilter(lim))
    judge = ControllerModel(lim, form, interpolate_from, COMMAND_PERIOD)
    plan = plan_source(kind, rng)
    plan_times, plan_positions = plan(0.0)
    arm = np.zeros(JOINTS)
    judged = violations = 0
    for k in range(ticks):
        now = k * COMMAND_PERIOD
        if k % 5 == 0:
            plan_times, plan_positions = plan(now)

        def at(t, pt=plan_times, pp=plan_positions):
            return None if t > pt[-1] + 1e-9 else np.array([np.interp(t, pt, pp[:, j]) for j in range(JOINTS)])

        def after(t, pt=plan_times, pp=plan_positions):
            return pt[pt > t + 1e-9], pp[pt > t + 1e-9]

        command = shaper.command(now, at, after, arm.copy(), joint_state_age)
        assert command is not None
        delay = publish_delay * rng.uniform(0.5, 1.0)
        if rng.uniform() < spikes:
            delay += rng.uniform(0.04, 0.08)
            if confirm and not shaper.confirm(delay):
                continue   # withdrawn: the controller keeps executing the previous command
        if note_publish_delay:
            shaper.note_publish_delay(delay)
        # a controller takes messages in the order they come
        receipt = max(now + delay + rng.uniform(0, jitter), judge.last_receipt or 0.0)
        setpoint = judge.setpoint(receipt)
        # the arm moves on (no faster than the limit) between the joint state and the controller's update
        moved_for = joint_state_age + receipt - now
        measured = arm if setpoint is None else arm + np.clip(setpoint - arm, -2.0 * moved_for, 2.0 * moved_for)
        check = judge.execute(receipt, command.times_from_start, command.positions, measured)
        judged += 1
        violations += not check.within_limits
        assert shaper.self_check_failures == 0
        setpoint = judge.setpoint(now + COMMAND_PERIOD)
        arm = arm + np.clip(setpoint - arm, -2.0 * COMMAND_PERIOD, 2.0 * COMMAND_PERIOD)
    return judged, violations


@pytest.mark.parametrize("kind", ["random", "alternating", "smooth"])
@pytest.mark.parametrize("acceleration", [None, 20.0])
@pytest.mark.parametrize("form,interpolate_from,single_point", [
    ("trajectory", "desired", False), ("trajectory", "desired", True), ("trajectory", "measured", False),
    ("trajectory", "measured", True), ("step", "desired", False)])
def test_every_command_executes_within_the_limits(form, interpolate_from, single_point, acceleration, kind):
    # a forward controller takes each step at its next update: steps must arrive within half an update of
    # their schedule to land one per update (see the next test for what happens otherwise)
    jitter = 0.02 if form == "trajectory" else 0.008
    for seed in range(2):
        judged, violations = run_closed_loop(form, interpolate_from, acceleration, kind, single_point, seed=seed,
                                             jitter=jitter)
        assert judged == 200 and violations == 0


def test_steps_delivered_with_a_full_update_of_jitter_make_double_steps_the_judge_sees():
    """Two steps taken in one update are executed as one double step (and the update before holds still):
    with delivery jitter of a whole update period the judge sees both, with or without acceleration limits."""
    for acceleration in (None, 20.0):
        violations = sum(run_closed_loop("step", "desired", acceleration, "smooth", seed=seed, jitter=0.02)[1]
                         for seed in range(2))
        assert violations > 0


def test_without_the_timing_reserve_delivery_jitter_breaks_the_limits():
    """The judge is not lenient: the same loop with commands shaped for exact delivery, taken up to 20 ms late."""
    violations = sum(run_closed_loop("trajectory", "desired", None, "random", seed=seed, margin=0.0)[1]
                     for seed in range(3))
    assert violations > 0


@pytest.mark.parametrize("publish_delay", [0.03, 0.1])
def test_the_time_from_computing_to_sending_a_command_is_kept_in_reserve(publish_delay):
    """A busy node sends its commands up to 30 ms (or 100 ms: more than the lead time leaves room for) after
    computing them (the GIL held by inference, a loaded CPU): measured and told to the shaper, which keeps it
    in reserve and stretches the lead time, they still execute within the limits; untold, they do not."""
    def violations(interpolate_from, told, acceleration=None, kind="random"):
        return sum(run_closed_loop("trajectory", interpolate_from, acceleration, kind, seed=seed,
                                   publish_delay=publish_delay, note_publish_delay=told)[1] for seed in range(8))
    assert violations("desired", told=True) == 0 and violations("measured", told=True) == 0
    assert violations("desired", told=True, acceleration=20.0, kind="alternating") == 0
    assert violations("desired", told=False) > 0



@pytest.mark.parametrize("interpolate_from", ["desired", "measured"])
def test_a_command_held_up_longer_than_it_was_shaped_for_is_withdrawn(interpolate_from):
    """Now and then a command is ready 40-80 ms late (a preempted process): confirmed before it is sent, it
    is withdrawn and the controller keeps the one before; sent anyway, it can break a limit as executed."""
    def run(confirm):
        results = [run_closed_loop("trajectory", interpolate_from, None, "random", seed=seed, publish_delay=0.005,
                                   spikes=0.05, confirm=confirm) for seed in range(6)]
        return sum(200 - judged for judged, _ in results), sum(violations for _, violations in results)

    withdrawn, violations = run(confirm=True)
    assert violations == 0 and withdrawn >= 6   # at least the first spike of each run: later ones are reserved for
    if interpolate_from == "desired":
        assert run(confirm=False)[1] > 0


def wrap(angle):
    return np.mod(np.asarray(angle) + np.pi, 2 * np.pi) - np.pi


@pytest.mark.parametrize("form,interpolate_from", [("trajectory", "measured"), ("trajectory", "desired"),
                                                   ("step", "desired")])
def test_a_continuous_joint_crosses_pi_the_short_way(form, interpolate_from):
    """Joint 0 turns without end; the plan (as a policy trained on wrapped joint states gives it) crosses +pi,
    from 3.0 to -2.9 and on; the joint states the shaper sees are wrapped too. Every command goes the short way
    round (never more than one velocity-limited step from the one before), within the limits as judged."""
    continuous = np.array([True, False, False])
    lim = JointLimits(np.array([-np.inf, -1.0, -1.0]), np.array([np.inf, 1.0, 1.0]), np.full(JOINTS, 2.0),
                      np.full(JOINTS, 20.0), continuous)
    settings = CommandSettings(form, False, interpolate_from, COMMAND_PERIOD, CONTROL_PERIOD,
                               lead_time=CONTROL_PERIOD, timing_margin=0.005)
    shaper = CommandShaper(settings, SafetyFilter(lim))
    judge = ControllerModel(lim, form, interpolate_from, COMMAND_PERIOD)
    unwrapped = lambda t: np.array([2.6 + 1.5 * t, 0.3 * np.sin(t), 0.0])   # noqa: E731 - crosses pi at t ~ 0.36
    arm, previous, progress = wrap(unwrapped(0.0)), None, 0.0
    for k in range(60):
        now = k * COMMAND_PERIOD
        plan_times = CONTROL_PERIOD * (np.floor(now / CONTROL_PERIOD) + np.arange(-1, 8))
        plan = np.array([unwrapped(t) for t in plan_times])
        plan[:, 0] = wrap(plan[:, 0])

        def at(t):
            return None if t > plan_times[-1] else np.array([np.interp(t, plan_times, plan[:, j]) for j in range(3)])

        def after(t):
            return plan_times[plan_times > t + 1e-9], plan[plan_times > t + 1e-9]

        command = shaper.command(now, at, after, arm.copy(), 0.0)
        assert command is not None
        check = judge.execute(now + 0.002, command.times_from_start, command.positions, arm.copy())
        assert check.within_limits, check.describe()
        # within a command, from point to point, raw values (as the controller interpolates them): no long way
        assert np.all(np.abs(np.diff(command.positions[:, 0])) < 2.0 * CONTROL_PERIOD + 1e-9)
        if previous is not None:   # from command to command, up to whole turns (the controller wraps its start)
            assert abs(wrap(command.target[0] - previous)) < 2.0 * (CONTROL_PERIOD + COMMAND_PERIOD)
        previous = command.target[0]
        setpoint = judge.setpoint(now + COMMAND_PERIOD)
        progress += wrap(setpoint[0] - arm[0])
        arm = np.where(continuous, wrap(setpoint), setpoint)   # the joint state wraps at +-pi
    # the set-point went forward across +pi with the plan (the long way would have gone back through 0)
    assert progress == pytest.approx(1.5 * 1.2, abs=0.25)
