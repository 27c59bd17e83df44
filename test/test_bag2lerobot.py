"""rosbag2 -> LeRobot: real bags written with rosbags (sqlite3 and MCAP) converted and loaded with LeRobotDataset.

Every frame's expected content is computed here by brute force from what the
bag fixture published (the latest message at or before the frame time, within
the tolerance), then compared with the dataset.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bag_fixtures import (BagSpec, check_frames, expected_frames, leader_value, load_dataset, recorded_streams,
                          write_bag, write_split_bag)
from lerobot_fixtures import tiny_robot
from ros_testing import REPO_ROOT

from dp_ros.data.bags.bag_conversion import convert_bags
from dp_ros.data.bags.conversion_options import ConversionError, ConversionOptions
from dp_ros.data.frame_sync import SAME_TIME
from dp_ros.data.bags.bag_reader import BagError, BagReader
from dp_ros.robot_interface import save_robot_interface



@pytest.fixture(scope="module")
def robot():
    return tiny_robot(cameras=("front", "wrist"), size=32)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_image_compressed_and_reordered_joint_states_convert_to_a_loadable_dataset(tmp_path, robot, storage):
    published = write_bag(tmp_path / "bag", robot, storage, BagSpec(camera_formats={"wrist": "jpeg"}))
    report = convert_bags([tmp_path / "bag"], tmp_path / "out", robot, progress=False)
    kept, dropped = expected_frames(recorded_streams(robot, published), robot.fps, 0.1)
    assert dropped == 0 and len(kept) == report.frames == 20

    dataset = load_dataset(tmp_path / "out")
    assert dataset.num_episodes == 1 and len(dataset) == len(kept) and dataset.fps == robot.fps
    for key, feature in robot.lerobot_features().items():
        assert dataset.features[key]["dtype"] == feature["dtype"]
        assert tuple(dataset.features[key]["shape"]) == tuple(feature["shape"])
    assert dataset[0]["observation.images.front"].shape == (3, 32, 32)
    assert dataset[0]["task"] == "demonstration"
    check_frames(dataset, robot, published, kept)
    assert not list(tmp_path.glob(".out.*"))  # no staging folder left behind


def test_every_raw_encoding_and_png_give_rgb(tmp_path):
    formats = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "png")
    robot = tiny_robot(cameras=formats, size=32)
    published = write_bag(tmp_path / "bag", robot, "sqlite3", BagSpec(seconds=1.0, camera_formats={f: f for f in formats}))
    convert_bags([tmp_path / "bag"], tmp_path / "out", robot, progress=False)
    dataset = load_dataset(tmp_path / "out")
    kept, _ = expected_frames(recorded_streams(robot, published), robot.fps, 0.1)
    for offset, (_, picks) in enumerate(kept):
        item = dataset[offset]
        for name in formats:
            level = published[robot.camera(name).topic].levels[picks[name]]
            rgb = item[f"observation.images.{name}"].numpy() * 255
            want = (level, level, level) if name == "mono8" else (level, 255 - level, 60)
            assert np.all(np.abs(rgb.reshape(3, -1).mean(axis=1) - want) < 8), (name, offset)


def test_header_and_receive_time_pick_different_messages_causally(tmp_path, robot):
    # cameras arrive 50 ms after capture; the episode starts at a marker, the same instant in both clocks
    spec = BagSpec(seconds=2.0, camera_receive_delay=0.05, markers=[(0.2, True), (1.9, False)])
    published = write_bag(tmp_path / "bag", robot, "mcap", spec)
    start, end = published["/episode_marker"].receive
    picked_levels = {}
    for source in ("header", "receive"):
        options = ConversionOptions(time_source=source, split="marker", split_topic="/episode_marker")
        convert_bags([tmp_path / "bag"], tmp_path / source, robot, options, progress=False)
        kept, dropped = expected_frames(recorded_streams(robot, published, source), robot.fps, 0.1, start=start, end=end)
        dataset = load_dataset(tmp_path / source)
        assert len(dataset) == len(kept)
        camera_times = recorded_streams(robot, published, source)["front"]
        picked_levels[source] = []
        for offset, (t, picks) in enumerate(kept):
            assert camera_times[picks["front"]] <= t + SAME_TIME  # never a later message
            level = published[robot.camera("front").topic].levels[picks["front"]]
            picked_levels[source].append(level)
            assert abs(dataset[offset]["observation.images.front"][0].mean().item() * 255 - level) < 8
    # receive times trail the capture by 50 ms, so some frames see an older image than with header stamps
    assert picked_levels["header"] != picked_levels["receive"]


def _runs(kept, period):
    """The kept frames cut wherever consecutive frame times are more than one period apart."""
    runs = [[kept[0]]]
    for frame in kept[1:]:
        if frame[0] - runs[-1][-1][0] > 1.5 * period:
            runs.append([])
        runs[-1].append(frame)
    return runs


def test_a_camera_gap_splits_the_episode_so_time_is_never_compressed(tmp_path, robot):
    spec = BagSpec(seconds=3.0, camera_gaps=[(1.0, 1.6)])  # both cameras pause for 0.6 s mid-episode
    published = write_bag(tmp_path / "bag", robot, "sqlite3", spec)
    report = convert_bags([tmp_path / "bag"], tmp_path / "split", robot, ConversionOptions(tolerance=0.1),
                          progress=False)
    kept, dropped = expected_frames(recorded_streams(robot, published), robot.fps, 0.1)
    runs = _runs(kept, 0.1)
    assert len(runs) == 2 and dropped >= 4 and all(len(run) >= 10 for run in runs)

    dataset = load_dataset(tmp_path / "split")
    assert dataset.num_episodes == 2 and report.frames == len(kept)
    first = 0
    for episode, run in enumerate(runs):
        rows = [dataset[first + k] for k in range(len(run))]
        assert int(dataset.meta.episodes[episode]["length"]) == len(run)
        assert all(int(row["episode_index"]) == episode for row in rows)
        # each frame's timestamp is its true time since the episode's first frame: no gap inside an episode
        times = np.array([row["timestamp"].item() for row in rows])
        np.testing.assert_allclose(times, [t - run[0][0] for t, _ in run], atol=1e-4)
        assert np.all(np.diff(times) <= 0.1 + 1e-4)
        check_frames(dataset, robot, published, run, first_index=first)
        first += len(run)

    (split,) = report.splits
    assert split.gap_before.frames == dropped == report.dropped
    assert set(split.gap_before.causes) == {"observation.images.front", "observation.images.wrist"}
    assert split.start == pytest.approx(runs[1][0][0])
    assert "split 1 times" in report.summary() and f"#0.1 after {dropped} unusable frames" in report.summary()
    as_json = report.as_dict()
    assert as_json["splits"] == 1 and as_json["episodes"][1]["gap_before"]["frames"] == dropped
    assert as_json["episodes"][1]["part"] == 1 and as_json["episodes"][1]["saved_as"] == 1

    with pytest.raises(ConversionError, match=r"observation.images.front was \d+ ms old.*--on-stale split"):
        convert_bags([tmp_path / "bag"], tmp_path / "fail", robot, ConversionOptions(on_stale="fail"),
                     progress=False)
    assert not (tmp_path / "fail").exists() and not list(tmp_path.glob(".fail.*"))

    # a part shorter than --min-frames is not written, and the summary says so
    report = convert_bags([tmp_path / "bag"], tmp_path / "long_only", robot,
                          ConversionOptions(min_frames=len(runs[0]) + 1), progress=False)
    assert [e.saved_as for e in report.episodes] == [None, 0] and report.frames == len(runs[1])
    assert "not written, fewer frames than --min-frames" in report.summary()


def test_marker_and_gap_splits_and_one_episode_per_bag(tmp_path, robot):
    spec = BagSpec(seconds=4.0, markers=[(0.5, True), (1.5, False), (2.2, True), (3.6, False)])
    published = write_bag(tmp_path / "marked", robot, "mcap", spec)
    options = ConversionOptions(split="marker", split_topic="/episode_marker")
    report = convert_bags([tmp_path / "marked"], tmp_path / "by_marker", robot, options, progress=False)
    marks = published["/episode_marker"].receive
    dataset = load_dataset(tmp_path / "by_marker")
    assert dataset.num_episodes == 2
    first = 0
    for episode, (a, b) in enumerate([(marks[0], marks[1]), (marks[2], marks[3])]):
        kept, _ = expected_frames(recorded_streams(robot, published), robot.fps, 0.1, start=a, end=b)
        assert int(dataset.meta.episodes[episode]["length"]) == len(kept)
        assert kept[0][0] >= a and kept[-1][0] <= b
        check_frames(dataset, robot, published, kept, first_index=first)
        first += len(kept)
    assert report.as_dict()["episodes_saved"] == 2
    # the default, --split auto: the marker topic is there, so the same episodes; --split bag: one
    by_default = convert_bags([tmp_path / "marked"], tmp_path / "by_default", robot, progress=False)
    assert [(e.start, e.frames) for e in by_default.saved] == [(e.start, e.frames) for e in report.saved]
    whole = convert_bags([tmp_path / "marked"], tmp_path / "whole", robot, ConversionOptions(split="bag"),
                         progress=False)
    assert len(whole.episodes) == 1 and whole.frames > report.frames

    write_bag(tmp_path / "paused", robot, "sqlite3", BagSpec(seconds=3.0, pauses=[(1.2, 2.0)]))
    write_bag(tmp_path / "second.mcap_bag", robot, "mcap", BagSpec(seconds=1.0))
    report = convert_bags([tmp_path / "paused", tmp_path / "second.mcap_bag"], tmp_path / "by_gap", robot,
                          ConversionOptions(split="gap", split_gap=0.5), progress=False)
    assert [(e.bag.split("/")[-1], e.index_in_bag) for e in report.saved] == [
        ("paused", 0), ("paused", 1), ("second.mcap_bag", 0)]
    dataset = load_dataset(tmp_path / "by_gap")
    assert dataset.num_episodes == 3
    lengths = [int(dataset.meta.episodes[i]["length"]) for i in range(3)]
    assert 10 <= lengths[0] <= 12 and 8 <= lengths[1] <= 10 and 8 <= lengths[2] <= 10, lengths


@pytest.mark.parametrize("storage,with_metadata", [("sqlite3", True), ("mcap", False)])
def test_split_bags_with_or_without_metadata_read_as_one(tmp_path, robot, storage, with_metadata):
    spec = BagSpec(seconds=2.0)
    published = write_split_bag(tmp_path / "split", robot, storage, spec, parts=2, with_metadata=with_metadata)
    assert (tmp_path / "split" / "metadata.yaml").exists() == with_metadata
    with BagReader(tmp_path / "split") as bag:
        assert bag.message_count == sum(len(p.header) for p in published.values())
    convert_bags([tmp_path / "split"], tmp_path / "out", robot, progress=False)
    kept, dropped = expected_frames(recorded_streams(robot, published), robot.fps, 0.1)
    dataset = load_dataset(tmp_path / "out")
    assert dataset.num_episodes == 1 and len(dataset) == len(kept) == 20 and dropped == 0
    check_frames(dataset, robot, published, kept)


def test_next_state_and_command_action_sources(tmp_path, robot):
    published = write_bag(tmp_path / "bag", robot, "sqlite3", BagSpec(seconds=2.0, command_rate=25.0))
    convert_bags([tmp_path / "bag"], tmp_path / "next", robot, ConversionOptions(action_source="next_state"),
                 progress=False)
    dataset = load_dataset(tmp_path / "next")
    states = np.stack([dataset[i]["observation.state"].numpy() for i in range(len(dataset))])
    actions = np.stack([dataset[i]["action"].numpy() for i in range(len(dataset))])
    np.testing.assert_allclose(actions[:-1], states[1:], atol=1e-6)
    streams = recorded_streams(robot, published)
    streams["action"] = streams["state"]  # read one frame period ahead
    kept, _ = expected_frames(streams, robot.fps, 0.1, leads={"action": 0.1})
    assert len(dataset) == len(kept) == 19  # the last frame of the bag has no next state

    convert_bags([tmp_path / "bag"], tmp_path / "command", robot, ConversionOptions(action_source="command"),
                 progress=False)
    dataset = load_dataset(tmp_path / "command")
    command_times = published[robot.command.topic].receive  # zero header stamps: receive times
    streams = recorded_streams(robot, published)
    streams["action"] = command_times
    kept, _ = expected_frames(streams, robot.fps, 0.1)
    assert len(dataset) == len(kept)
    for offset, (_, picks) in enumerate(kept):
        stamp = published[robot.command.topic].receive[picks["action"]] - 0.004  # the command's own time
        np.testing.assert_allclose(dataset[offset]["action"].numpy(),
                                   [leader_value(stamp, j) for j in range(3)], atol=1e-5)


def test_bad_bags_give_clear_errors_and_leave_nothing(tmp_path, robot):
    out = tmp_path / "out"
    write_bag(tmp_path / "no_camera", robot, "sqlite3", BagSpec(seconds=1.0, omit_topics=[robot.camera("wrist").topic]))
    with pytest.raises(BagError, match=r"no_camera.*no topic /camera/wrist/image_raw \(camera 'wrist'\).*--camera-topic"):
        convert_bags([tmp_path / "no_camera"], out, robot, progress=False)

    with pytest.raises(BagError, match=r"/joint_states \(camera 'wrist'\) has type sensor_msgs/msg/JointState"):
        convert_bags([tmp_path / "no_camera"], out, robot,
                     ConversionOptions(camera_topics={"wrist": robot.joint_state_topic}), progress=False)

    write_bag(tmp_path / "float_image", robot, "mcap", BagSpec(seconds=1.0, encoding_override="32FC1"))
    with pytest.raises(ConversionError, match=r"float_image: topic /camera/\w+/image_raw.*unsupported image encoding '32FC1'"):
        convert_bags([tmp_path / "float_image"], out, robot, progress=False)

    write_bag(tmp_path / "skewed", robot, "sqlite3", BagSpec(seconds=1.0, header_offsets={"/camera/front/image_raw": 3e5}))
    with pytest.raises(ConversionError, match="clocks disagree.*--time-source receive"):
        convert_bags([tmp_path / "skewed"], out, robot, progress=False)
    convert_bags([tmp_path / "skewed"], tmp_path / "skewed_ok", robot, ConversionOptions(time_source="receive"),
                 progress=False)

    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "garbage.db3").write_bytes(os.urandom(4096))
    with pytest.raises(BagError, match="garbage.*cannot open bag"):
        convert_bags([tmp_path / "garbage"], out, robot, progress=False)

    for storage, name in (("mcap", "cut_mcap"), ("sqlite3", "cut_db3")):
        write_bag(tmp_path / name, robot, storage, BagSpec(seconds=2.0))
        (storage_file,) = [p for p in (tmp_path / name).iterdir() if p.suffix in (".mcap", ".db3")]
        data = storage_file.read_bytes()
        storage_file.write_bytes(data[: len(data) // 2])
        with pytest.raises(BagError, match=f"{name}.*(truncated|corrupt)"):
            convert_bags([tmp_path / name], out, robot, progress=False)

    with pytest.raises(BagError, match="no such bag"):
        convert_bags([tmp_path / "absent"], out, robot, progress=False)

    write_bag(tmp_path / "empty", robot, "mcap", BagSpec(seconds=0.0))
    with pytest.raises(BagError, match="empty.*holds no messages"):
        convert_bags([tmp_path / "empty"], out, robot, progress=False)

    # a good bag first, then a bad one: still nothing at the output
    write_bag(tmp_path / "good", robot, "sqlite3", BagSpec(seconds=1.0))
    with pytest.raises(ConversionError):
        convert_bags([tmp_path / "good", tmp_path / "float_image"], out, robot, progress=False)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]

    convert_bags([tmp_path / "good"], out, robot, progress=False)
    with pytest.raises(ConversionError, match="exists.*--overwrite"):
        convert_bags([tmp_path / "good"], out, robot, progress=False)


def test_command_line_summary_json_and_exit_codes(tmp_path, robot):
    robot_yaml = save_robot_interface(robot, tmp_path / "robot.yaml")
    write_bag(tmp_path / "bag", robot, "mcap", BagSpec(seconds=1.0))
    write_bag(tmp_path / "bad", robot, "mcap", BagSpec(seconds=1.0, omit_topics=[robot.joint_state_topic]))
    script = shutil.which("bag2lerobot", path=os.path.dirname(sys.executable))
    assert script, "console script bag2lerobot is not installed"
    ok = subprocess.run([script, str(tmp_path / "bag"), "-o", str(tmp_path / "out"), "--robot-config", str(robot_yaml),
                         "--task", "reach", "--json", str(tmp_path / "stats.json"), "--no-progress"],
                        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "1 episodes, 10 frames at 10 fps" in ok.stdout and "observation.images.front" in ok.stdout
    import json

    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames"] == 10 and stats["episodes"][0]["saved_as"] == 0
    assert load_dataset(tmp_path / "out")[0]["task"] == "reach"

    failed = subprocess.run([sys.executable, "-m", "dp_ros.cli.main", "bag2lerobot", str(tmp_path / "bad"), "-o",
                             str(tmp_path / "out2"), "--robot-config", str(robot_yaml)],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert failed.returncode == 1
    assert "no topic /joint_states (joint states)" in failed.stderr and "nothing was written" in failed.stderr
    assert not (tmp_path / "out2").exists()
    usage = subprocess.run([script, str(tmp_path / "bag"), "-o", str(tmp_path / "out3"), "--tolerance", "-1",
                            "--robot-config", str(robot_yaml)], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "tolerance must be a positive number" in usage.stderr


def test_an_episode_without_some_input_is_skipped_and_says_why(tmp_path, robot):
    spec = BagSpec(seconds=2.0, markers=[(0.2, True), (0.8, False), (1.2, True), (1.8, False)],
                   camera_gaps=[(0.0, 0.9)])
    write_bag(tmp_path / "bag", robot, "sqlite3", spec)
    report = convert_bags([tmp_path / "bag"], tmp_path / "out", robot,
                          ConversionOptions(split="marker", split_topic="/episode_marker", min_frames=1), progress=False)
    first, second = report.episodes
    assert first.saved_as is None and first.frames == 0
    assert first.silent == ["observation.images.front", "observation.images.wrist"]
    assert "bag#0 (0 frames; no messages from observation.images.front, observation.images.wrist)" in report.summary()
    assert second.saved_as == 0 and second.frames == 7  # 1.2 s .. 1.8 s, both ends included
    assert load_dataset(tmp_path / "out").num_episodes == 1
