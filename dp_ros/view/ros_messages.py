"""ROS messages of a dp_ros system -> a RerunLog, topic by topic.

Works on live rclpy messages and on messages decoded from a bag (rosbags' classes have the same fields), so the
live view, a replayed bag and the demo's saved episodes draw the same things from the same topics: the robot
interface's joint states, cameras and command topic, and the policy node's ``~/chunks``,
``~/safety_interventions`` and ``~/status`` (and the simulator's ``/task_status`` for the 3-D scene).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dp_ros.conversions.commands import CommandError, parse_command
from dp_ros.conversions.images import ImageConversionError, message_to_rgb
from dp_ros.conversions.joint_state import JointOrder, JointStateError
from dp_ros.conversions.plan import intervention_kinds, parse_chunk
from dp_ros.core.time_alignment import stamp_to_seconds
from dp_ros.robot_interface import RobotInterface
from dp_ros.view.rerun_log import RerunLog

POLICY_NAMESPACE = "/policy_node"
TASK_STATUS_TOPIC = "/task_status"


def view_topics(robot: RobotInterface, policy: str = POLICY_NAMESPACE) -> dict[str, str]:
    """Topic -> the kind of message the view expects on it."""
    topics = {robot.joint_state_topic: "joint_state", robot.command.topic: "command",
              f"{policy}/chunks": "chunk", f"{policy}/safety_interventions": "intervention",
              f"{policy}/status": "status", TASK_STATUS_TOPIC: "task_status"}
    topics.update({cam.topic: "camera" for cam in robot.cameras})
    return topics


class SimScene:
    """The simulated arm's tip and pillar (only for dp_ros's own simulated robot, whose joints it knows)."""

    def __init__(self, robot: RobotInterface):
        from dp_ros.sim.kinematics import ARM_JOINTS, SceneGeometry, load_model

        self.geometry = SceneGeometry.from_model(load_model())
        self.arm = [robot.joint_names.index(name) for name in ARM_JOINTS]
        self.seed: int | None = None

    @staticmethod
    def applies(robot: RobotInterface) -> bool:
        from dp_ros.sim.kinematics import ARM_JOINTS

        return all(name in robot.joint_names for name in ARM_JOINTS)

    def tip(self, positions: np.ndarray) -> np.ndarray:
        return self.geometry.forward(np.asarray(positions)[self.arm])

    def target(self, seed: int):
        from dp_ros.sim.task import TaskConfig, TaskInstance

        return TaskInstance.sample(seed, self.geometry, TaskConfig()).target


class RosMessageLogger:
    """Feeds one message at a time (``handle``) into a RerunLog."""

    def __init__(self, view: RerunLog, robot: RobotInterface, policy: str = POLICY_NAMESPACE,
                 warn: Callable[[str], None] = print):
        self.view, self.robot = view, robot
        self.topics = view_topics(robot, policy)
        self.cameras = {cam.topic: cam.name for cam in robot.cameras}
        self.order = JointOrder(robot.joint_names)
        self.warn = warn
        self.counts: dict[str, int] = {}
        self.chunk_indices: list[int] = []
        self.last_images: dict = {}
        """The newest frame of each camera (what the view shows at the end of the timeline)."""
        self.scene = SimScene(robot) if view.layout.scene else None
        if self.scene is not None:
            g = self.scene.geometry
            view.scene(g.obstacle_xy, g.obstacle_radius, g.obstacle_height, None)

    def handle(self, topic: str, msg: Any, received: float) -> None:
        """Log ``msg`` of ``topic``, received (or recorded) at ``received`` seconds."""
        kind = self.topics.get(topic)
        if kind is None:
            return
        try:
            getattr(self, f"_{kind}")(topic, msg, received)
        except (CommandError, ImageConversionError, JointStateError, ValueError) as exc:
            self.warn(f"dp-ros view: skipped a message on {topic}: {exc}")
            return
        self.counts[kind] = self.counts.get(kind, 0) + 1

    @staticmethod
    def _stamp(msg: Any, received: float) -> float:
        stamp = stamp_to_seconds(msg.header.stamp) if hasattr(msg, "header") else 0.0
        return stamp if stamp > 0 else received

    def _joint_state(self, topic, msg, received) -> None:
        t, positions = self._stamp(msg, received), self.order.positions(msg)
        self.view.joint_state(t, positions)
        if self.scene is not None:
            self.view.tip(t, self.scene.tip(positions))

    def _camera(self, topic, msg, received) -> None:
        rgb = message_to_rgb(msg)
        self.last_images[self.cameras[topic]] = rgb
        self.view.image(self._stamp(msg, received), self.cameras[topic], rgb)

    def _command(self, topic, msg, received) -> None:
        command = parse_command(msg, self.order)
        start = command.stamp if command.stamp is not None else received
        self.view.command(start, command.times_from_start, command.positions)

    def _chunk(self, topic, msg, received) -> None:
        chunk = parse_chunk(msg)
        self.chunk_indices.append(chunk.index)
        self.view.chunk(chunk)

    def _intervention(self, topic, msg, received) -> None:
        self.view.intervention(self._stamp(msg, received), intervention_kinds(msg), float(msg.largest_change))

    def _status(self, topic, msg, received) -> None:
        self.view.status(self._stamp(msg, received), msg.state_name, msg.reason)

    def _task_status(self, topic, msg, received) -> None:
        if self.scene is not None and self.scene.seed != int(msg.seed):
            self.scene.seed = int(msg.seed)
            g = self.scene.geometry
            self.view.scene(g.obstacle_xy, g.obstacle_radius, g.obstacle_height, self.scene.target(int(msg.seed)))
