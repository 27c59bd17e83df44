"""The cluster example (examples/slurm/bag2lerobot_array.sh) run in a plain shell, two array tasks simulated by
setting SLURM_ARRAY_TASK_ID in a loop: the merged shards equal one conversion of all the bags."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bag_fixtures import BagSpec, load_dataset, write_bag
from lerobot_fixtures import tiny_robot
from ros_testing import REPO_ROOT

from dp_ros.data.bags.bag_conversion import convert_bags
from dp_ros.data.bags.conversion_options import ConversionOptions
from dp_ros.data.bags.shards import parse_shard, shard_of
from dp_ros.data.datasets.dataset_writer import read_episode_log
from dp_ros.robot_interface import save_robot_interface

SCRIPT = os.path.join(REPO_ROOT, "examples", "slurm", "bag2lerobot_array.sh")


def test_shards_are_contiguous_runs_that_cover_every_bag_once():
    bags = list(range(7))
    assert [shard_of(bags, i, 3) for i in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]
    assert [shard_of([0], i, 2) for i in range(2)] == [[], [0]]
    assert parse_shard("1/2") == (1, 2)
    for wrong in ("2/2", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="I/N"):
            parse_shard(wrong)


@pytest.mark.slow  # three dp-ros processes, each importing LeRobot and torch
def test_the_two_shard_slurm_example_merges_into_the_same_dataset_as_one_conversion(tmp_path):
    robot = tiny_robot(cameras=("front",), size=32)
    robot_yaml = save_robot_interface(robot, tmp_path / "robot.yaml")
    bags = []
    for k, seconds in enumerate((1.5, 2.0, 1.2)):
        bags.append(tmp_path / f"bag{k}")
        write_bag(bags[-1], robot, "mcap" if k % 2 else "sqlite3", BagSpec(seconds=seconds, start=1000.0 + 10 * k))
    (tmp_path / "bags.txt").write_text("".join(f"{b}\n" for b in bags))
    dp_ros = os.path.join(os.path.dirname(sys.executable), "dp-ros")
    loop = (f'for task in 0 1; do SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_COUNT=2 bash "{SCRIPT}" convert '
            f'bags.txt shards --robot-config robot.yaml --min-frames 3 || exit 1; done; '
            f'bash "{SCRIPT}" merge bags.txt shards merged')
    result = subprocess.run(["bash", "-c", loop], cwd=tmp_path, env={**os.environ, "DP_ROS": dp_ros},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-00000", "shard-00001"]
    assert "2 datasets, 3 episodes" in result.stdout

    convert_bags(bags, tmp_path / "whole", robot, ConversionOptions(min_frames=3), progress=False)
    a, b = load_dataset(tmp_path / "whole"), load_dataset(tmp_path / "merged")
    assert (a.num_episodes, len(a)) == (b.num_episodes, len(b)) == (3, len(a))
    for i in range(len(a)):
        x, y = a[i], b[i]
        for key in ("observation.state", "action", "timestamp", "episode_index", "frame_index", "index",
                    "observation.images.front"):
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy(), err_msg=f"{key} of frame {i}")
    assert read_episode_log(tmp_path / "merged") == read_episode_log(tmp_path / "whole")
