"""Write a LeRobot dataset back as a rosbag2 MCAP file: replay demonstrations, inspect them in Foxglove or RViz.

Each frame becomes the robot interface's topics, stamped at the frame's time:
joint states, every camera (sensor_msgs/Image rgb8 or CompressedImage jpeg, as
the robot interface's camera type says) and the action on its topic (a leader
arm's JointState, or commands of the robot interface's command type; with the
next_state action source the joint states carry it). Header stamps, bag
receive times (MCAP log time) and publish times are equal: the episode's start
plus the frame's timestamp, in nanoseconds. Episodes follow one another after a
pause and are delimited by std_msgs/Bool messages on --marker-topic, so with
default options on both sides
  dp-ros bag2lerobot OUT.mcap -o DATASET2
gives the same episodes, frames and timestamps back (states and actions
exactly, images within the video codec's loss). No ROS install is needed; `ros2 bag play OUT.mcap` replays it.

Examples:
  dp-ros lerobot2bag data/pick -o pick.mcap
  dp-ros lerobot2bag data/pick -o pick.mcap --robot-config my_robot.yaml --start-time 0

Exit codes: 0 written, 1 the dataset cannot be written as a bag (nothing left at -o), 2 bad options.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dp_ros.data.datasets.dataset_to_bag import MARKER_TOPIC

    parser.add_argument("dataset", help="folder of the LeRobot dataset (meta/, data/, videos/)")
    parser.add_argument("-o", "--output", required=True, help="the MCAP file to write (.mcap; must not exist)")
    parser.add_argument("--robot-config", default="", help="robot interface YAML the dataset was recorded with "
                                                           "(default: dp_ros's config/robot.yaml)")
    parser.add_argument("--marker-topic", default=MARKER_TOPIC, metavar="TOPIC",
                        help=f"std_msgs/Bool episode markers: true at an episode's first frame, false after its last "
                             f"('' for none; default: {MARKER_TOPIC})")
    parser.add_argument("--start-time", type=float, default=1.7e9, metavar="SECONDS",
                        help="time of the first frame, seconds since the epoch (default: 1.7e9, November 2023)")
    parser.add_argument("--episode-gap", type=float, default=1.0, metavar="SECONDS",
                        help="pause between episodes (default: 1.0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file at --output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dp_ros.data.datasets.dataset_files import DatasetCheckError
    from dp_ros.data.datasets.dataset_to_bag import DatasetToBagError, dataset_to_bag
    from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface

    output = Path(args.output)
    problem = ""
    if output.suffix != ".mcap":
        problem = f"--output must be an .mcap file, got {output}"
    elif output.exists() and not args.overwrite:
        problem = f"{output} exists; choose another file or pass --overwrite"
    elif not args.start_time > 0 or args.episode_gap < 0:
        problem = "--start-time must be positive and --episode-gap not negative"
    try:
        robot = load_robot_interface(args.robot_config or default_robot_config_path())
    except RobotInterfaceError as exc:
        problem = str(exc)
    if problem:
        print(f"lerobot2bag: error: {problem}", file=sys.stderr)
        return 2
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(unit="frame", desc="writing the bag", dynamic_ncols=True)
    partial = output.with_name(f".{output.name}.incomplete")
    try:
        report = dataset_to_bag(args.dataset, partial, robot, start_time=args.start_time,
                                episode_gap=args.episode_gap, marker_topic=args.marker_topic,
                                progress=bar.update if bar is not None else None)
    except (DatasetCheckError, DatasetToBagError) as exc:
        print(f"lerobot2bag: error: {exc}\nnothing was written at {output}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    partial.replace(output)
    print(f"{report.episodes} episodes, {report.frames} frames, {report.seconds:.1f} s -> {output}")
    return 0
