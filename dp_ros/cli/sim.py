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

SHARED = ("robot_config", "seed")  # one option sets both nodes' parameter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dp_ros.node_params.sim import EXPERT, SIM

    parser.add_argument("--params-file", default="",
                        help="ROS 2 parameters YAML for sim_node and expert_node (default: dp_ros's config/sim.yaml); "
                             "options below override it")
    parser.add_argument("--expert", action="store_true", help="also run the scripted expert (expert_node)")
    SIM.add_options(parser, "sim_node parameters (--robot-config and --seed also set expert_node's)")
    EXPERT.add_options(parser, "expert_node parameters", shared=SHARED)
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


def node_arguments(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The ROS arguments of sim_node and expert_node: file, then options, then --param pairs."""
    from dp_ros.node_params.sim import EXPERT, SIM

    params_file = args.params_file or _default_params_file()
    sim, expert = SIM.option_values(args), EXPERT.option_values(args)
    if args.publish_clock:
        expert["use_sim_time"] = True
    expert_pairs = list(args.expert_param)
    status_topics = [pair for pair in args.param if pair.partition("=")[0].strip() == "task_status_topic"]
    if status_topics and not any(p.partition("=")[0].strip() == "task_status_topic" for p in expert_pairs):
        expert_pairs = status_topics[-1:] + expert_pairs   # the expert listens where the simulator speaks
    return (SIM.ros_arguments(params_file, sim, args.param),
            EXPERT.ros_arguments(params_file, expert, expert_pairs))


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

    from dp_ros.bringup import spin_nodes
    from dp_ros.node_params import ParameterError
    from dp_ros.nodes.expert_node import STARTUP_ERRORS as EXPERT_ERRORS, ExpertNode
    from dp_ros.nodes.sim_node import STARTUP_ERRORS as SIM_ERRORS, SimNode

    try:
        sim_arguments, expert_arguments = node_arguments(args)
    except ParameterError as exc:
        print(f"dp-ros sim: {exc}", file=sys.stderr)
        return 2
    factories = [lambda: SimNode(cli_args=sim_arguments)]
    if args.expert:
        factories.append(lambda: ExpertNode(cli_args=expert_arguments))
    if args.duration > 0:
        factories.append(lambda: _stop_after(args.duration))
    return spin_nodes(factories, startup_errors=SIM_ERRORS + EXPERT_ERRORS)
