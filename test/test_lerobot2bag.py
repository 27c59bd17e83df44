"""LeRobot dataset -> rosbag2 MCAP -> dataset again: bag -> dataset -> bag -> dataset keeps states and actions
exactly and images within the video codec's loss, for every action source, with raw and compressed cameras."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bag_fixtures import BagSpec, load_dataset, write_bag
from lerobot_fixtures import make_dataset, tiny_robot
from ros_testing import REPO_ROOT

from dp_ros.data.bags.bag_conversion import convert_bags
from dp_ros.data.bags.bag_reader import BagReader
from dp_ros.data.bags.conversion_options import ConversionOptions
from dp_ros.data.datasets.dataset_to_bag import DatasetToBagError, dataset_to_bag
from dp_ros.robot_interface import ActionSource, save_robot_interface

MARKERS = ConversionOptions(split="marker", split_topic="/episode_marker", min_frames=1)


def _columns(root):
    dataset = load_dataset(root)
    rows = [dataset[i] for i in range(len(dataset))]
    columns = {key: np.stack([row[key].numpy() for row in rows])
               for key in ("observation.state", "action", "timestamp", "episode_index", "frame_index")}
    images = {key: np.stack([row[key].numpy() for row in rows]) for key in dataset.meta.video_keys}
    return columns, images


def _assert_same(first, second, image_tolerance=2.5):
    (columns_a, images_a), (columns_b, images_b) = _columns(first), _columns(second)
    for key, values in columns_a.items():
        np.testing.assert_array_equal(columns_b[key], values, err_msg=key)  # exactly: float32 -> float64 -> float32
    for key, values in images_a.items():
        difference = np.abs(images_b[key] - values) * 255
        assert difference.mean() < image_tolerance and np.percentile(difference, 99) < 12, (key, difference.mean())


@pytest.mark.parametrize("source", ["leader", "next_state"])
def test_round_trip_keeps_states_and_actions_exactly(tmp_path, source):
    robot = tiny_robot(cameras=("front", "wrist"), size=32)
    robot = robot.model_copy(update={"action": ActionSource(source=source,
                                                            topic=robot.action.topic if source == "leader" else "")})
    write_bag(tmp_path / "a", robot, "sqlite3", BagSpec(seconds=1.6))
    write_bag(tmp_path / "b", robot, "mcap", BagSpec(seconds=1.2, start=2000.0))
    convert_bags([tmp_path / "a", tmp_path / "b"], tmp_path / "first", robot, ConversionOptions(min_frames=1),
                 progress=False)

    report = dataset_to_bag(tmp_path / "first", tmp_path / "back.mcap", robot)
    assert report.episodes == 2 and report.frames == len(load_dataset(tmp_path / "first"))
    with BagReader(tmp_path / "back.mcap") as bag:
        names = set(bag.topics)
        stamps = [bag.decoder(robot.joint_state_topic)(m.raw).header.stamp for m in bag.messages([robot.joint_state_topic])]
        receive = [m.receive_ns for m in bag.messages([robot.joint_state_topic])]
    assert [s.sec * 10**9 + s.nanosec for s in stamps] == receive  # header stamps at the frame times
    assert np.allclose(np.diff(receive[:10]), 1e8)
    assert {robot.joint_state_topic, "/camera/front/image_raw", "/camera/wrist/image_raw", "/episode_marker"} <= names
    assert (robot.action.topic in names) == (source == "leader")

    convert_bags([tmp_path / "back.mcap"], tmp_path / "second", robot, MARKERS, progress=False)
    _assert_same(tmp_path / "first", tmp_path / "second")


def test_round_trip_from_the_command_line_with_commands_and_compressed_cameras(tmp_path):
    robot = tiny_robot(cameras=("front",), size=32, camera_type="compressed", command_type="joint_trajectory")
    robot = robot.model_copy(update={"action": ActionSource(source="command")})
    robot_yaml = save_robot_interface(robot, tmp_path / "robot.yaml")
    write_bag(tmp_path / "bag", robot, "mcap", BagSpec(seconds=1.5, command_rate=25.0,
                                                       camera_formats={"front": "jpeg"}))
    bin_dir = os.path.dirname(sys.executable)

    def dp_ros(*args):
        result = subprocess.run([os.path.join(bin_dir, "dp-ros"), *map(str, args), "--robot-config", str(robot_yaml),
                                 "--no-progress"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
        assert result.returncode == 0, result.stderr
        return result.stdout

    dp_ros("bag2lerobot", tmp_path / "bag", "-o", tmp_path / "first", "--min-frames", 1)
    assert "1 episodes, 15 frames" in dp_ros("lerobot2bag", tmp_path / "first", "-o", tmp_path / "back.mcap")
    with BagReader(tmp_path / "back.mcap") as bag:
        assert bag.topics["/camera/front/image_raw"].msgtype == "sensor_msgs/msg/CompressedImage"
        assert bag.topics[robot.command.topic].msgtype == "trajectory_msgs/msg/JointTrajectory"
    dp_ros("bag2lerobot", tmp_path / "back.mcap", "-o", tmp_path / "second", "--split", "marker",
           "--split-topic", "/episode_marker", "--min-frames", 1)
    _assert_same(tmp_path / "first", tmp_path / "second", image_tolerance=4.0)  # jpeg on top of the video codec

    again = subprocess.run([shutil.which("dp-ros", path=bin_dir), "lerobot2bag", str(tmp_path / "first"), "-o",
                            str(tmp_path / "back.mcap"), "--robot-config", str(robot_yaml)], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and "exists" in again.stderr


def test_a_dataset_of_another_robot_is_refused_and_nothing_is_written(tmp_path):
    robot = tiny_robot(cameras=("front",), size=32)
    write_bag(tmp_path / "bag", robot, "sqlite3", BagSpec(seconds=1.0))
    convert_bags([tmp_path / "bag"], tmp_path / "first", robot, progress=False)
    other = tiny_robot(joints=("a", "b"), cameras=("front",), size=32)
    with pytest.raises(DatasetToBagError, match="does not match the robot interface"):
        dataset_to_bag(tmp_path / "first", tmp_path / "back.mcap", other)
    assert not (tmp_path / "back.mcap").exists()


def test_round_trip_with_default_options_on_both_sides_is_exact(tmp_path):
    """dataset -> lerobot2bag -> bag2lerobot -> dataset, every option left at its default: the same episodes,
    frames, timestamps, states and actions (images within the video codec's loss)."""
    robot = tiny_robot(cameras=("front", "wrist"), size=32)
    make_dataset(tmp_path / "first", robot, episodes=2, frames=24)
    dataset_to_bag(tmp_path / "first", tmp_path / "back.mcap", robot)
    report = convert_bags([tmp_path / "back.mcap"], tmp_path / "second", robot, progress=False)
    assert [e.frames for e in report.episodes] == [24, 24]
    assert all(stats.stale == 0 and stats.missing == 0 for e in report.episodes for stats in e.streams.values())
    _assert_same(tmp_path / "first", tmp_path / "second")
