"""bag2lerobot --jobs N: bags converted by worker processes and merged by LeRobot's aggregation equal a serial
conversion: the same frames, the same episodes in the same order, the same episode log."""
from __future__ import annotations

import numpy as np

from bag_fixtures import BagSpec, load_dataset, write_bag
from lerobot_fixtures import tiny_robot

from dp_ros.data.bags.bag_conversion import convert_bags
from dp_ros.data.bags.conversion_options import ConversionOptions
from dp_ros.data.datasets.dataset_writer import read_episode_log
from dp_ros.data.bags.parallel_conversion import share_out


def test_bags_are_shared_out_in_order_by_duration():
    assert share_out([10, 10, 10, 10], 2) == [[0, 1], [2, 3]]
    assert share_out([30, 5, 5, 5, 5], 2) == [[0], [1, 2, 3, 4]]
    assert share_out([1, 1], 4) == [[0], [1]]
    assert share_out([0, 0, 0], 2) == [[0], [1, 2]]


def test_parallel_conversion_equals_the_serial_one(tmp_path):
    robot = tiny_robot(cameras=("front",), size=32)
    bags = []
    for k, (seconds, gaps) in enumerate([(1.5, ()), (2.5, [(1.0, 1.4)]), (1.2, ()), (1.8, ())]):
        bags.append(tmp_path / f"bag{k}")
        write_bag(bags[-1], robot, "mcap" if k % 2 else "sqlite3",
                  BagSpec(seconds=seconds, start=1000.0 + 10 * k, camera_gaps=gaps))
    options = ConversionOptions(min_frames=3)
    serial = convert_bags(bags, tmp_path / "serial", robot, options, progress=False)
    parallel = convert_bags(bags, tmp_path / "parallel", robot, options, progress=False, jobs=2)

    assert [(e.label, e.frames, e.saved_as) for e in parallel.episodes] == \
        [(e.label, e.frames, e.saved_as) for e in serial.episodes]
    assert len(serial.splits) == 1 and len(serial.saved) == 5
    assert [job["bags"] for job in parallel.jobs if job["job"] != "merge"] == [2, 2]
    assert all(job["peak_rss_mb"] > 100 for job in parallel.jobs)
    a, b = load_dataset(tmp_path / "serial"), load_dataset(tmp_path / "parallel")
    assert (a.num_episodes, len(a)) == (b.num_episodes, len(b)) == (5, serial.frames)
    for i in range(len(a)):
        x, y = a[i], b[i]
        for key in ("observation.state", "action", "timestamp", "episode_index", "frame_index", "index"):
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy(), err_msg=f"{key} of frame {i}")
        assert x["task"] == y["task"]
        np.testing.assert_array_equal(x["observation.images.front"].numpy(), y["observation.images.front"].numpy())
    assert read_episode_log(tmp_path / "parallel") == read_episode_log(tmp_path / "serial")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no part or staging folder left
