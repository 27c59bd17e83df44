"""recorder_node over real DDS: live topics from another process, services, status, SIGKILL, resume.

The recorder runs as its own process (python -m dp_ros.nodes.recorder_node),
the robot's drivers and leader arm as another (recorder_inputs_publisher.py);
this test process calls the services and reads ~/status. The dataset written
is loaded with LeRobotDataset.
"""
from __future__ import annotations

import pytest
import signal
import uuid

import numpy as np
import yaml

from ros_testing import call_trigger, python_process, ros_node, spin_for, spin_until, stop_process

pytestmark = pytest.mark.dds


CAMERAS = [{"name": "front", "type": "image"}, {"name": "wrist", "type": "compressed"}]


def _robot_yaml(tmp_path) -> tuple[str, str]:
    prefix = f"/rec_{uuid.uuid4().hex[:8]}"
    data = {
        "name": "tiny_recorded_arm", "control_rate": 10, "command_rate": 10,
        "joint_state_topic": f"{prefix}/joint_states",
        "joints": [{"name": j, "position_limits": [-2.0, 2.0], "velocity_limit": 3.0} for j in ("j1", "j2", "j3")],
        "cameras": [{**cam, "topic": f"{prefix}/camera/{cam['name']}", "width": 40, "height": 32} for cam in CAMERAS],
        "command": {"topic": f"{prefix}/command", "type": "joint_trajectory"},
        "action": {"source": "leader", "topic": f"{prefix}/leader/joint_states"},
    }
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path), prefix


def _start_recorder(robot_yaml: str, root, *extra: str):
    return python_process(["-m", "dp_ros.nodes.recorder_node", "--ros-args", "-p", f"robot_config:={robot_yaml}",
                           "-p", f"dataset_root:={root}", "-p", "task:=wave hello", *extra])


def _start_publisher(robot_yaml: str):
    import subprocess

    proc = python_process(["test/recorder_inputs_publisher.py", robot_yaml], stdin=subprocess.PIPE)
    assert "ready" in proc.stdout.readline()
    return proc


def _command(publisher, text: str) -> None:
    publisher.stdin.write(text + "\n")
    publisher.stdin.flush()
    assert publisher.stdout.readline().startswith("done")


class RecorderClient:
    """Service clients and the latest ~/status of one recorder_node."""

    def __init__(self, node):
        from dp_ros_msgs.msg import RecorderStatus
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        self.node = node
        self.status = None
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(RecorderStatus, "/recorder_node/status", self._on_status, qos)

    def _on_status(self, msg) -> None:
        self.status = msg

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert spin_until(self.node, lambda: self.status is not None, timeout), "recorder_node did not come up"

    def wait_status(self, predicate, timeout: float = 60.0):
        assert spin_until(self.node, lambda: self.status is not None and predicate(self.status), timeout), \
            f"status never matched; last: {self.status}"
        return self.status

    def call(self, name: str):
        return call_trigger(self.node, f"/recorder_node/{name}", 30)


def _load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/test", root=root)


