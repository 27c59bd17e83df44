"""Record demonstrations into a LeRobot dataset without the launch system (the pip route).

Runs the same recorder node, with the same parameters, as
`ros2 launch dp_ros record.launch.py`: every parameter of config/recorder.yaml
can be given with --params-file or --param name=value, the common ones with
the options below. Episodes are driven by the node's services
(/recorder_node/start_episode, stop_episode, discard_episode; status on
/recorder_node/status) and, when run in a terminal, by the keyboard:
Enter starts an episode or stops and saves it, d + Enter discards it, q + Enter quits.
An existing dataset at --root is continued.

Example:
  dp-ros record --root data/pick --task "pick the cube" --max-episode-seconds 30
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=None, help="LeRobot dataset folder = dataset_root "
                                                     "(default: ~/dp_ros_data/demonstrations)")
    parser.add_argument("--task", default=None, help="task description stored with every frame = task")
    parser.add_argument("--robot-config", default=None, help="robot interface YAML = robot_config "
                                                             "(default: dp_ros's config/robot.yaml)")
    parser.add_argument("--params-file", default="", help="ROS 2 parameters YAML for recorder_node "
                                                          "(e.g. config/recorder.yaml)")
    parser.add_argument("--repo-id", default=None, help="repo_id written into a new dataset = repo_id")
    parser.add_argument("--action-source", default=None, choices=["leader", "command", "next_state"],
                        help="demonstrated action = action_source (default: the robot interface's)")
    parser.add_argument("--action-topic", default=None, help="topic of the leader JointState or commands = action_topic")
    parser.add_argument("--max-input-age", type=float, default=None, metavar="SECONDS",
                        help="a frame whose inputs are older is unusable = max_input_age (default 0.2)")
    parser.add_argument("--on-stale", default=None, choices=["split", "discard"],
                        help="an unusable frame inside an episode splits it into two episodes (split, default) or "
                             "discards it (discard) = on_stale")
    parser.add_argument("--min-frames", type=int, default=None, metavar="N",
                        help="do not save episodes, or parts of split ones, with fewer frames = min_frames (default 10)")
    parser.add_argument("--max-episode-seconds", type=float, default=None, metavar="SECONDS",
                        help="stop and save an episode after this long = max_episode_seconds (default 0: no limit)")
    parser.add_argument("--time-source", default=None, choices=["receive", "header"],
                        help="time of a message: arrival on this node's clock or its header stamp = time_source")
    parser.add_argument("--use-sim-time", action="store_true", help="follow /clock (simulation)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any recorder_node parameter, e.g. --param input_reliability=reliable (repeatable)")
    parser.add_argument("--no-keyboard", action="store_true", help="do not read keys from the terminal")


def node_parameters(args: argparse.Namespace) -> dict:
    from dp_ros.bringup import load_params_file, parse_assignments

    values = load_params_file(args.params_file, "recorder_node") if args.params_file else {}
    for name, value in (("dataset_root", args.root), ("task", args.task), ("robot_config", args.robot_config),
                        ("repo_id", args.repo_id), ("action_source", args.action_source),
                        ("action_topic", args.action_topic), ("max_input_age", args.max_input_age),
                        ("on_stale", args.on_stale), ("min_frames", args.min_frames),
                        ("max_episode_seconds", args.max_episode_seconds), ("time_source", args.time_source)):
        if value is not None:
            values[name] = value
    if args.use_sim_time:
        values["use_sim_time"] = True
    values.update(parse_assignments(args.param))
    return values


def _keyboard(holder: list) -> None:
    print("keys: Enter = start / stop and save an episode, d Enter = discard it, q Enter = quit", flush=True)
    for line in sys.stdin:
        if not holder:
            continue
        session = holder[0].session
        if session is None:
            return
        key = line.strip().lower()
        if key == "q":
            os.kill(os.getpid(), signal.SIGINT)
            return
        if key == "d":
            ok, message = session.discard_episode()
        elif key == "":
            now = holder[0].get_clock().now().nanoseconds * 1e-9
            if session.status().state == "recording":
                ok, message = session.stop_episode()
            else:
                ok, message = session.start_episode(now)
        else:
            ok, message = False, f"unknown key {key!r}; Enter, d or q"
        print(("" if ok else "not done: ") + message, flush=True)


def run(args: argparse.Namespace) -> int:
    from dp_ros.bringup import BringupError, parameter_overrides, spin_nodes
    from dp_ros.nodes.recorder_node import STARTUP_ERRORS, RecorderNode

    try:
        overrides = parameter_overrides(node_parameters(args))
    except BringupError as exc:
        print(f"dp-ros record: error: {exc}", file=sys.stderr)
        return 2
    holder: list = []

    def make_node():
        node = RecorderNode(parameter_overrides=overrides)
        holder.append(node)
        return node

    if not args.no_keyboard and sys.stdin.isatty():
        threading.Thread(target=_keyboard, args=(holder,), daemon=True).start()
    return spin_nodes([make_node], startup_errors=STARTUP_ERRORS)
