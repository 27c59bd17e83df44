"""A tiny demo episode, recorded as `dp-ros demo` records one: the simulated arm (`dp-ros sim`) and the policy node
(a tiny random checkpoint for dp_ros's robot) run as their own processes; a LiveView in this process records
the episode's topics into an .rrd file."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from dp_ros.robot_interface import default_robot_config_path, load_robot_interface
from lerobot_fixtures import make_checkpoint
from ros_testing import change_state, python_process, ros_node, spin_until, stop_process


@dataclass
class RecordedEpisode:
    rrd: Path
    chunk_indices: list[int]
    """Chunk indices the view logged, in order."""
    chunks_produced: int
    """What the policy node's own status says it produced by the end."""
    counts: dict
    last_frame: object
    """The newest camera frame (HxWx3 uint8)."""


def record_episode(directory: Path, chunks: int = 6, checkpoint: Path | None = None, sampler: str = "ddim:4",
                   seed: int = 3, policy_params: tuple[str, ...] = ()) -> RecordedEpisode:
    """Record one episode of ``chunks`` chunks (with a tiny random checkpoint unless one is given)."""
    from dp_ros.view.sources import LiveView, new_log

    from dp_ros_msgs.msg import PolicyStatus

    robot = load_robot_interface(default_robot_config_path())
    checkpoint = checkpoint or make_checkpoint(directory / "pretrained_model", robot)
    name, _, steps = sampler.partition(":")
    sim = python_process(["-m", "dp_ros.cli.main", "sim", "--seed", str(seed)])
    policy = python_process(["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", str(checkpoint), "--no-autostart",
                             "--noise-scheduler", name, "--num-inference-steps", steps,
                             *[a for p in policy_params for a in ("--param", p)]])
    view = LiveView(robot)
    logs = []
    try:
        with ros_node("episode_client") as node:
            statuses = []
            node.create_subscription(PolicyStatus, "/policy_node/status", statuses.append, 10)
            assert spin_until(node, lambda: statuses and statuses[-1].state_name == "idle", 120), "policy node not up"
            view.start(new_log(robot, "episode_000", save_to=directory / "episode_000.rrd"))
            time.sleep(1.0)  # the node's publishers discover the view's subscriptions
            assert change_state(node, "/policy_node", "activate")
            assert spin_until(node, lambda: statuses[-1].chunks_produced >= chunks, 120), "too few chunks"
            assert change_state(node, "/policy_node", "deactivate")
            assert spin_until(node, lambda: statuses[-1].state_name == "stopped", 20)
            time.sleep(0.5)
            produced = statuses[-1].chunks_produced
        logger = view.finish()
        logger.view.close()
    finally:
        view.close()
        logs += [stop_process(policy), stop_process(sim)]
    return RecordedEpisode(directory / "episode_000.rrd", list(logger.chunk_indices), int(produced),
                           dict(logger.counts), logger.last_images["front"])
