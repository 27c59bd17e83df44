"""EpisodeWriter: a saved episode survives SIGKILL, an interrupted save is rolled back, writing resumes.

The crashes are real: a writer process kills itself with SIGKILL at a chosen
point, and the dataset it leaves is loaded with LeRobotDataset.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from lerobot_fixtures import synthetic_frame, tiny_robot
from ros_testing import REPO_ROOT

from dp_ros.data.datasets.dataset_writer import JOURNAL, DatasetWriterError, EpisodeWriter, read_episode_log

WRITER_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, "test")
    from lerobot_fixtures import synthetic_frame, tiny_robot
    from dp_ros.data.datasets.dataset_writer import EpisodeWriter
    robot = tiny_robot(size=32)
    writer = EpisodeWriter(sys.argv[1], robot)

    def add(episode, frames=10):
        for i in range(frames):
            frame = synthetic_frame(robot, i * robot.control_period, episode)
            writer.add_frame({k: v for k, v in frame.items()}, "stack the cube")

    for episode in range(2):
        add(episode)
        writer.save_episode({"note": episode})
    add(2, frames=5)
    if sys.argv[2] == "during_save":
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
        # LeRobot's save_episode has written the episode; die before the files are closed
        LeRobotDataset.finalize = lambda self: os.kill(os.getpid(), signal.SIGKILL)
        writer.save_episode()
    print("recording", flush=True)
    time.sleep(60)
""")


def _run_writer(root, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(root), mode], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc


def _load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/test", root=root)


def _add(writer, robot, episode, frames=10):
    for i in range(frames):
        writer.add_frame(dict(synthetic_frame(robot, i * robot.control_period, episode)), "stack the cube")


def test_sigkill_during_an_episode_keeps_saved_episodes_loadable_and_resume_continues(tmp_path):
    root = tmp_path / "ds"
    proc = _run_writer(root, "mid_episode")
    seen = []
    while not seen or "recording" not in seen[-1]:
        seen.append(proc.stdout.readline())
        assert seen[-1] or proc.poll() is None, "".join(seen)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    dataset = _load(root)  # loadable as it is, without any repair
    assert dataset.num_episodes == 2 and len(dataset) == 20

    robot = tiny_robot(size=32)
    writer = EpisodeWriter(root, robot)
    assert writer.resumed and writer.episodes_saved == 2 and not writer.recovered_episode
    assert not (root / "images").exists()  # the dead episode's scratch frames are gone
    _add(writer, robot, 3, frames=7)
    assert writer.save_episode().index == 2
    writer.close()
    dataset = _load(root)
    assert dataset.num_episodes == 3 and len(dataset) == 27
    assert [r["episode_index"] for r in read_episode_log(root)] == [0, 1, 2]


def test_sigkill_inside_a_save_rolls_that_episode_back(tmp_path):
    root = tmp_path / "ds"
    proc = _run_writer(root, "during_save")
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == -signal.SIGKILL, output
    # what LeRobot alone leaves: info.json already counts the episode whose files are unfinished
    assert json.loads((root / "meta" / "info.json").read_text())["total_episodes"] == 3
    assert (root / JOURNAL).is_dir()

    robot = tiny_robot(size=32)
    writer = EpisodeWriter(root, robot)
    assert writer.recovered_episode and writer.episodes_saved == 2
    assert not (root / JOURNAL).exists()
    _add(writer, robot, 5, frames=4)
    writer.save_episode()
    writer.close()
    dataset = _load(root)
    assert dataset.num_episodes == 3 and len(dataset) == 24
    assert int(dataset[23]["episode_index"]) == 2 and int(dataset[23]["frame_index"]) == 3


def test_folders_that_are_not_datasets_empty_episodes_and_tiny_cameras(tmp_path):
    robot = tiny_robot(size=32)
    with pytest.raises(DatasetWriterError, match=r"front \(24x24\) are smaller than 32x32"):
        EpisodeWriter(tmp_path / "tiny", tiny_robot(size=24))
    assert not (tmp_path / "tiny").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetWriterError, match="not a LeRobot dataset"):
        EpisodeWriter(tmp_path / "busy", robot)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"

    (tmp_path / "empty").mkdir()
    writer = EpisodeWriter(tmp_path / "empty", robot)
    with pytest.raises(DatasetWriterError, match="no frames"):
        writer.save_episode()
    _add(writer, robot, 0, frames=3)
    writer.discard_episode()
    assert writer.frames_in_episode == 0
    writer.close()
