"""train_node over real DDS: the node runs as its own process and trains a tiny policy
with LeRobot's real trainer (one process, or two through accelerate); this process
watches ~/status and calls ~/stop."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from lerobot_fixtures import make_checkpoint, make_dataset, tiny_robot
from ros_testing import call_trigger, python_process, ros_node, spin_until, stop_process
from training_fixtures import assert_checkpoints_complete, check_policy_runs, processes_mentioning, write_train_yaml

pytestmark = [pytest.mark.dds, pytest.mark.training]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", tiny_robot(size=32), episodes=2, frames=16)


def start_node(name: str, **params):
    args = ["-m", "dp_ros.nodes.train_node", "--ros-args", "-r", f"__node:={name}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    return python_process(args)


def watch_status(node, name: str) -> list:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from dp_ros_msgs.msg import TrainingStatus

    statuses: list = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(TrainingStatus, f"/{name}/status", statuses.append, qos)
    return statuses


def in_order(names: list[str], expected: list[str]) -> bool:
    it = iter(names)
    return all(any(n == e for n in it) for e in expected)


def test_node_trains_publishes_progress_and_leaves_a_runnable_checkpoint(dataset, tmp_path):
    from dp_ros_msgs.msg import TrainingStatus

    config = write_train_yaml(tmp_path / "train.yaml", dataset, steps=3, save_freq=3)
    out = tmp_path / "run"
    proc = start_node("train_a", config=config, output_dir=out, status_rate=5.0, shutdown_when_done="true")
    try:
        with ros_node("train_watch_a") as node:
            statuses = watch_status(node, "train_a")
            done = spin_until(node, lambda: statuses and statuses[-1].state_name in ("finished", "failed"), 240)
            assert done, stop_process(proc)[-3000:]
        assert proc.wait(timeout=60) == 0, "shutdown_when_done: the node should exit once training is over"
    finally:
        output = stop_process(proc)
    names = [s.state_name for s in statuses]
    final = statuses[-1]
    assert final.state == TrainingStatus.STATE_FINISHED, f"{final.message}\n{output[-3000:]}"
    assert in_order(names, ["starting", "training", "finished"]), names
    steps = [s.step for s in statuses]
    assert steps == sorted(steps) and final.step == final.total_steps == 3
    assert math.isfinite(final.loss) and final.learning_rate > 0 and final.samples_per_second > 0
    assert final.eta_seconds == 0.0
    assert Path(final.checkpoint_path) == (out / "checkpoints" / "000003" / "pretrained_model")
    check_policy_runs(out / "checkpoints" / "last" / "pretrained_model")


def test_stop_service_stops_every_process_keeping_the_last_checkpoint(dataset, tmp_path):
    """Two training processes (accelerate, gloo on this CPU): ~/status follows the main one, ~/stop ends both."""
    from dp_ros_msgs.msg import TrainingStatus

    config = write_train_yaml(tmp_path / "train.yaml", dataset, steps=1000, save_freq=2)
    out = tmp_path / "run"
    proc = start_node("train_b", config=config, output_dir=out, status_rate=5.0, num_processes=2)
    try:
        with ros_node("train_watch_b") as node:
            statuses = watch_status(node, "train_b")
            has_checkpoint = spin_until(node, lambda: statuses and statuses[-1].checkpoint_path != "", 240)
            assert has_checkpoint, stop_process(proc)[-3000:]
            response = call_trigger(node, "/train_b/stop", 10)
            assert response.success and "stopping" in response.message
            assert spin_until(node, lambda: statuses[-1].state_name in ("stopped", "failed"), 120)
            final = statuses[-1]
            assert final.state == TrainingStatus.STATE_STOPPED, final.message
            steps = [s.step for s in statuses]
            assert steps == sorted(steps), "progress must come from one process"
            assert "last checkpoint kept" in final.message
            assert proc.poll() is None, "the node stays up after a stop"
            again = call_trigger(node, "/train_b/stop", 10)
            assert not again.success and "no training is running" in again.message
    finally:
        stop_process(proc)
    assert final.step < 1000
    names = assert_checkpoints_complete(out)
    assert Path(final.checkpoint_path).parent.name == names[-1]
    check_policy_runs(Path(final.checkpoint_path))
    assert processes_mentioning(str(out)) == [], "a training process outlived the node"
    assert "Effective batch size: 4 x 2 = 8" in (out / "dp_ros_train.log").read_text()


def test_mismatch_is_reported_before_training_starts(dataset, tmp_path):
    from dp_ros_msgs.msg import TrainingStatus

    other = make_checkpoint(tmp_path / "ckpt", tiny_robot(joints=("a", "b", "c", "d"), size=32))
    config = write_train_yaml(tmp_path / "train.yaml", dataset)
    out = tmp_path / "run"
    proc = start_node("train_c", config=config, output_dir=out, pretrained_path=other)
    try:
        with ros_node("train_watch_c") as node:
            statuses = watch_status(node, "train_c")
            assert spin_until(node, lambda: bool(statuses), 60), stop_process(proc)[-3000:]
    finally:
        output = stop_process(proc)
    final = statuses[-1]
    assert final.state == TrainingStatus.STATE_FAILED
    assert "training not started" in final.message
    assert "observation.state: shape [4] in the checkpoint, [3] in the dataset" in final.message
    assert "training not started" in output
    assert not out.exists()


def test_launch_file_arguments_are_node_parameters():
    """launch/train.launch.py cannot run here (no launch_ros on PyPI): check its arguments against the node's."""
    import ast

    from dp_ros.node_params.train import TRAIN

    tree = ast.parse((Path(__file__).resolve().parent.parent / "launch" / "train.launch.py").read_text())
    declared = {"params_file"}
    for node in tree.body:  # NODE_ARGUMENTS: the node parameters offered as launch arguments
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODE_ARGUMENTS":
            declared |= set(ast.literal_eval(node.value))
    assert {"num_processes", "accelerate_config"} <= declared
    names = {param.name for param in TRAIN}
    assert declared - {"params_file"} <= names, f"launch arguments the node does not know: {declared - names}"
