"""dp-ros check-dataset on real LeRobot datasets: a clean one, and one with each problem the check looks for."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lerobot_fixtures import synthetic_frame, tiny_robot
from ros_testing import REPO_ROOT

from dp_ros.data.datasets.dataset_check import CheckOptions, check_dataset
from dp_ros.data.datasets.dataset_plot import plot_report
from dp_ros.data.datasets.dataset_writer import EpisodeWriter


def _write(root, robot, episodes: int, frames: int = 20, spoil=None, records=None):
    writer = EpisodeWriter(root, robot)
    for episode in range(episodes):
        length = frames(episode) if callable(frames) else frames
        for i in range(length):
            frame = dict(synthetic_frame(robot, i * robot.control_period, episode))
            if spoil is not None:
                spoil(episode, i, frame)
            writer.add_frame(frame, "follow the sine")
        writer.save_episode((records or {}).get(episode))
    writer.close()
    return root


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dp_ros.cli.main", "check-dataset", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def robot():
    return tiny_robot(size=32)


def test_a_clean_dataset_passes_with_only_the_episode_count_warning(tmp_path, robot):
    root = _write(tmp_path / "clean", robot, episodes=4)
    report = check_dataset(root)
    assert (report.episodes, report.frames, report.fps) == (4, 80, robot.fps)
    assert [(f.severity, f.check) for f in report.findings] == [("warning", "episodes")]
    assert "fewer than 100" in report.findings[0].message
    assert report.summary["nonfinite_values"] == 0 and report.summary["uneven_timestamp_episodes"] == 0
    assert report.summary["frozen_runs"] == 0 and report.summary["action_jerk"]["outliers"] == 0
    assert report.summary["episode_length"] == {"min": 20, "median": 20.0, "max": 20, "std": 0.0}

    result = _run_cli(root, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["errors"] == 0 and data["warnings"] == 1 and data["episodes"] == 4
    assert _run_cli(root, "--strict", "--skip-videos").returncode == 1
    relaxed = _run_cli(root, "--min-episodes", "3", "--recommended-episodes", "4", "--strict")
    assert relaxed.returncode == 0 and "0 errors, 0 warnings" in relaxed.stdout


def test_each_problem_is_found_by_episode_and_frame(tmp_path, robot):
    frozen_image = {}

    def spoil(episode, i, frame):
        if episode == 1 and i == 10:
            frame["action"] = frame["action"] + np.float32(1.5)  # a teleoperation glitch
        if episode == 2 and i == 5:
            frame["observation.state"] = frame["observation.state"].copy()
            frame["observation.state"][1] = np.nan
        if episode == 3 and 5 <= i <= 14:  # the camera stops updating while the arm moves
            frozen_image.setdefault("image", frame["observation.images.front"].copy())
            frame["observation.images.front"] = frozen_image["image"]

    gap = {"time": 12.5, "frames": 3, "seconds": 0.3, "causes": {"observation.images.front": 0.42}}
    records = {0: {"frames_dropped": 4}, 4: {"part": 1, "gap_before": gap}}  # an older recorder; a split
    root = _write(tmp_path / "bad", robot, episodes=5, frames=lambda e: 6 if e == 4 else 20, spoil=spoil,
                  records=records)
    # a recording whose clock skipped: shift the timestamps of episode 3 after frame 12 by two periods
    path = root / "data" / "chunk-000" / "file-003.parquet"
    table = pq.read_table(path)
    stamps = table.column("timestamp").to_numpy().copy()
    stamps[13:] += 2 / robot.fps
    pq.write_table(table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                                    pa.array(stamps, type=table.schema.field("timestamp").type)), path)

    report = check_dataset(root, CheckOptions(min_episodes=3))
    found = {(f.severity, f.check, f.episode, f.frame) for f in report.findings}
    assert ("error", "nan", 2, 5) in found
    assert any(f.check == "smoothness" and f.episode == 1 and 7 <= f.frame <= 10 for f in report.findings)
    # lossy video: the first repeated frame may still differ from the one before it
    assert any(f.check == "frozen" and f.episode == 3 and f.frame in (5, 6) for f in report.findings)
    assert ("error", "timestamps", 3, 13) in found
    (uneven,) = [f for f in report.findings if f.check == "timestamps"]
    assert "not evenly spaced at 1/fps: 1 steps between frames are not 100 ms (first: 300 ms before frame 13)" \
        in uneven.message
    assert ("warning", "dropped", 0, None) in found and ("note", "split", 4, None) in found
    assert ("warning", "lengths", 4, None) in found
    assert not any(f.episode in (0, 4) and f.check in ("smoothness", "frozen", "nan") for f in report.findings)
    assert report.summary["frames_dropped_inside"] == 4 and report.summary["split_episodes"] == 1
    assert report.summary["uneven_timestamp_episodes"] == 1

    plot = plot_report(report, tmp_path / "check.png")
    assert plot.stat().st_size > 20_000

    result = _run_cli(root, "--min-episodes", "3", "--plot", tmp_path / "cli.png")
    assert result.returncode == 1  # NaN is a hard error
    assert "ERROR   nan: observation.state holds NaN or Inf" in result.stdout
    assert re.search(r"camera front shows the same image for frames [56]-14 while the joints move", result.stdout)
    assert (tmp_path / "cli.png").is_file()


def test_a_folder_that_is_not_a_dataset(tmp_path):
    result = _run_cli(tmp_path)
    assert result.returncode == 2 and "not a LeRobot dataset" in result.stderr
