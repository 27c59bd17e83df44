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

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from dp_ros.bringup import run_node
from dp_ros.conversions.commands import command_message, command_message_class
from dp_ros.conversions.joint_state import JointOrder, JointStateError, make_joint_state
from dp_ros.core.command_shaping import CommandSettings, CommandShaper
from dp_ros.core.safety import SafetyFilter
from dp_ros.core.time_alignment import stamp_to_seconds
from dp_ros.nodes.node_tools import declare_parameters, publish_while_up
from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface
from dp_ros_msgs.msg import TaskStatus

from dp_ros.sim.expert import ExpertConfig, ExpertPlan, ScriptedExpert
from dp_ros.sim.kinematics import ARM_JOINTS, scene_geometry
from dp_ros.sim.task import SOLUTIONS, TASK_NAME, TaskInstance

SIDE_CHOICES = ("random", "alternate") + SOLUTIONS
PARAMETERS: dict[str, tuple[object, str]] = {
    "robot_config": ("", "robot interface YAML; empty = dp_ros's config/robot.yaml"),
    "seed": (-1, "seed of the random left/right choices; -1 = random"),
    "side": ("random", "which way around the pillar: random (per episode), alternate, left or right"),
    "start_on_reset": (True, "start a demonstration by itself after each reset of the simulator"),
    "start_delay": (0.3, "seconds between the reset and the start of the motion"),
    "duration": (2.5, "seconds the motion from the start pose to the target takes"),
    "forward_commands": (True, "also send the targets as commands on the robot's command topic (teleop bridge)"),
    "publish_rate": (0.0, "leader JointState messages per second; 0 = the robot interface's command_rate"),
    "leader_topic": ("", "topic of the leader JointState; empty = the robot interface's action.topic"),
    "task_status_topic": ("/task_status", "the simulator's dp_ros_msgs/TaskStatus topic"),
}
STARTUP_ERRORS = (RobotInterfaceError, ValueError, FileNotFoundError)
COMMAND_HORIZON = 0.3  # seconds of the motion each forwarded trajectory carries
JOIN_MARGIN = 2.0  # an episode first seen later than start_delay + this after its reset is not demonstrated


class ExpertNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("expert_node", **node_kwargs)
        p = declare_parameters(self, PARAMETERS)
        if p["side"] not in SIDE_CHOICES:
            raise ValueError(f"parameter side must be one of {SIDE_CHOICES}, got {p['side']!r}")
        if not p["duration"] > 0 or p["start_delay"] < 0:
            raise ValueError("parameters duration must be positive and start_delay >= 0")
        self.robot = load_robot_interface(p["robot_config"] or default_robot_config_path())
        self.geometry = scene_geometry()
        self.expert = ScriptedExpert(self.geometry, ExpertConfig(duration=float(p["duration"])),
                                     seed=p["seed"] if p["seed"] >= 0 else None)
        self._side_mode = p["side"]
        self._start_on_reset = bool(p["start_on_reset"])
        self._start_delay = float(p["start_delay"])
        self._order = JointOrder(self.robot.joint_names)
        self._arm_index = [self.robot.joint_names.index(n) for n in ARM_JOINTS]
        self.period = 1.0 / (p["publish_rate"] or self.robot.command_rate)

        self._episode: int | None = None
        self._task: TaskInstance | None = None
        self._reset_stamp = 0.0
        self._joints: np.ndarray | None = None
        self._joints_stamp = 0.0
        self._shaper = CommandShaper(CommandSettings.for_robot(self.robot), SafetyFilter.for_robot(self.robot))
        self._hold: np.ndarray | None = None
        self._plan: ExpertPlan | None = None
        self._plan_start = 0.0
        self._start_at: float | None = None
        self.demonstrations = 0

        reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        leader_topic = p["leader_topic"] or self.robot.action.topic or "/leader/joint_states"
        self._leader_pub = self.create_publisher(JointState, leader_topic, reliable)
        self._command_pub = (self.create_publisher(command_message_class(self.robot.command.type),
                                                   self.robot.command.topic, reliable)
                             if p["forward_commands"] else None)
        self.create_subscription(JointState, self.robot.joint_state_topic, self._on_joint_state, reliable)
        self.create_subscription(TaskStatus, p["task_status_topic"], self._on_status, reliable)
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_timer(self.period, self._on_timer)
        self.get_logger().info(
            f"expert ready: waiting for {p['task_status_topic']} and {self.robot.joint_state_topic}; leader "
            f"JointState on {leader_topic} at {1 / self.period:g} Hz"
            + (f", commands on {self.robot.command.topic}" if self._command_pub else "")
            + f"; side: {self._side_mode}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs ----------------------------------------------------------------------
    def _on_status(self, msg: TaskStatus) -> None:
        if msg.episode == self._episode:
            return
        if msg.task != TASK_NAME:
            self.get_logger().warning(f"the simulator runs task {msg.task!r}; this expert solves {TASK_NAME!r}",
                                      throttle_duration_sec=10.0)
            return
        self._episode = msg.episode
        self._task = TaskInstance.sample(msg.seed, self.geometry)
        self._reset_stamp = stamp_to_seconds(msg.header.stamp) - msg.episode_time
        self._hold = None
        self._plan = None
        self._start_at = None
        self._joints = None
        self._shaper.reset()  # the arm was put at a new start pose
        if self._start_on_reset:
            if msg.episode_time <= self._start_delay + JOIN_MARGIN:
                self._start_at = self._now() + max(0.0, self._start_delay - msg.episode_time)
            else:
                self.get_logger().info(f"joined episode {msg.episode} {msg.episode_time:.1f} s after its reset; "
                                       f"call ~/start for a demonstration, or reset the simulator")

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            joints = self._order.positions(msg)
        except JointStateError as exc:
            self.get_logger().warning(f"ignoring joint state: {exc}", throttle_duration_sec=5.0)
            return
        stamp = stamp_to_seconds(msg.header.stamp)
        if self._episode is not None and stamp + 1e-3 >= self._reset_stamp:
            self._joints, self._joints_stamp = joints, stamp  # a state from the current episode
            if self._hold is None and self._plan is None:
                self._hold = joints

    # --- demonstrations --------------------------------------------------------------
    def _choose_side(self) -> str | None:
        if self._side_mode in SOLUTIONS:
            return self._side_mode
        if self._side_mode == "alternate":
            return SOLUTIONS[self.demonstrations % 2]
        return None  # the expert's own random choice

    def start_demonstration(self) -> str:
        """Plan from the current joint state and start moving; returns what it does."""
        if self._task is None:
            raise RuntimeError("no TaskStatus from the simulator yet; is sim_node running?")
        if self._joints is None:
            raise RuntimeError(f"no joint state on {self.robot.joint_state_topic} since the reset")
        start = self._joints[self._arm_index]
        self._plan = self.expert.plan(self._task, start, self._choose_side())
        self._plan_start = self._now()
        self._start_at = None
        self.demonstrations += 1
        message = (f"episode {self._episode}: passing the pillar on the {self._plan.side}, "
                   f"{self._plan.duration:.1f} s to the target")
        self.get_logger().info(message)
        return message

    def _on_start(self, request, response):
        try:
            response.message = self.start_demonstration()
            response.success = True
        except Exception as exc:  # noqa: BLE001 - answered to the caller
            response.success = False
            response.message = str(exc)
        return response

    def _target(self, now: float) -> np.ndarray | None:
        if self._plan is None:
            return self._hold
        arm = self._plan.at(now - self._plan_start)
        target = np.empty(len(self.robot.joint_names))
        target[self._arm_index] = arm
        return target

    def _on_timer(self) -> None:
        now = self._now()
        if self._start_at is not None and now >= self._start_at and self._joints is not None:
            self.start_demonstration()
        leader = self._target(now)
        if leader is None:
            return
        stamp = self.get_clock().now().to_msg()
        publish_while_up(self, self._leader_pub, make_joint_state(self.robot.joint_names, leader, stamp))
        moving = self._plan is not None and now - self._plan_start <= self._plan.duration + self.period
        command = self._command(now, stamp) if self._command_pub is not None and (moving or self._plan is None) else None
        if command is not None:
            publish_while_up(self, self._command_pub, command)

    def _command(self, now: float, stamp):
        """The command that makes the arm follow the leader, shaped like the policy node's commands: a
        trajectory carries the next COMMAND_HORIZON seconds of the motion, so the arm keeps to its path even
        when a command comes late (a busy CPU); other types carry the leader's pose. Once the motion is over
        no commands are sent: the arm holds its last target by itself."""
        if self._joints is None:
            return None
        knots = self.robot.control_period * np.arange(1, int(round(COMMAND_HORIZON / self.robot.control_period)) + 1)

        def plan_after(t):
            return t + knots, np.stack([self._target(t + k) for k in knots])

        command = self._shaper.command(now, self._target, plan_after, self._joints, now - self._joints_stamp)
        if command is None:
            return None
        return command_message(self.robot.command.type, self.robot.joint_names, command.times_from_start,
                               command.positions, stamp)


def main(args=None) -> int:
    return run_node(ExpertNode, "expert_node", STARTUP_ERRORS, args)


if __name__ == "__main__":
    sys.exit(main())
