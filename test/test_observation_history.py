"""The observation history is time-aligned: spaced one control period, causal (no ROS)."""
import numpy as np
import pytest

from dp_ros.core.observation_history import HistoryNotReady, ObservationHistory
from lerobot_fixtures import tiny_robot


def history_with_data(max_sample_age=0.5):
    robot = tiny_robot(control_rate=10)
    history = ObservationHistory(robot, n_obs_steps=2, period=0.1, max_sample_age=max_sample_age)
    for k in range(101):  # joint states at 100 Hz, value = stamp
        t = k * 0.01
        history.add_joint_state(t, np.full(3, t))
    for k in range(31):  # camera at 30 Hz, red channel = frame index
        frame = np.zeros((32, 32, 3), dtype=np.uint8)
        frame[..., 0] = k
        history.add_image("observation.images.front", k / 30, frame)
    return history


def test_history_is_spaced_one_period_and_takes_the_latest_at_or_before():
    history = history_with_data()
    sample = history.sample(0.955)
    assert sample.times == pytest.approx([0.855, 0.955])
    states = [obs["observation.state"][0] for obs in sample.observations]
    assert states == pytest.approx([0.85, 0.95], abs=1e-6)
    frames = [int(obs["observation.images.front"][0, 0, 0]) for obs in sample.observations]
    assert frames == [25, 28]  # 25/30 = 0.833 <= 0.855 < 26/30; 28/30 = 0.933 <= 0.955 < 29/30


def test_never_uses_a_future_sample():
    history = history_with_data()
    for t in np.linspace(0.2, 1.0, 37):
        sample = history.sample(t)
        for ti, obs in zip(sample.times, sample.observations):
            assert obs["observation.state"][0] <= ti + 1e-6
            assert int(obs["observation.images.front"][0, 0, 0]) / 30 <= ti + 1e-9


def test_not_ready_until_the_whole_history_exists():
    history = history_with_data()
    with pytest.raises(HistoryNotReady, match="at or before t-0.100s"):
        history.sample(0.05)  # no frame at or before t - 0.1


def test_stale_samples_do_not_make_a_history():
    history = history_with_data(max_sample_age=0.2)
    with pytest.raises(HistoryNotReady, match="old"):
        history.sample(1.5)


def test_out_of_order_samples_are_placed_by_stamp_and_counted():
    robot = tiny_robot()
    history = ObservationHistory(robot, 2, 0.1, 1.0)
    history.add_joint_state(1.0, np.full(3, 1.0))
    history.add_joint_state(0.9, np.full(3, 0.9))
    assert history.out_of_order_counts()["joint_states"] == 1
    assert history.streams["joint_states"].at_or_before(0.95).value[0] == pytest.approx(0.9)


def test_stamps_from_the_future_are_refused_and_a_stream_ages_by_its_arrival_too():
    clock, logs = [10.0], []
    history = ObservationHistory(tiny_robot(control_rate=10), n_obs_steps=2, period=0.1, max_sample_age=0.5,
                                 clock=lambda: clock[0], log=lambda level, text: logs.append((level, text)))
    assert history.add_joint_state(10.03, np.zeros(3)), "30 ms ahead: clocks a network apart"
    assert not history.add_joint_state(10.5, np.zeros(3)) and not history.add_joint_state(10.6, np.zeros(3))
    assert history.future_counts()["joint_states"] == 2 and len(logs) == 1 and "runs ahead" in logs[0][1]
    assert history.streams["joint_states"].latest().stamp == 10.03
    history.add_image("observation.images.front", 10.0, np.zeros((32, 32, 3), np.uint8))
    clock[0] = 10.3   # nothing arrived since 10.0: the joint state stamped 10.03 is 0.3 s stale, not 0.27
    assert history.newest_age(10.3) == (pytest.approx(0.3), "joint_states")
