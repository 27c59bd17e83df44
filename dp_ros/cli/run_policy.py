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

from dp_ros.core.samplers import SAMPLERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="LeRobot checkpoint: the pretrained_model folder (or a training run's output folder)")
    parser.add_argument("--robot-config", default="", help="robot interface YAML (default: dp_ros's config/robot.yaml)")
    parser.add_argument("--params-file", default="", help="ROS 2 parameters YAML for policy_node (e.g. config/policy.yaml)")
    parser.add_argument("--device", default=None, help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--noise-scheduler", default=None, choices=list(SAMPLERS),
                        help="sampler (default: the checkpoint's)")
    parser.add_argument("--num-inference-steps", type=int, default=None, help="denoising steps per chunk")
    parser.add_argument("--n-action-steps", type=int, default=None, help="actions used from each chunk")
    parser.add_argument("--no-autostart", action="store_true", help="wait for ~/start before commanding")
    parser.add_argument("--use-sim-time", action="store_true", help="follow /clock (simulation)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any policy_node parameter, e.g. --param transition=ensemble (repeatable)")


def node_parameters(args: argparse.Namespace) -> dict:
    from dp_ros.bringup import load_params_file, parse_assignments

    values = load_params_file(args.params_file, "policy_node") if args.params_file else {}
    values.update({"checkpoint": args.checkpoint, "robot_config": args.robot_config})
    for name, value in (("device", args.device), ("noise_scheduler", args.noise_scheduler),
                        ("num_inference_steps", args.num_inference_steps), ("n_action_steps", args.n_action_steps)):
        if value is not None:
            values[name] = value
    if args.no_autostart:
        values["autostart"] = False
    if args.use_sim_time:
        values["use_sim_time"] = True
    values.update(parse_assignments(args.param))
    return values


def run(args: argparse.Namespace) -> int:
    from dp_ros.bringup import parameter_overrides, spin_nodes
    from dp_ros.nodes.policy_node import STARTUP_ERRORS, PolicyNode

    overrides = parameter_overrides(node_parameters(args))
    return spin_nodes([lambda: PolicyNode(parameter_overrides=overrides)], startup_errors=STARTUP_ERRORS)
