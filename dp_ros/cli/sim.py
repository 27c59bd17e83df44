"""Run the simulated arm (and optionally its scripted expert) without the launch system.

The same nodes and parameters as `ros2 launch dp_ros sim.launch.py`: sim_node
simulates the arm of the robot interface YAML in MuJoCo in real time and
publishes its joint states, camera images and task status; with --expert,
expert_node runs in the same process and demonstrates the task after every
reset, publishing its actions as a leader arm would (and commanding the arm).
Every parameter of config/sim.yaml can be given with --params-file or --param.

The task: bring the arm's tip to the red target behind the blue pillar,
passing it on the left or the right (two equally good solutions).

Examples:
  dp-ros sim --expert --auto-reset          # watch the expert, episode after episode
  dp-ros sim --publish-clock --seed 3        # for use_sim_time users, reproducible tasks
  dp-ros sim --evaluate-expert 50            # offline: the expert's success rate over 50 seeds
  ros2 service call /sim_node/reset std_srvs/srv/Trigger   # a new task instance
"""
from __future__ import annotations

import argparse

SIDES = ("random", "alternate", "left", "right")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot-config", default="", help="robot interface YAML (default: dp_ros's config/robot.yaml)")
    parser.add_argument("--params-file", default="",
                        help="ROS 2 parameters YAML for sim_node and expert_node (default: dp_ros's config/sim.yaml)")
    parser.add_argument("--expert", action="store_true", help="also run the scripted expert (expert_node)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the task instances (and of the expert's left/right choices); default random")
    parser.add_argument("--side", choices=SIDES, default=None,
                        help="expert: which way around the pillar (default random, per episode)")
    parser.add_argument("--start-delay", type=float, default=None,
                        help="expert: seconds between a reset and the start of its motion (default 0.3)")
    parser.add_argument("--no-forward", action="store_true",
                        help="expert: publish the leader JointState only, do not command the arm")
    parser.add_argument("--auto-reset", action="store_true",
                        help="start a new episode after each success or time limit")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per episode for success (default 8)")
    parser.add_argument("--camera-rate", type=float, default=None, help="camera frames per second (default 15; 0 = none)")
    parser.add_argument("--joint-state-rate", type=float, default=None, help="JointState messages per second (default 100)")
    parser.add_argument("--publish-clock", action="store_true", help="publish /clock and stamp in simulated time")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any sim_node parameter, e.g. --param status_rate=20 (repeatable)")
    parser.add_argument("--expert-param", action="append", default=[], metavar="NAME=VALUE",
                        help="any expert_node parameter, e.g. --expert-param duration=3.0 (repeatable)")
    parser.add_argument("--evaluate-expert", type=int, default=0, metavar="N",
                        help="no ROS: run the expert offline on N task instances, print its success rate and exit")


def _default_params_file() -> str:
    from dp_ros.robot_interface import default_robot_config_path

    path = default_robot_config_path().parent / "sim.yaml"
    return str(path) if path.is_file() else ""


def node_parameters(args: argparse.Namespace) -> tuple[dict, dict]:
    """The parameters of sim_node and expert_node: file, then options, then --param pairs."""
    from dp_ros.bringup import load_params_file, parse_assignments

    params_file = args.params_file or _default_params_file()
    sim = load_params_file(params_file, "sim_node") if params_file else {}
    expert = load_params_file(params_file, "expert_node") if params_file else {}
    for values in (sim, expert):
        if args.robot_config:
            values["robot_config"] = args.robot_config
        if args.seed is not None:
            values["seed"] = args.seed
    for name, value in (("time_limit", args.time_limit), ("camera_rate", args.camera_rate),
                        ("joint_state_rate", args.joint_state_rate)):
        if value is not None:
            sim[name] = value
    if args.auto_reset:
        sim["auto_reset"] = True
    if args.publish_clock:
        sim["publish_clock"] = True
        expert["use_sim_time"] = True
    if args.side is not None:
        expert["side"] = args.side
    if args.start_delay is not None:
        expert["start_delay"] = args.start_delay
    if args.no_forward:
        expert["forward_commands"] = False
    sim.update(parse_assignments(args.param))
    expert.update(parse_assignments(args.expert_param))
    if "task_status_topic" in sim and "task_status_topic" not in parse_assignments(args.expert_param):
        expert["task_status_topic"] = sim["task_status_topic"]   # the expert listens where the simulator speaks
    return sim, expert


def evaluate(args: argparse.Namespace) -> int:
    from dp_ros.robot_interface import default_robot_config_path, load_robot_interface
    from dp_ros.sim.expert import evaluate_expert

    robot = load_robot_interface(args.robot_config or default_robot_config_path())
    first = args.seed if args.seed is not None else 0
    side = args.side or "random"
    sides = None if side == "random" else [
        (("left", "right")[i % 2] if side == "alternate" else side) for i in range(args.evaluate_expert)]
    evaluation = evaluate_expert(range(first, first + args.evaluate_expert), sides=sides, robot=robot,
                                 expert_seed=first)
    for episode in evaluation.episodes:
        outcome = f"success after {episode.success_time:.2f} s" if episode.success else (
            "touched the pillar" if episode.collided else "did not reach the target")
        print(f"  seed {episode.seed:>5}: {episode.side:>5}, {outcome}")
    print(evaluation.summary())
    return 0 if evaluation.success_rate == 1.0 else 1


def _stop_after(seconds: float):
    """A node whose one-shot timer ends the run after ``seconds``, the way Ctrl-C does."""
    import os
    import signal

    import rclpy
    from rclpy.clock import Clock, ClockType

    node = rclpy.create_node("dp_ros_sim_duration")

    def stop():
        timer.cancel()
        os.kill(os.getpid(), signal.SIGINT)

    timer = node.create_timer(seconds, stop, clock=Clock(clock_type=ClockType.STEADY_TIME))
    return node


def run(args: argparse.Namespace) -> int:
    if args.evaluate_expert:
        return evaluate(args)
    import sys

    from dp_ros.bringup import BringupError, parameter_overrides, spin_nodes
    from dp_ros.nodes.expert_node import STARTUP_ERRORS as EXPERT_ERRORS, ExpertNode
    from dp_ros.nodes.sim_node import STARTUP_ERRORS as SIM_ERRORS, SimNode

    try:
        sim_values, expert_values = node_parameters(args)
    except BringupError as exc:
        print(f"dp-ros sim: {exc}", file=sys.stderr)
        return 2
    factories = [lambda: SimNode(parameter_overrides=parameter_overrides(sim_values))]
    if args.expert:
        factories.append(lambda: ExpertNode(parameter_overrides=parameter_overrides(expert_values)))
    if args.duration > 0:
        factories.append(lambda: _stop_after(args.duration))
    return spin_nodes(factories, startup_errors=SIM_ERRORS + EXPERT_ERRORS + (BringupError,))
