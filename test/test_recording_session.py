"""The ROS-free recording session: grid sampling, causal picks, drops, next-state actions, limits, resume.

Inputs are fed with explicit time stamps and the session writes a real LeRobot
dataset, which is loaded back with LeRobotDataset.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from bag_fixtures import expected_pick, image_level, leader_value, state_value
from lerobot_fixtures import tiny_robot

from dp_ros.data.datasets.dataset_writer import read_episode_log
from dp_ros.data.datasets.recording import RecorderSettings, RecordingSession

STATE_STAMPS = [0.003 + 0.02 * i for i in range(100)]
LEADER_STAMPS = [0.007 + 0.02 * i for i in range(100)]
CAMERA_STAMPS = [0.011 + i / 15 for i in range(30)]


def _feed(session, robot, until: float, camera_until: float = 99.0, camera_gap: tuple[float, float] = (0, 0)) -> None:
    for stamp in STATE_STAMPS:
        if stamp <= until:
            session.add_state(stamp, np.array([state_value(stamp, k) for k in range(robot.num_joints)]))
    for stamp in LEADER_STAMPS:
        if stamp <= until:
            session.add_action(stamp, np.array([leader_value(stamp, k) for k in range(robot.num_joints)]))
    for index, stamp in enumerate(CAMERA_STAMPS):
        if stamp <= min(until, camera_until) and not camera_gap[0] <= stamp < camera_gap[1]:
            level = image_level(index)
            image = np.empty((robot.cameras[0].height, robot.cameras[0].width, 3), np.uint8)
            image[..., 0], image[..., 1], image[..., 2] = level, 255 - level, 60
            session.add_image(robot.cameras[0].name, stamp, image)


def _load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/test", root=root)


@pytest.fixture
def robot():
    return tiny_robot(size=32)


def _session(robot, root, **overrides) -> RecordingSession:
    logs = []
    session = RecordingSession(robot, RecorderSettings(dataset_root=root, **overrides),
                               log=lambda level, message: logs.append((level, message)))
    session.logs = logs
    return session


def test_frames_on_the_grid_take_the_latest_input_at_or_before_their_time(tmp_path, robot):
    root = tmp_path / "ds"
    session = _session(robot, root)
    _feed(session, robot, until=1.2)
    ok, message = session.start_episode(0.05)
    assert ok, message
    session.tick(0.5)
    session.tick(0.999)  # a late or early timer does not change the grid
    assert session.status().frames_in_episode == 10
    ok, message = session.stop_episode()
    assert ok and "10 frames" in message
    assert session.wait_until_written(60)
    status = session.status()
    assert (status.state, status.episodes_saved, status.episode_index) == ("idle", 1, 1)
    assert status.disk_bytes > 0
    session.close()

    dataset = _load(root)
    assert dataset.num_episodes == 1 and len(dataset) == 10 and dataset.fps == robot.fps
    for k in range(10):
        t = 0.05 + k * 0.1
        item = dataset[k]
        s = STATE_STAMPS[expected_pick(STATE_STAMPS, t)]
        a = LEADER_STAMPS[expected_pick(LEADER_STAMPS, t)]
        c = expected_pick(CAMERA_STAMPS, t)
        assert s <= t and a <= t and CAMERA_STAMPS[c] <= t
        np.testing.assert_allclose(item["observation.state"].numpy(), [state_value(s, j) for j in range(3)], atol=1e-6)
        np.testing.assert_allclose(item["action"].numpy(), [leader_value(a, j) for j in range(3)], atol=1e-6)
        red = float(item["observation.images.front"][0].mean()) * 255
        assert abs(red - image_level(c)) < 8, (k, red, image_level(c))


def test_a_camera_pause_splits_the_recording_and_time_is_never_compressed(tmp_path, robot):
    root = tmp_path / "ds"
    session = _session(robot, root, max_input_age=0.15, min_frames=3)
    _feed(session, robot, until=2.0, camera_gap=(0.5, 0.9))
    session.start_episode(0.05)
    session.tick(1.9)
    # the camera's last frame before the pause is at 0.478: frames at 0.65, 0.75, 0.85 are unusable
    status = session.status()
    assert (status.frames_dropped, status.splits, status.frames_in_episode) == (3, 1, 10)
    assert any(level == "warn" and "frame at 0.650 s unusable (observation.images.front was 172 ms old" in message
               and "split after episode 0 (6 frames)" in message for level, message in session.logs)
    ok, message = session.stop_episode()
    assert ok and "split 1 times" in message and "2 parts kept" in message
    session.close()

    dataset = _load(root)
    assert dataset.num_episodes == 2 and [int(e["length"]) for e in dataset.meta.episodes] == [6, 10]
    camera = [stamp for stamp in CAMERA_STAMPS if not 0.5 <= stamp < 0.9]
    first = 0
    for episode, start in enumerate((0.05, 0.95)):
        length = int(dataset.meta.episodes[episode]["length"])
        for k in range(length):
            item = dataset[first + k]
            t = start + k * 0.1  # the true time of the frame: its timestamp counts from its episode's start
            assert item["timestamp"].item() == pytest.approx(k * 0.1, abs=1e-4)
            s = STATE_STAMPS[expected_pick(STATE_STAMPS, t)]
            np.testing.assert_allclose(item["observation.state"].numpy(), [state_value(s, j) for j in range(3)],
                                       atol=1e-6)
            red = float(item["observation.images.front"][0].mean()) * 255
            assert abs(red - image_level(CAMERA_STAMPS.index(camera[expected_pick(camera, t)]))) < 8
        first += length
    log = read_episode_log(root)
    assert [r["part"] for r in log] == [0, 1] and "gap_before" not in log[0]
    assert log[1]["gap_before"]["frames"] == 3 and list(log[1]["gap_before"]["causes"]) == ["observation.images.front"]
    assert log[1]["start_time"] == pytest.approx(0.95)


def test_with_on_stale_discard_an_unusable_frame_discards_the_recording(tmp_path, robot):
    session = _session(robot, tmp_path / "ds", max_input_age=0.15, on_stale="discard", min_frames=1)
    _feed(session, robot, until=2.0, camera_gap=(0.5, 0.9))
    session.start_episode(0.05)
    session.tick(1.9)
    status = session.status()
    assert status.state == "idle" and "discarded" in status.message and "on_stale is discard" in status.message
    assert session.stop_episode()[0] is False
    session.close()
    info = json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 0 and read_episode_log(tmp_path / "ds") == []


def test_next_state_action_is_the_following_frames_state(tmp_path, robot):
    session = _session(robot, tmp_path / "ds", action_source="next_state", min_frames=1)
    _feed(session, robot, until=1.2)
    session.start_episode(0.05)
    session.tick(0.999)
    session.stop_episode()
    session.close()
    dataset = _load(tmp_path / "ds")
    assert len(dataset) == 9  # the last grid frame has no next state
    states = np.stack([dataset[k]["observation.state"].numpy() for k in range(9)])
    actions = np.stack([dataset[k]["action"].numpy() for k in range(9)])
    np.testing.assert_allclose(actions[:-1], states[1:], atol=1e-7)


def test_episode_limit_missing_inputs_and_service_misuse(tmp_path, robot):
    session = _session(robot, tmp_path / "ds", max_episode_seconds=0.5, min_frames=1)
    assert session.stop_episode()[0] is False
    assert session.discard_episode()[0] is False
    ok, message = session.start_episode(0.05)
    assert ok and "no messages yet" in message  # nothing fed yet
    assert session.start_episode(0.06)[0] is False
    session.tick(0.3)
    ok, message = session.stop_episode()
    assert not ok and "no usable frames" in message

    _feed(session, robot, until=1.2)
    session.start_episode(0.05)
    session.tick(1.2)  # stops by itself after 0.5 s worth of frames
    assert session.status().state in ("saving", "idle")
    assert session.status().frames_in_episode == 5
    session.start_episode(0.0)
    session.tick(0.3)
    assert session.discard_episode()[0]
    assert session.wait_until_written(60)
    assert session.status().episodes_saved == 1
    session.close()
    assert _load(tmp_path / "ds").num_frames == 5


def test_a_restarted_session_continues_the_same_dataset(tmp_path, robot):
    root = tmp_path / "ds"
    first = _session(robot, root, min_frames=1)
    _feed(first, robot, until=1.2)
    first.start_episode(0.05)
    first.tick(0.5)
    first.stop_episode()
    first.close()

    second = _session(robot, root, min_frames=1)
    assert second.status().episodes_saved == 1 and second.status().episode_index == 1
    assert "continuing" in second.status().message
    _feed(second, robot, until=1.2)
    second.start_episode(0.1)
    second.tick(0.75)
    second.stop_episode()
    second.close()
    dataset = _load(root)
    assert dataset.num_episodes == 2 and len(dataset) == 5 + 7
    assert [int(dataset[i]["episode_index"]) for i in (0, 4, 5, 11)] == [0, 0, 1, 1]


def test_a_dataset_of_another_robot_is_refused(tmp_path, robot):
    root = tmp_path / "ds"
    _session(robot, root).close()
    other = tiny_robot(joints=("a", "b"), size=32)
    with pytest.raises(Exception, match="does not match the robot interface"):
        _session(other, root)