def test_records_live_topics_keeps_saved_episodes_after_sigkill_and_resumes(tmp_path):
    robot_yaml, _ = _robot_yaml(tmp_path)
    root = tmp_path / "demos"
    publisher = _start_publisher(robot_yaml)
    recorder = _start_recorder(robot_yaml, root, "-p", "min_frames:=3")
    try:
        with ros_node("recorder_test_client") as node:
            client = RecorderClient(node)
            client.wait_ready()
            assert client.status.state_name == "idle" and client.status.dataset_root == str(root)
            spin_for(node, 0.5)

            assert client.call("start_episode").success
            spin_for(node, 1.5)
            stopped = client.call("stop_episode")
            assert stopped.success and "queued for saving" in stopped.message, stopped.message
            started = client.call("start_episode")  # at once: saving happens in the background
            assert started.success and "episode 1" in started.message, started.message
            spin_for(node, 1.2)
            assert client.call("stop_episode").success
            client.wait_status(lambda s: s.episodes_saved == 2 and s.state_name == "idle")

            assert client.call("start_episode").success
            status = client.wait_status(lambda s: s.frames_in_episode >= 5)
            assert status.state_name == "recording" and status.episode_index == 2 and status.disk_bytes > 0
            recorder.send_signal(signal.SIGKILL)
            recorder.wait(10)

        dataset = _load(root)  # as the crash left it
        assert dataset.num_episodes == 2 and dataset.fps == 10
        lengths = [int(dataset.meta.episodes[i]["length"]) for i in range(2)]
        assert 12 <= lengths[0] <= 17 and 9 <= lengths[1] <= 14, lengths
        assert dataset.features["observation.state"]["names"] == ["j1", "j2", "j3"]
        item = dataset[0]
        assert item["observation.images.front"].shape == (3, 32, 40)
        assert item["observation.images.wrist"].shape == (3, 32, 40)
        assert item["task"] == "wave hello"
        states = np.stack([dataset[i]["observation.state"].numpy() for i in range(len(dataset))])
        actions = np.stack([dataset[i]["action"].numpy() for i in range(len(dataset))])
        # joints were published in reverse order: reordered by name, joint k follows 0.5 sin(1.3 t + k)
        assert np.all(np.abs(states) <= 0.5 + 1e-6) and np.ptp(states[:, 0]) > 0.05
        assert np.abs(actions - states - 0.05).max() < 0.03  # the leader: state + 0.05, sampled at the same times

        recorder = _start_recorder(robot_yaml, root, "-p", "min_frames:=3")
        with ros_node("recorder_test_client2") as node:
            client = RecorderClient(node)
            client.wait_ready()
            status = client.status
            assert (status.episodes_saved, status.episode_index) == (2, 2) and "continuing" in status.message
            assert client.call("start_episode").success
            spin_for(node, 1.0)
            assert client.call("stop_episode").success
            client.wait_status(lambda s: s.episodes_saved == 3 and s.state_name == "idle")
        output = stop_process(recorder, timeout=60)
        assert recorder.returncode == 0, output
    finally:
        stop_process(recorder)
        stop_process(publisher)
    dataset = _load(root)
    assert dataset.num_episodes == 3
    assert int(dataset[len(dataset) - 1]["episode_index"]) == 2
    assert not (root / "images").exists() and not list(root.glob("tmp*"))


def test_stale_inputs_and_malformed_messages_are_reported_not_fatal(tmp_path):
    robot_yaml, _ = _robot_yaml(tmp_path)
    root = tmp_path / "demos"
    publisher = _start_publisher(robot_yaml)
    recorder = _start_recorder(robot_yaml, root, "-p", "max_input_age:=0.3", "-p", "min_frames:=3")
    try:
        with ros_node("recorder_test_client3") as node:
            client = RecorderClient(node)
            client.wait_ready()
            assert not client.call("stop_episode").success
            assert not client.call("discard_episode").success
            spin_for(node, 0.5)
            assert client.call("start_episode").success
            assert not client.call("start_episode").success
            spin_for(node, 0.8)
            _command(publisher, "stall front")
            client.wait_status(lambda s: s.frames_dropped >= 3)
            _command(publisher, "resume front")
            _command(publisher, "bad_encoding")
            _command(publisher, "bad_joints")
            spin_for(node, 1.0)
            _command(publisher, "ok")
            spin_for(node, 1.0)
            stopped = client.call("stop_episode")  # the stall split the episode: two episodes, true times in each
            assert stopped.success and "split 1 times" in stopped.message and "front" in stopped.message, stopped.message
            client.wait_status(lambda s: s.episodes_saved == 2)
            assert client.call("start_episode").success
            spin_for(node, 0.6)
            discarded = client.call("discard_episode")
            assert discarded.success and "discarded" in discarded.message
            client.wait_status(lambda s: s.state_name == "idle")
        assert recorder.poll() is None  # still alive after malformed messages
        output = stop_process(recorder, timeout=60)
        assert "ignoring a message on" in output and "32FC1" in output, output[-3000:]
        assert "lacks joints" in output
    finally:
        stop_process(recorder)
        stop_process(publisher)
    dataset = _load(root)
    assert dataset.num_episodes == 2
    for episode in range(2):  # every frame one period after the previous one: nothing closed up
        times = [dataset[i]["timestamp"].item() for i in range(len(dataset)) if int(dataset[i]["episode_index"]) == episode]
        np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-4)
