"""The safety filter: limits, velocity limits, NaN rejection (no ROS)."""
import numpy as np

from dp_ros.core.safety import SafetyFilter
from lerobot_fixtures import tiny_robot


def make_filter():
    return SafetyFilter.for_robot(tiny_robot(limit=1.0, velocity_limit=2.0))


def test_clamps_to_position_limits():
    f = make_filter()
    out = f.filter(np.array([5.0, -5.0, 0.5]), None, 0.02)
    np.testing.assert_allclose(out, [1.0, -1.0, 0.5])
    assert f.counters.position_clamps == 1


def test_limits_the_change_per_step_by_the_velocity_limits():
    f = make_filter()
    out = f.filter(np.array([1.0, 0.0, -1.0]), np.zeros(3), 0.02)
    np.testing.assert_allclose(out, [0.04, 0.0, -0.04])
    assert f.counters.velocity_clamps == 1


def test_rejects_nan_and_inf_and_wrong_sizes():
    f = make_filter()
    assert f.filter(np.array([np.nan, 0, 0]), np.zeros(3), 0.02) is None
    assert f.filter(np.array([np.inf, 0, 0]), np.zeros(3), 0.02) is None
    assert f.filter(np.zeros(4), np.zeros(3), 0.02) is None
    assert f.counters.nonfinite_rejections == 3


def test_previous_outside_limits_still_gives_a_command_inside():
    f = make_filter()
    out = f.filter(np.zeros(3), np.array([3.0, 0, 0]), 0.02)
    assert np.all(out <= 1.0)


def test_adversarial_sequence_never_leaves_the_envelope():
    f = make_filter()
    rng = np.random.default_rng(0)
    previous = np.zeros(3)
    for _ in range(2000):
        target = rng.normal(0, 100, 3)
        if rng.random() < 0.1:
            target[rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
        out = f.filter(target, previous, 0.02)
        if out is None:
            continue
        assert np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0)
        assert np.all(np.abs(out - previous) <= 2.0 * 0.02 + 1e-12)
        previous = out


def test_filter_path_chains_the_velocity_limit():
    f = make_filter()
    path = f.filter_path(np.zeros(3), np.array([0.1, 0.2]), np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(path[:, 0], [0.2, 0.4])
