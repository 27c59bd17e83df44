"""The ``dp-ros`` command: one entry point for every dp_ros tool.

Subcommands live in their own modules (``dp_ros.cli.<name>``) and are imported
only when used, so ``dp-ros --help`` answers without loading torch or rclpy.
Each module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from dp_ros.lerobot_compat import exit_unless_supported

# name -> (module, one-line help). Order is the order shown in --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dp_ros.cli.demo", "the end-to-end demo on the simulated arm: record, train, run in closed loop, report"),
    "doctor": ("dp_ros.cli.doctor", "check the installation: one ROS 2 (no mixed environment), Python, middleware and the robot's, messages, LeRobot, torch, device"),
    "run-policy": ("dp_ros.cli.run_policy", "run the policy node (a checkpoint commands the robot) without the launch system"),
    "train": ("dp_ros.cli.train", "train or fine-tune a Diffusion Policy with LeRobot (progress bar, clean stop, resume)"),
    "distill": ("dp_ros.cli.distill", "distil a trained policy into a consistency student that acts in 1-4 network calls"),
    "record": ("dp_ros.cli.record", "record demonstrations from live topics into a LeRobot dataset (recorder node, keyboard)"),
    "bag2lerobot": ("dp_ros.cli.bag2lerobot", "convert rosbag2 bags (.db3, .mcap) into a LeRobot dataset, synchronised at the robot's fps"),
    "merge-datasets": ("dp_ros.cli.merge_datasets", "merge LeRobot datasets converted in parts (cluster shards) into one, in order"),
    "lerobot2bag": ("dp_ros.cli.lerobot2bag", "write a LeRobot dataset back as a rosbag2 MCAP file (joint states, cameras, actions)"),
    "check-dataset": ("dp_ros.cli.check_dataset", "check a dataset: episode count, NaN, gaps, dropped and frozen frames, action jerk"),
    "eval": ("dp_ros.cli.evaluate", "evaluate a policy offline on held-out episodes: action MSE/MAE per joint, diversity"),
    "visualize": ("dp_ros.cli.visualize", "plot the denoising process and predicted vs demonstrated actions (PNG)"),
    "sim": ("dp_ros.cli.sim", "run the simulated arm (MuJoCo) with the ROS interface of a real one, optionally with its scripted expert"),
    "params": ("dp_ros.cli.params", "print a node's parameters as a documented parameters YAML (the defaults)"),
    "view": ("dp_ros.cli.view", "see what the policy saw, planned and executed on one timeline (Rerun): live, a bag, a dataset or a saved .rrd"),
    "bench": ("dp_ros.cli.bench", "benchmark inference against stock LeRobot: time per chunk, action error, command jitter"),
}


WITHOUT_LEROBOT = {"doctor", "params", "sim"}
"""Subcommands that run whatever LeRobot is installed (doctor reports an unsupported one)."""


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dp-ros",
        description="LeRobot Diffusion Policy from demonstrations to a moving ROS 2 robot.",
        epilog="Run 'dp-ros <command> --help' for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == selected:
            module = importlib.import_module(module_name)
            doc = (module.__doc__ or help_text).strip()
            cmd = sub.add_parser(name, help=help_text, description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
            module.add_arguments(cmd)
            cmd.set_defaults(_run=module.run)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    if selected in SUBCOMMANDS and selected not in WITHOUT_LEROBOT:
        exit_unless_supported(f"dp-ros {selected}")
    parser = build_parser(selected if selected in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv else 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("dp-ros: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
