"""Run the policy node without the launch system (the pip route).

Same node and parameters as `ros2 launch dp_ros policy.launch.py`: a LeRobot
Diffusion Policy checkpoint commands the robot described by the robot
interface YAML. Every parameter of config/policy.yaml can be given with
--params-file or --param name=value.

Example:
  dp-ros run-policy --checkpoint outputs/train/checkpoints/last/pretrained_model \\
      --noise-scheduler ddim --num-inference-steps 10
"""
from __future__ import annotations

import argparse



def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dp_ros.node_params.policy import POLICY

    parser.add_argument("--params-file", default="",
                        help="ROS 2 parameters YAML for policy_node (e.g. config/policy.yaml); options below override it")
    POLICY.add_options(parser, "policy_node parameters", required=("checkpoint",))
    parser.add_argument("--use-sim-time", action="store_true", help="follow /clock (simulation)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any policy_node parameter, e.g. --param transition=ensemble (repeatable)")


def node_arguments(args: argparse.Namespace) -> list[str]:
    """policy_node's ROS arguments: the parameters file, then the options, then --param pairs."""
    from dp_ros.node_params.policy import POLICY

    return POLICY.command_line_arguments(args)


def run(args: argparse.Namespace) -> int:
    import sys

    from dp_ros.bringup import spin_nodes
    from dp_ros.node_params import ParameterError
    from dp_ros.nodes.policy_node import STARTUP_ERRORS, started_node

    try:
        ros_arguments = node_arguments(args)
    except ParameterError as exc:
        print(f"dp-ros run-policy: {exc}", file=sys.stderr)
        return 2
    return spin_nodes([lambda: started_node(cli_args=ros_arguments)], startup_errors=STARTUP_ERRORS)
