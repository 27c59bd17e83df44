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
    from dp_ros.node_params.recorder import RECORDER

    parser.add_argument("--params-file", default="", help="ROS 2 parameters YAML for recorder_node "
                                                          "(e.g. config/recorder.yaml); options below override it")
    RECORDER.add_options(parser, "recorder_node parameters")
    parser.add_argument("--use-sim-time", action="store_true", help="follow /clock (simulation)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any recorder_node parameter, e.g. --param input_reliability=reliable (repeatable)")
    parser.add_argument("--no-keyboard", action="store_true", help="do not read keys from the terminal")


def node_arguments(args: argparse.Namespace) -> list[str]:
    """recorder_node's ROS arguments: the parameters file, then the options, then --param pairs."""
    from dp_ros.node_params.recorder import RECORDER

    return RECORDER.command_line_arguments(args)


def _keyboard(holder: list) -> None:
    print("keys: Enter = start / stop and save an episode, d Enter = discard it, q Enter = quit", flush=True)
    for line in sys.stdin:
        if not holder:
            continue
        node = holder[0]
        if node.closed:
            return
        key = line.strip().lower()
        if key == "q":
            os.kill(os.getpid(), signal.SIGINT)
            return
        if key == "d":
            ok, message = node.discard_episode()
        elif key == "":
            ok, message = node.toggle_episode()
        else:
            ok, message = False, f"unknown key {key!r}; Enter, d or q"
        print(("" if ok else "not done: ") + message, flush=True)


def run(args: argparse.Namespace) -> int:
    from dp_ros.bringup import spin_nodes
    from dp_ros.node_params import ParameterError
    from dp_ros.nodes.recorder_node import STARTUP_ERRORS, RecorderNode

    try:
        ros_arguments = node_arguments(args)
    except ParameterError as exc:
        print(f"dp-ros record: error: {exc}", file=sys.stderr)
        return 2
    holder: list = []

    def make_node():
        node = RecorderNode(cli_args=ros_arguments)
        holder.append(node)
        return node

    if not args.no_keyboard and sys.stdin.isatty():
        threading.Thread(target=_keyboard, args=(holder,), daemon=True).start()
    return spin_nodes([make_node], startup_errors=STARTUP_ERRORS)
