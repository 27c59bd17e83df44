"""sim_node: the simulated arm with the ROS interface of a ros2_control robot.

Reads the robot interface YAML and, in real time (physics in its own thread):

- publishes ``sensor_msgs/JointState`` on ``joint_state_topic`` at ``joint_state_rate``
  and each camera (``sensor_msgs/Image`` rgb8, or ``CompressedImage`` jpeg when the
  camera's type is ``compressed``) at ``camera_rate``, stamped with the time the
  state was taken;
- follows commands on ``command.topic`` of ``command.type`` (JointTrajectory like
  joint_trajectory_controller, Float64MultiArray like forward_command_controller,
  or JointState); malformed commands are rejected with a warning; every command is
  judged as the robot's controller would execute it, and those that would break
  the joint limits are counted and reported in TaskStatus (the simulator itself
  still limits them, to protect its model);
- ``~/reset`` (std_srvs/Trigger): a new random task instance (``seed`` makes the
  sequence reproducible);
- ``dp_ros_msgs/TaskStatus`` on ``task_status_topic``: episode, seed, time,
  success, collision and the side of the pillar the arm took;
- ``/clock`` (and stamps in simulated time) when ``publish_clock`` is true.
"""
from __future__ import annotations

import random
import sys
import time

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import Trigger

from dp_ros.bringup import run_node
from dp_ros.conversions.commands import CommandError, command_message_class, parse_command
from dp_ros.conversions.images import rgb_to_compressed_msg, rgb_to_image_msg
from dp_ros.conversions.joint_state import JointOrder
from dp_ros.node_params.sim import SIM
from dp_ros.nodes.node_tools import declare_parameters, publish_while_up, trigger_service
from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface
from dp_ros_msgs.msg import TaskStatus

from dp_ros.sim.environment import SimConfigurationError, SimEnvironment, SimState
from dp_ros.sim.realtime import RealTimeSimulation
from dp_ros.sim.camera_stream import CameraStream
from dp_ros.sim.rendering import RenderingUnavailable
from dp_ros.sim.task import TaskConfig

STARTUP_ERRORS = (RobotInterfaceError, SimConfigurationError, RenderingUnavailable, ValueError, FileNotFoundError)
# Trajectories stamped further than this from the simulator's clock are started on receipt.
MAX_STAMP_OFFSET = 10.0


def _time_msg(seconds: float) -> Time:
    nanoseconds = max(0, int(round(seconds * 1e9)))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


class SimNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("sim_node", **node_kwargs)
        p = declare_parameters(self, SIM)
        self.robot = load_robot_interface(p["robot_config"] or default_robot_config_path())
        self._seeds = random.Random(p["seed"] if p["seed"] >= 0 else None)
        self.env = SimEnvironment(self.robot, TaskConfig(time_limit=p["time_limit"]), seed=self._next_seed())
        self._order = JointOrder(self.robot.joint_names)
        self._auto_reset = p["auto_reset"]
        self._auto_reset_delay = p["auto_reset_delay"]
        self._publish_clock = p["publish_clock"]
        self.commands_received = 0
        self.commands_rejected = 0

        self._reported: dict[str, int] = {}

        reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        self._joint_pub = self.create_publisher(JointState, self.robot.joint_state_topic, reliable)
        self._status_pub = self.create_publisher(TaskStatus, p["task_status_topic"], reliable)
        self._clock_pub = self.create_publisher(ClockMsg, "/clock", reliable) if self._publish_clock else None
        self._camera_pubs = {}
        if p["camera_rate"] > 0:
            for cam in self.robot.cameras:
                kind = CompressedImage if cam.type == "compressed" else Image
                self._camera_pubs[cam.name] = self.create_publisher(kind, cam.topic, QoSProfile(
                    depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
        self.create_subscription(command_message_class(self.robot.command.type), self.robot.command.topic,
                                 self._on_command, reliable)
        self.create_service(Trigger, "~/reset", trigger_service(self.reset_episode, failure="reset failed: "))

        self.sim = RealTimeSimulation(self.env, state_rate=p["joint_state_rate"], on_state=self._on_state,
                                      clock="sim" if self._publish_clock else "wall", max_lag=p["max_lag"],
                                      logger=self.get_logger())
        self.cameras = None
        if self._camera_pubs:
            self.cameras = CameraStream(self.sim, self.env.camera_sizes(), list(self._camera_pubs),
                                        p["camera_rate"], self._publish_frame, self.get_logger().error)
            self.cameras.start()
        self.sim.start()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / p["status_rate"], self._on_status_timer, clock=steady)
        self.get_logger().info(
            f"simulating {self.robot.name}: joints {self.robot.joint_names} on {self.robot.joint_state_topic} at "
            f"{p['joint_state_rate']:g} Hz, cameras {[c.topic for c in self.robot.cameras] if self._camera_pubs else []} "
            f"at {p['camera_rate']:g} Hz, commands ({self.robot.command.type}) on {self.robot.command.topic}, "
            f"task status on {p['task_status_topic']}{', /clock' if self._publish_clock else ''}; "
            f"episode {self.env.episode} (seed {self.env.task.seed})")

    # --- helpers ---------------------------------------------------------------------
    def _next_seed(self) -> int:
        return self._seeds.randrange(0, 2**31 - 1)

    def _stamp(self, sim_time: float) -> Time:
        return _time_msg(self.sim.stamp(sim_time))

    def _now_stamp_seconds(self) -> float:
        return self.sim.stamp(self.sim.latest().time)

    def _publish(self, publisher, msg) -> None:
        publish_while_up(self, publisher, msg)

    # --- physics thread: joint states and /clock ---------------------------------------
    def _on_state(self, state: SimState) -> None:
        msg = JointState()
        msg.header.stamp = self._stamp(state.time)
        msg.name = list(self.robot.joint_names)
        msg.position = state.positions.tolist()
        msg.velocity = state.velocities.tolist()
        self._publish(self._joint_pub, msg)
        if self._clock_pub is not None:
            self._publish(self._clock_pub, ClockMsg(clock=_time_msg(state.time)))

    # --- cameras ---------------------------------------------------------------------
    def _publish_frame(self, camera: str, rgb: np.ndarray, state: SimState) -> None:
        cam = self.robot.camera(camera)
        stamp, frame_id = self._stamp(state.time), f"{camera}_camera_optical_frame"
        msg = (rgb_to_compressed_msg(rgb, stamp, frame_id) if cam.type == "compressed"
               else rgb_to_image_msg(rgb, stamp, frame_id))
        self._publish(self._camera_pubs[camera], msg)

    # --- commands --------------------------------------------------------------------
    def _on_command(self, msg, info) -> None:
        self.commands_received += 1
        # taken when DDS delivered it, as a controller's middleware would, not when this executor got to it
        received = time.monotonic() - max(0.0, time.time() - info["received_timestamp"] * 1e-9)
        try:
            command = parse_command(msg, self._order)
        except CommandError as exc:
            self.commands_rejected += 1
            self.get_logger().warning(f"rejected a command on {self.robot.command.topic}: {exc} "
                                      f"({self.commands_rejected} rejected so far)", throttle_duration_sec=2.0)
            return
        stamped = command.stamp is not None
        if stamped:
            offset = command.stamp - self._now_stamp_seconds()
            if abs(offset) > MAX_STAMP_OFFSET:
                self.get_logger().warning(
                    f"command stamped {offset:+.1f} s from the simulator's clock; taken as sent now. "
                    f"Do publisher and simulator use the same clock (use_sim_time / publish_clock)?",
                    throttle_duration_sec=5.0)
                stamped = False
        timed = hasattr(msg, "points")
        self.sim.call_soon(lambda env: self._execute(env, command, timed, received, stamped))

    def _execute(self, env: SimEnvironment, command, timed: bool, received: float, stamped: bool) -> None:
        """In the physics thread: follow the command, judged as the robot's controller executes it.

        Times are converted here, where a skip ahead of the physics (a starved CPU) and the schedules it moved
        are seen together: in the simulated time of the wall clock (the physics may lag it)."""
        receipt = self.sim.sim_time_at(received)
        stamped_at = self.sim.sim_time_of(command.stamp) if stamped else None
        if min(receipt, stamped_at if stamped_at is not None else receipt) < env.episode_start:
            self.get_logger().info("ignored a command sent before the last reset", throttle_duration_sec=2.0)
            return
        if timed:
            offset = 0.0 if stamped_at is None else stamped_at - receipt
            check = env.command_trajectory(command.times_from_start + offset, command.positions, receipt)
        else:
            check = env.command_step(command.positions[-1], receipt)
        if not check.within_limits:
            timing = (" (taken off its controller update, a hold or a double step: it arrived over half an update "
                      "late)") if not timed and env.commands.model.off_schedule else ""
            self.get_logger().warning(
                f"a command on {self.robot.command.topic} breaks the joint limits as the controller executes it"
                f"{timing}: {check.describe()} ({env.commands.violations} such commands so far; the simulator limits "
                f"it to protect its model, a real controller would not)", throttle_duration_sec=2.0)

    # --- reset and status ------------------------------------------------------------
    def reset_episode(self) -> str:
        seed = self._next_seed()
        task = self.sim.call(lambda env: env.reset(seed))
        state = self.sim.latest()
        self._publish_status(state)
        message = (f"episode {state.status.episode}, seed {task.seed}: target at "
                   f"({task.target[0]:.3f}, {task.target[1]:.3f}) m")
        self.get_logger().info(f"reset: {message}")
        return message

    def _publish_status(self, state: SimState) -> None:
        status, commands = state.status, self.env.commands
        msg = TaskStatus(episode=status.episode, seed=status.seed, task=status.task,
                         episode_time=status.episode_time, success=status.success, solution=status.solution,
                         collided=status.collided, distance=status.distance, time_limit=status.time_limit,
                         commands_received=self.commands_received, commands_rejected=self.commands_rejected,
                         limit_violations=commands.violations, worst_velocity_ratio=commands.worst.velocity_ratio,
                         worst_acceleration_ratio=commands.worst.acceleration_ratio,
                         worst_position_excess=commands.worst.position_excess)
        msg.header.stamp = self._stamp(state.time)
        self._publish(self._status_pub, msg)

    def _on_status_timer(self) -> None:
        state = self.sim.latest()
        self._publish_status(state)
        self._log_outcome(state)

    def _log_outcome(self, state: SimState) -> None:
        status = state.status
        logger = self.get_logger()
        if status.success and self._reported.get("success") != status.episode:
            self._reported["success"] = status.episode
            logger.info(f"episode {status.episode} (seed {status.seed}): success after "
                        f"{status.success_time:.2f} s, passed the pillar on the "
                        f"{status.solution or 'top'}")
        if status.collided and self._reported.get("collided") != status.episode:
            self._reported["collided"] = status.episode
            logger.warning(f"episode {status.episode}: the arm touched the pillar; this episode cannot succeed "
                           f"(call ~/reset for a new one)")
        over_time = status.episode_time > status.time_limit
        if over_time and not status.success and self._reported.get("timeout") != status.episode:
            self._reported["timeout"] = status.episode
            logger.info(f"episode {status.episode}: time limit {status.time_limit:g} s passed without success "
                        f"(tip {status.distance:.3f} m from the target)")
        if self._auto_reset:
            finished_at = (status.success_time if status.success else
                           status.time_limit if over_time else None)
            if finished_at is not None and status.episode_time >= finished_at + self._auto_reset_delay:
                self.reset_episode()

    def destroy_node(self):
        if self.cameras is not None:
            self.cameras.stop()
        self.sim.stop()
        self.env.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(SimNode, "sim_node", STARTUP_ERRORS, args, needs_lerobot=False)


if __name__ == "__main__":
    sys.exit(main())
