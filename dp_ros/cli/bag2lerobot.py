"""Convert rosbag2 bags into a LeRobot dataset (format v3.0, images as video) for training.

Reads bag folders (split bags too, with or without metadata.yaml) and single
.db3 / .mcap files with rosbags: no ROS install is needed. Topics, joints,
cameras, image sizes and the fps come from the robot interface YAML, so the
dataset has the features the policy node expects. Frames are taken at the
robot's fps; each feature takes the latest message at or before the frame
time, never a later one. One episode per bag by default (per marked span when
the bag has the marker topic /episode_marker), or split by a marker topic or by pauses.

Time is never compressed: a frame with a stale or missing input cannot be
dropped from the middle of an episode (the policy would learn that the gap took
no time). By default the episode is split there into two episodes, each with
true timestamps (--on-stale split); parts shorter than --min-frames are not
written. The summary and --json list every split.

Only the topics the robot interface needs are read: a bag may hold anything
else (service events, rosbag2's event topics, custom types). Bags compressed by
rosbag2 (zstd, per file or per message) and MCAP files with compressed chunks
are read as they are. The dataset is written to a hidden folder next to
--output and moved there only when every bag converted: a failure leaves
nothing at --output. With --jobs N, bags are converted by N processes and the
parts merged with LeRobot's dataset aggregation (the same dataset as one job).

Examples:
  dp-ros bag2lerobot run1/ run2/ run3.mcap --output data/pick --task "pick the cube"
  dp-ros bag2lerobot session/ --output data/pick --split marker --split-topic /episode_marker
  dp-ros bag2lerobot day1/*.db3 --output data/pick --split gap --split-gap 2.0 --time-source receive
  dp-ros bag2lerobot run1/ --output data/pick --camera-topic front=/camera/front/image_raw/compressed
  dp-ros bag2lerobot fleet/*.mcap --output data/fleet --jobs 4
  dp-ros bag2lerobot $(cat bags.txt) --shard 3/100 --output shards/3   # one job of a cluster array

Exit codes: 0 converted, 1 conversion failed (nothing written at --output), 2 bad options.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dp_ros.data.bags.conversion_options import SPLIT_MODES, STALE_POLICIES, TIME_SOURCES, ConversionOptions
    from dp_ros.data.datasets.dataset_writer import DATASET_LABEL

    defaults = ConversionOptions()
    parser.add_argument("bags", nargs="+", metavar="BAG",
                        help="rosbag2 folders or .db3/.mcap files, converted in the order given")
    parser.add_argument("-o", "--output", required=True, help="folder of the LeRobot dataset to write (must not exist)")
    parser.add_argument("--robot-config", default="", help="robot interface YAML (default: dp_ros's config/robot.yaml)")
    parser.add_argument("--task", default=defaults.task, help="task description stored with every frame "
                                                             f"(default: {defaults.task!r})")
    parser.add_argument("--repo-id", default=DATASET_LABEL, help="LeRobot repo_id of the dataset (default %(default)s)")
    parser.add_argument("--tolerance", type=float, default=defaults.tolerance, metavar="SECONDS",
                        help="a frame whose newest message of some feature is older than this is stale "
                             f"(default: {defaults.tolerance})")
    parser.add_argument("--on-stale", choices=STALE_POLICIES, default=defaults.on_stale,
                        help="split: an episode with stale or missing inputs inside is cut there into separate "
                             "episodes (stale frames at its ends are trimmed); fail: stop at the first stale frame "
                             f"(default: {defaults.on_stale})")
    parser.add_argument("--time-source", choices=TIME_SOURCES, default=defaults.time_source,
                        help="header: the messages' header stamps; receive: the times the bag recorded them "
                             "(messages without a header always use receive times) (default: header)")
    parser.add_argument("--split", choices=SPLIT_MODES, default=defaults.split,
                        help="auto: marker for a bag that has --split-topic (lerobot2bag writes it), else bag; "
                             "bag: one episode per bag; marker: episodes delimited by --split-topic; "
                             "gap: a new episode after a pause in the joint states (default: auto)")
    parser.add_argument("--split-topic", default=defaults.split_topic, metavar="TOPIC",
                        help="marker topic for --split marker and auto: std_msgs/Bool (or a custom type with a bool 'data' "
                             "field) true starts and false ends an episode; a message of any other type starts "
                             f"the next episode (default: {defaults.split_topic})")
    parser.add_argument("--split-gap", type=float, default=defaults.split_gap, metavar="SECONDS",
                        help=f"pause in the joint states that separates episodes (--split gap; default: {defaults.split_gap})")
    parser.add_argument("--action-source", choices=("leader", "command", "next_state"), default=None,
                        help="demonstrated action: a leader arm's JointState, the command topic, or the next "
                             "observed joint state (default: the robot interface's action.source)")
    parser.add_argument("--action-topic", default="", metavar="TOPIC",
                        help="topic of the leader JointState or of the commands (default: the robot interface's)")
    parser.add_argument("--joint-state-topic", default="", metavar="TOPIC",
                        help="joint-state topic (default: the robot interface's)")
    parser.add_argument("--camera-topic", action="append", default=[], metavar="NAME=TOPIC",
                        help="read camera NAME from TOPIC, sensor_msgs/Image or CompressedImage (repeatable)")
    parser.add_argument("--min-frames", type=int, default=defaults.min_frames, metavar="N",
                        help="do not write episodes, or parts of split episodes, with fewer frames "
                             f"(default: {defaults.min_frames})")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="several bags: convert them in N worker processes and merge the parts with LeRobot's "
                             "dataset aggregation (each job takes about 1 GB of memory); one bag: decode its images "
                             "in N worker processes while this one encodes. The same dataset as --jobs 1 (default: 1)")
    parser.add_argument("--decode-every-message", action="store_true",
                        help="decode every message of the needed topics, as a naive converter would, instead of "
                             "only those a frame uses: the same dataset, slower (for comparison and profiling)")
    parser.add_argument("--shard", default="", metavar="I/N",
                        help="convert only shard I of N of the bags given (a contiguous run, 0 <= I < N), e.g. "
                             "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT in a cluster array job; merge the "
                             "shards in order with 'dp-ros merge-datasets' (see examples/slurm/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset at --output (only once the new one is complete)")
    parser.add_argument("--json", dest="json_path", default="", metavar="PATH",
                        help="also write the conversion statistics as JSON to PATH ('-' for stdout)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _camera_topics(pairs: list[str]) -> dict[str, str]:
    topics = {}
    for pair in pairs:
        name, sep, topic = pair.partition("=")
        if not sep or not name or not topic:
            raise ValueError(f"--camera-topic expects NAME=TOPIC, got {pair!r}")
        topics[name.strip()] = topic.strip()
    return topics


def run(args: argparse.Namespace) -> int:
    from dp_ros.data.bags.bag_conversion import convert_bags
    from dp_ros.data.bags.shards import parse_shard, shard_of
    from dp_ros.data.bags.conversion_options import ConversionError, ConversionOptions
    from dp_ros.data.bags.bag_reader import BagError
    from dp_ros.data.datasets.dataset_writer import DatasetWriterError
    from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface

    try:
        options = ConversionOptions(
            tolerance=args.tolerance, on_stale=args.on_stale, time_source=args.time_source, split=args.split,
            split_topic=args.split_topic, split_gap=args.split_gap, action_source=args.action_source or "",
            action_topic=args.action_topic, joint_state_topic=args.joint_state_topic,
            camera_topics=_camera_topics(args.camera_topic), task=args.task, min_frames=args.min_frames,
            decode_every_message=args.decode_every_message)
        options.validate()
        if args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        bags = shard_of(args.bags, *parse_shard(args.shard)) if args.shard else args.bags
        robot = load_robot_interface(args.robot_config or default_robot_config_path())
    except (ValueError, RobotInterfaceError) as exc:
        print(f"bag2lerobot: error: {exc}", file=sys.stderr)
        return 2
    if not bags:
        print(f"bag2lerobot: shard {args.shard} of {len(args.bags)} bags holds none; nothing to do")
        return 0
    try:
        report = convert_bags(bags, args.output, robot, options, overwrite=args.overwrite,
                              progress=not args.no_progress, repo_id=args.repo_id, jobs=args.jobs)
    except (BagError, ConversionError, DatasetWriterError) as exc:
        print(f"bag2lerobot: error: {exc}\nnothing was written at {args.output}", file=sys.stderr)
        return 1
    print(report.summary())
    if args.json_path:
        text = json.dumps(report.as_dict(), indent=2)
        if args.json_path == "-":
            print(text)
        else:
            with open(args.json_path, "w") as handle:
                handle.write(text + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``bag2lerobot`` console script (same as ``dp-ros bag2lerobot``)."""
    from dp_ros.lerobot_compat import exit_unless_supported

    exit_unless_supported("bag2lerobot")
    parser = argparse.ArgumentParser(prog="bag2lerobot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        print("bag2lerobot: interrupted; nothing was written at the output", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
