"""policy_node: a LeRobot Diffusion Policy checkpoint as a ROS 2 controller.

Subscribes to the cameras and joint states of the robot interface, keeps a
time-aligned observation history, computes action chunks off the control
thread and publishes safe joint commands at the command rate. Services
``~/start``, ``~/stop``, ``~/reset``; status on ``~/status`` and /diagnostics.
"""
from __future__ import annotations

import gc
import os
import sys
import time
from collections import deque

from rclpy.node import Node
from rclpy.time import Time
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from std_srvs.srv import Trigger

from dp_ros.bringup import run_node
from dp_ros.conversions.commands import command_message, command_message_class
from dp_ros.conversions.images import ImageConversionError, message_to_rgb, resize_rgb
from dp_ros.conversions.joint_state import JointOrder, JointStateError
from dp_ros.conversions.status import PolicySnapshot, policy_diagnostics_msg, policy_status_msg
from dp_ros.core.command_shaping import Command
from dp_ros.core.log_throttle import LogThrottle
from dp_ros.core.policy_controller import PolicyController, State
from dp_ros.core.policy_runtime import CheckpointError, PolicyRuntime
from dp_ros.core.rate_loop import RateLoop
from dp_ros.core.speed_check import judge_speed
from dp_ros.core.time_alignment import stamp_to_seconds
from dp_ros.node_params.policy import POLICY, controller_config
from dp_ros.nodes.controller_check import check_controller_mode
from dp_ros.nodes.node_tools import declare_parameters, trigger_service
from dp_ros.nodes.plan_publisher import PlanPublisher
from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface

WARNING_INTERVAL = 5.0


class PolicyNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("policy_node", **node_kwargs)
        p = declare_parameters(self, POLICY)

        config_path = p["robot_config"] or str(default_robot_config_path())
        self.robot = load_robot_interface(config_path)
        if not p["checkpoint"]:
            raise CheckpointError("parameter 'checkpoint' is empty: pass the pretrained_model folder "
                                  "(ros2 launch dp_ros policy.launch.py checkpoint:=/path/to/pretrained_model)")
        import torch

        torch.set_num_threads(p["inference_threads"] or max(1, (os.cpu_count() or 2) - 1))
        self.runtime = PolicyRuntime.load(
            p["checkpoint"], device=p["device"], noise_scheduler=p["noise_scheduler"] or None,
            num_inference_steps=p["num_inference_steps"] or None, n_action_steps=p["n_action_steps"] or None,
            seed=None if p["seed"] < 0 else p["seed"])
        self.runtime.check_robot(self.robot)
        self.get_logger().info(f"policy: {self.runtime.describe()}")

        self.command_type = p["command_type"] or self.robot.command.type
        self.trajectory_mode = p["trajectory_mode"] or self.robot.command.trajectory_mode
        config = controller_config(p, self.runtime.n_action_steps)
        self.controller = PolicyController(self.robot, self.runtime, config, clock=self._now, log=self._log,
                                           command_type=self.command_type, trajectory_mode=self.trajectory_mode)
        self.joint_order = JointOrder(self.robot.joint_names)
        self.use_header_stamps = p["stamp_source"] == "header"
        self._warnings = LogThrottle(WARNING_INTERVAL)
        self._resized_cameras: set[str] = set()
        self._command_times: deque[float] = deque(maxlen=5000)
        self.speed_warning = ""

        sensor_qos = qos_profile_sensor_data if p["sensor_qos"] == "sensor_data" else QoSProfile(
            depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        from sensor_msgs.msg import CompressedImage, Image, JointState

        self.create_subscription(JointState, self.robot.joint_state_topic, self._on_joint_state, sensor_qos)
        for cam in self.robot.cameras:
            msg_type = CompressedImage if cam.type == "compressed" else Image
            self.create_subscription(msg_type, cam.topic, lambda msg, cam=cam: self._on_image(cam, msg), sensor_qos)
        self.command_pub = self.create_publisher(command_message_class(self.command_type), self.robot.command.topic,
                                                 p["command_qos_depth"])
        from diagnostic_msgs.msg import DiagnosticArray

        from dp_ros_msgs.msg import PolicyStatus

        self.status_pub = self.create_publisher(PolicyStatus, "~/status", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.plan_publisher = PlanPublisher(self, self.controller, self.robot.joint_names, p["publish_plan"])
        self.create_service(Trigger, "~/start", trigger_service(self.controller.start))
        self.create_service(Trigger, "~/stop", trigger_service(lambda: self.controller.stop("stopped by ~/stop")))
        self.create_service(Trigger, "~/reset", trigger_service(self.controller.reset))
        self.create_timer(1.0 / p["status_rate"], self._publish_status)
        self.create_timer(1.0, self._publish_diagnostics)

        self.controller.set_status(State.WARMING_UP, "warm-up inference")
        self._publish_status()
        warm = self.runtime.warm_up(runs=p["warmup_runs"]) if p["warmup_runs"] > 0 else 0.0
        self.get_logger().info(f"warm-up done: one chunk takes {warm * 1000:.1f} ms "
                               f"({self.robot.control_period * 1000:.0f} ms per policy step)")
        if warm > 0:
            self._check_speed(warm)
        # Everything loaded so far lives as long as the node: keep it out of the garbage
        # collector's full passes, which hold the GIL long enough to delay commands.
        gc.collect()
        gc.freeze()
        if p["autostart"]:
            self.controller.start()
        else:
            self.controller.set_status(State.IDLE, "ready; call ~/start to command the robot")
        if self.command_type == "joint_trajectory":
            check_controller_mode(self, self.robot, self._log, fail=self.controller.set_fault)
        self.command_loop = RateLoop(self.robot.command_rate, self._command_tick, name="dp_ros_commands",
                                     on_error=self._command_loop_error, realtime_priority=p["command_priority"])
        self.command_loop.start()
        time.sleep(0.05)
        self.get_logger().info(f"command loop scheduling: {self.command_loop.scheduling}")
        self.get_logger().info(
            f"commanding {self.robot.command.topic} ({self.command_type}"
            f"{', ' + self.trajectory_mode if self.command_type == 'joint_trajectory' else ''}) at "
            f"{self.robot.command_rate:g} Hz from {self.robot.joint_state_topic} and "
            f"{[c.topic for c in self.robot.cameras]}")

    # --- time and logs --------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _log(self, level: str, text: str) -> None:
        # rclpy ties a severity to the line that logs: one call per severity
        logger = self.get_logger()
        if level == "error":
            logger.error(text)
        elif level == "warn":
            logger.warning(text)
        else:
            logger.info(text)

    def _warn_throttled(self, key, text: str) -> None:
        """One warning per key every WARNING_INTERVAL s (a key per source and kind of problem: the start of
        its text, so that different problems of one sensor are each reported)."""
        if self._warnings.ready(key):
            self.get_logger().warning(text)

    def _stamp(self, header) -> float:
        if self.use_header_stamps:
            stamp = stamp_to_seconds(header.stamp)
            if stamp > 0:
                return stamp
            self._warn_throttled("zero_stamp", "a sensor message has a zero header stamp; using its arrival time "
                                               "(set stamp_source:=receive to silence this)")
        return self._now()

    # --- sensor callbacks -------------------------------------------------------------------
    def _on_joint_state(self, msg) -> None:
        try:
            positions = self.joint_order.positions(msg)
        except JointStateError as exc:
            self._warn_throttled(("joint_state", str(exc)[:30]),
                                 f"ignoring JointState on {self.robot.joint_state_topic}: {exc}")
            return
        self._add_sample("joint_states", self._stamp(msg.header),
                         lambda stamp: self.controller.on_joint_state(stamp, positions))

    def _on_image(self, cam, msg) -> None:
        try:
            rgb = message_to_rgb(msg)
        except ImageConversionError as exc:
            self._warn_throttled((cam.name, str(exc)[:30]),
                                 f"ignoring frame of camera {cam.name} on {cam.topic}: {exc}")
            return
        if rgb.shape[:2] != (cam.height, cam.width):
            if cam.name not in self._resized_cameras:
                self._resized_cameras.add(cam.name)
                self.get_logger().info(f"camera {cam.name} sends {rgb.shape[1]}x{rgb.shape[0]} frames; resizing them "
                                       f"to the policy's {cam.width}x{cam.height}")
            rgb = resize_rgb(rgb, cam.width, cam.height)
        self._add_sample(cam.feature, self._stamp(msg.header), lambda stamp: self.controller.on_image(cam.feature, stamp, rgb))

    def _add_sample(self, stream: str, stamp: float, add) -> None:
        newest = self.controller.history.streams[stream].latest()
        if newest is not None and stamp < newest.stamp:
            self._warn_throttled(f"order_{stream}", f"{stream} stamps went back by {newest.stamp - stamp:.3f}s; "
                                 "samples are placed by stamp (check the sensor driver's clock, or set "
                                 "stamp_source:=receive)")
        add(stamp)

    # --- commands ---------------------------------------------------------------------------
    def _command_tick(self) -> None:
        now = self._now()
        try:
            command = self.controller.step(now)
        except Exception as exc:  # noqa: BLE001 - the control loop must survive anything
            self.controller.set_fault(f"control step failed: {exc}")
            return
        if command is None:
            return
        msg = self._command_message(command)
        if not self.controller.confirm(command, self._now() - now):
            return
        self.command_pub.publish(msg)
        self.controller.note_publish_delay(self._now() - now)
        self._command_times.append(time.monotonic())
        self.plan_publisher.on_command(command)

    def command_times(self) -> list[float]:
        """Monotonic times at which the latest commands (up to 5000) were published (command jitter)."""
        return list(self._command_times)

    def forget_command_times(self) -> None:
        self._command_times.clear()

    def _command_loop_error(self, exc: BaseException) -> None:
        import traceback

        self.get_logger().error("command step failed: " + "".join(traceback.format_exception(exc)))
        self.controller.set_fault(f"command step failed: {exc}")

    def _command_message(self, command: Command):
        stamp = Time(nanoseconds=int(round(command.stamp * 1e9)), clock_type=self.get_clock().clock_type).to_msg()
        return command_message(self.command_type, self.robot.joint_names, command.times_from_start,
                               command.positions, stamp)

    # --- status ---------------------------------------------------------------------------------
    def _check_speed(self, chunk_seconds: float) -> None:
        """Say (once per change) whether chunks of this length leave the robot without actions, and what to do."""
        runtime, config = self.runtime, self.controller.config
        verdict = judge_speed(chunk_seconds, self.robot.control_period, runtime.n_action_steps, config.replan_steps,
                              runtime.future_steps, runtime.noise_scheduler, runtime.num_inference_steps)
        if verdict.message and not self.speed_warning:
            self.get_logger().warning(f"policy too slow for this robot: {verdict.message}")
        elif self.speed_warning and not verdict.message:
            self.get_logger().info(f"chunks now take {chunk_seconds * 1000:.0f} ms: fast enough again")
        self.speed_warning = verdict.message

    def snapshot(self) -> PolicySnapshot:
        now = self._now()
        age, _ = self.controller.history.newest_age(now)
        wall = time.monotonic()
        recent = [t for t in tuple(self._command_times) if wall - t <= 1.0]  # tuple(): one step under the GIL
        stats, safety = self.controller.stats, self.controller.safety.counters
        return PolicySnapshot(
            state=self.controller.state, reason=self.controller.reason,
            last_inference_time=stats.last_inference_time, mean_inference_time=stats.mean_inference_time,
            queue_depth=self.controller.queue_depth(now), newest_observation_age=age,
            chunks_produced=stats.chunks_produced, actions_dropped_late=stats.actions_dropped_late,
            inference_errors=stats.inference_errors, queue_underruns=stats.queue_underruns,
            commands_published=stats.commands_published, command_rate=float(len(recent)),
            stop_commands=stats.stop_commands, position_clamps=safety.position_clamps,
            velocity_clamps=safety.velocity_clamps, acceleration_clamps=safety.acceleration_clamps,
            nonfinite_rejections=safety.nonfinite_rejections,
            self_check_failures=self.controller.shaper.self_check_failures, watchdog_trips=stats.watchdog_trips,
            watchdog_timeout=self.controller.watchdog_limit(), worst_publish_delay=stats.worst_publish_delay,
            late_commands_withdrawn=stats.late_commands_withdrawn,
            expected_chunk_delay=self.controller.expected_delay(), late_chunks=self.controller.delays.outliers.count,
            last_late_chunk_delay=self.controller.delays.outliers.last_delay, chunks_discarded=stats.chunks_discarded,
            future_stamps_refused=sum(self.controller.history.future_counts().values()),
            stop_steps=self.controller.shaper.stop_steps, speed_warning=self.speed_warning)

    def _publish_status(self) -> None:
        self.status_pub.publish(policy_status_msg(self.snapshot(), self.get_clock().now().to_msg()))

    def _publish_diagnostics(self) -> None:
        if self.controller.stats.chunks_produced >= 3:  # judged again on the chunks measured in operation
            self._check_speed(self.controller.stats.mean_inference_time)
        self.diagnostics_pub.publish(policy_diagnostics_msg(self.get_name(), self.snapshot(),
                                                            self.get_clock().now().to_msg()))

    def destroy_node(self) -> bool:
        self.command_loop.stop() if hasattr(self, "command_loop") else None
        self.controller.close() if hasattr(self, "controller") else None
        self.plan_publisher.close() if hasattr(self, "plan_publisher") else None
        return super().destroy_node()


STARTUP_ERRORS = (CheckpointError, RobotInterfaceError, ValueError, FileNotFoundError)


def main(args=None) -> int:
    return run_node(PolicyNode, "policy_node", STARTUP_ERRORS, args)


if __name__ == "__main__":
    sys.exit(main())
