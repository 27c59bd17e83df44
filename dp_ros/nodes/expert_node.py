"""expert_node: the scripted expert, publishing its actions as a leader arm would.

Listens to the simulator's ``dp_ros_msgs/TaskStatus``: each new episode's seed
gives the task instance (the target position), the privileged state the expert
plans from, and the robot's joint states give its start pose. It then moves
around the pillar, on the left or the right (parameter ``side``; random by
default), publishing the joint targets as ``sensor_msgs/JointState`` on the
robot interface's ``action.topic`` at the command rate, and (``forward_commands``)
sending the same motion as commands on ``command.topic`` like a teleoperation
bridge, so the simulated arm follows. The commands go through the same safety
filter as the policy node's (a JointTrajectory carries the next 0.3 s of the
motion, so the arm keeps to its path when a command is late).

A demonstration starts ``start_delay`` seconds after each reset
(``start_on_reset``) or when ``~/start`` (std_srvs/Trigger) is called.
"""
from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from dp_ros.bringup import run_node
from dp_ros.conversions.commands import command_message, command_message_class
from dp_ros.conversions.joint_state import JointOrder, JointStateError, make_joint_state
from dp_ros.core.time_alignment import stamp_to_seconds
from dp_ros.node_params.sim import EXPERT
from dp_ros.nodes.node_tools import declare_parameters, publish_while_up, trigger_service
from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface
from dp_ros_msgs.msg import TaskStatus

from dp_ros.sim.demonstrator import Demonstrator
from dp_ros.sim.expert import ExpertConfig, ScriptedExpert
from dp_ros.sim.kinematics import scene_geometry

STARTUP_ERRORS = (RobotInterfaceError, ValueError, FileNotFoundError)


class ExpertNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("expert_node", **node_kwargs)
        p = declare_parameters(self, EXPERT)
        self.robot = load_robot_interface(p["robot_config"] or default_robot_config_path())
        expert = ScriptedExpert(scene_geometry(), ExpertConfig(duration=p["duration"]),
                                seed=p["seed"] if p["seed"] >= 0 else None)
        self.demonstrator = Demonstrator(self.robot, expert, p["side"], p["start_on_reset"],
                                         p["start_delay"])
        self._order = JointOrder(self.robot.joint_names)
        self.period = 1.0 / (p["publish_rate"] or self.robot.command_rate)

        reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        leader_topic = p["leader_topic"] or self.robot.action.topic or "/leader/joint_states"
        self._leader_pub = self.create_publisher(JointState, leader_topic, reliable)
        self._command_pub = (self.create_publisher(command_message_class(self.robot.command.type),
                                                   self.robot.command.topic, reliable)
                             if p["forward_commands"] else None)
        self.create_subscription(JointState, self.robot.joint_state_topic, self._on_joint_state, reliable)
        self.create_subscription(TaskStatus, p["task_status_topic"], self._on_status, reliable)
        self.create_service(Trigger, "~/start", trigger_service(self.start_demonstration))
        self.create_timer(self.period, self._on_timer)
        self.get_logger().info(
            f"expert ready: waiting for {p['task_status_topic']} and {self.robot.joint_state_topic}; leader "
            f"JointState on {leader_topic} at {1 / self.period:g} Hz"
            + (f", commands on {self.robot.command.topic}" if self._command_pub else "")
            + f"; side: {p['side']}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def demonstrations(self) -> int:
        return self.demonstrator.demonstrations

    def _on_status(self, msg: TaskStatus) -> None:
        note = self.demonstrator.on_task_status(msg.episode, msg.seed, msg.task, stamp_to_seconds(msg.header.stamp),
                                                msg.episode_time, self._now())
        if note:
            self.get_logger().info(note, throttle_duration_sec=10.0)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            joints = self._order.positions(msg)
        except JointStateError as exc:
            self.get_logger().warning(f"ignoring joint state: {exc}", throttle_duration_sec=5.0)
            return
        self.demonstrator.on_joint_state(stamp_to_seconds(msg.header.stamp), joints)

    def start_demonstration(self) -> str:
        message = self.demonstrator.start(self._now())
        self.get_logger().info(message)
        return message

    def _on_timer(self) -> None:
        now = self._now()
        if self.demonstrator.due_to_start(now):
            self.start_demonstration()
        leader = self.demonstrator.leader(now)
        if leader is None:
            return
        stamp = self.get_clock().now().to_msg()
        publish_while_up(self, self._leader_pub, make_joint_state(self.robot.joint_names, leader, stamp))
        command = self.demonstrator.command(now, self.period) if self._command_pub is not None else None
        if command is not None:
            publish_while_up(self, self._command_pub, command_message(
                self.robot.command.type, self.robot.joint_names, command.times_from_start, command.positions, stamp))


def main(args=None) -> int:
    return run_node(ExpertNode, "expert_node", STARTUP_ERRORS, args, needs_lerobot=False)


if __name__ == "__main__":
    sys.exit(main())
