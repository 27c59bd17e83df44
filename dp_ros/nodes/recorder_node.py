"""recorder_node: record demonstrations from live topics into a LeRobot dataset.

Subscribes to the joint states and cameras of the robot interface and to the
demonstrated action (a leader arm's JointState, the command topic, or the next
observed state). During an episode it takes frames at the dataset fps from the
latest data at or before each frame time; a frame with a stale or missing input
is never written, and the episode is split there (or discarded, ``on_stale``),
so the dataset's timestamps stay true time. Services (std_srvs/Trigger):
``~/start_episode``, ``~/stop_episode`` (saves it), ``~/discard_episode``;
``~/status`` (dp_ros_msgs/RecorderStatus) tells the episode, its frames, the
frames dropped and the disk used. Saving runs in the background, so the next
episode can start at once. A saved episode survives a crash, and a restart
continues the same dataset.
"""
from __future__ import annotations

import sys
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_srvs.srv import Trigger

from dp_ros.conversions.commands import CommandError, command_message_class, parse_command
from dp_ros.conversions.images import ImageConversionError, message_to_rgb
from dp_ros.conversions.joint_state import JointOrder, JointStateError
from dp_ros.core.choices import StampSource
from dp_ros.core.log_throttle import LogThrottle
from dp_ros.core.time_alignment import stamp_to_seconds
from dp_ros.data.datasets.dataset_writer import DatasetWriterError
from dp_ros.data.datasets.recording import STATE_CODES, RecorderSettings, RecorderStatus, RecordingSession
from dp_ros.node_params.recorder import RECORDER
from dp_ros.nodes.node_tools import declare_parameters, trigger_service
from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface
from dp_ros_msgs.msg import RecorderStatus as RecorderStatusMsg

WARNING_INTERVAL = 5.0
STARTUP_ERRORS = (RobotInterfaceError, DatasetWriterError, ValueError, FileNotFoundError)



def recorder_status_msg(status: RecorderStatus, stamp=None) -> RecorderStatusMsg:
    """A dp_ros_msgs/RecorderStatus for a recording session's status."""
    msg = RecorderStatusMsg(state=STATE_CODES[status.state], state_name=status.state, message=status.message,
                            dataset_root=status.dataset_root, episode_index=int(status.episode_index),
                            episodes_saved=int(status.episodes_saved), frames_in_episode=int(status.frames_in_episode),
                            frames_dropped=int(status.frames_dropped), splits=int(status.splits),
                            disk_bytes=int(status.disk_bytes))
    if stamp is not None:
        msg.header.stamp = stamp
    return msg

class RecorderNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("recorder_node", **node_kwargs)
        p = declare_parameters(self, RECORDER)
        self.use_header = p["time_source"] == StampSource.HEADER
        self.robot = load_robot_interface(p["robot_config"] or default_robot_config_path())
        settings = RecorderSettings(
            dataset_root=Path(p["dataset_root"]).expanduser(), task=p["task"],
            action_source=p["action_source"], max_input_age=p["max_input_age"],
            on_stale=p["on_stale"], min_frames=p["min_frames"],
            max_episode_seconds=p["max_episode_seconds"], repo_id=p["repo_id"])
        self.session = RecordingSession(self.robot, settings, log=self._log)
        self.order = JointOrder(self.robot.joint_names)
        self._warnings = LogThrottle(WARNING_INTERVAL)

        qos = qos_profile_sensor_data
        if p["input_reliability"] == "reliable":
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        from sensor_msgs.msg import CompressedImage, Image, JointState

        self.create_subscription(JointState, self.robot.joint_state_topic, self._on_joint_state, qos)
        for cam in self.robot.cameras:
            msg_type = CompressedImage if cam.type == "compressed" else Image
            self.create_subscription(msg_type, cam.topic, lambda msg, cam=cam: self._on_image(cam, msg), qos)
        source = self.session.action_source
        if source == "leader":
            topic = p["action_topic"] or self.robot.action.topic
            self.create_subscription(JointState, topic, self._on_leader, qos)
        elif source == "command":
            topic = p["action_topic"] or self.robot.command.topic
            self.create_subscription(command_message_class(self.robot.command.type), topic, self._on_command, qos)
        else:
            topic = "(the next joint state)"

        from dp_ros_msgs.msg import RecorderStatus

        status_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.status_pub = self.create_publisher(RecorderStatus, "~/status", status_qos)
        self.create_service(Trigger, "~/start_episode", trigger_service(self.start_episode))
        self.create_service(Trigger, "~/stop_episode", trigger_service(self.stop_episode))
        self.create_service(Trigger, "~/discard_episode", trigger_service(self.discard_episode))
        self.create_timer(0.5 / self.robot.fps, self._on_tick)
        self.create_timer(1.0 / max(0.1, p["status_rate"]), self._publish_status)
        self._publish_status()
        self.get_logger().info(
            f"{self.session.status().message}; {self.robot.fps} fps, action from {source} {topic}, cameras "
            f"{[c.topic for c in self.robot.cameras]}, joint states {self.robot.joint_state_topic}. "
            f"Call ~/start_episode to record.")

    # --- time -------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp(self, msg) -> float:
        if self.use_header and hasattr(msg, "header"):
            stamp = stamp_to_seconds(msg.header.stamp)
            if stamp > 0:
                return stamp
        return self._now()

    # --- inputs -------------------------------------------------------------------------------
    def _on_joint_state(self, msg) -> None:
        try:
            self.session.add_state(self._stamp(msg), self.order.positions(msg))
        except JointStateError as exc:
            self._bad_input(self.robot.joint_state_topic, exc)

    def _on_image(self, cam, msg) -> None:
        try:
            self.session.add_image(cam.name, self._stamp(msg), message_to_rgb(msg, cam.width, cam.height))
        except ImageConversionError as exc:
            self._bad_input(cam.topic, exc)

    def _on_leader(self, msg) -> None:
        try:
            self.session.add_action(self._stamp(msg), self.order.positions(msg))
        except JointStateError as exc:
            self._bad_input("leader joint states", exc)

    def _on_command(self, msg) -> None:
        try:
            self.session.add_action(self._stamp(msg), parse_command(msg, self.order).positions[0])
        except CommandError as exc:
            self._bad_input("commands", exc)

    def _bad_input(self, topic: str, exc: Exception) -> None:
        if self._warnings.ready(topic):
            self.get_logger().warning(f"ignoring a message on {topic}: {exc}")

    # --- timers and services ---------------------------------------------------------------
    def _on_tick(self) -> None:
        self.session.tick(self._now())

    def _publish_status(self) -> None:
        if rclpy.ok(context=self.context):
            self.status_pub.publish(recorder_status_msg(self.session.status(), self.get_clock().now().to_msg()))

    # --- episodes: the services and the keyboard of dp-ros record ----------------------------
    def start_episode(self) -> tuple[bool, str]:
        return self._report(self.session.start_episode(self._now()))

    def stop_episode(self) -> tuple[bool, str]:
        """Stop the episode and save it."""
        self.session.tick(self._now())
        return self._report(self.session.stop_episode())

    def discard_episode(self) -> tuple[bool, str]:
        return self._report(self.session.discard_episode())

    def toggle_episode(self) -> tuple[bool, str]:
        """Start an episode, or stop and save the one being recorded."""
        return self.stop_episode() if self.session.status().state == "recording" else self.start_episode()

    @property
    def closed(self) -> bool:
        """True once the node is destroyed (its dataset released)."""
        return self.session is None

    def _report(self, result: tuple[bool, str]) -> tuple[bool, str]:
        self._publish_status()
        return result

    def _log(self, level: str, message: str) -> None:
        # one call site per severity: rclpy refuses a call site whose severity changes
        if level == "error":
            self.get_logger().error(message)
        elif level == "warn":
            self.get_logger().warning(message)
        else:
            self.get_logger().info(message)

    def destroy_node(self):
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
            self.session = None
        return super().destroy_node()


def main(args=None) -> int:
    from dp_ros.bringup import run_node

    return run_node(RecorderNode, "recorder_node", STARTUP_ERRORS, args)


if __name__ == "__main__":
    sys.exit(main())
