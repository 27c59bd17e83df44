"""What a configured policy node holds (part of policy_node): the checkpoint, loaded, checked against the robot
and warmed up; the controller; the sensor subscriptions, the command publisher, the plan topics and the command
loop. policy_node's *configure* makes one, *cleanup* and *shutdown* close it.

Commanding is switched by the lifecycle: :meth:`PolicySession.activate` starts the controller;
:meth:`PolicySession.deactivate` stops it through the controller's own stop path (one last trajectory, or as many
steps as the acceleration limits need, bring the arm to rest) and returns once that stop has been sent, or after
a bounded wait; then nothing more is sent.
"""
from __future__ import annotations

import gc
import os
import time
from collections import deque
from typing import Any, Callable

import numpy as np
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time

from dp_ros.conversions.commands import command_message, command_message_class
from dp_ros.conversions.images import ImageConversionError, message_to_rgb, resize_rgb
from dp_ros.conversions.joint_state import JointOrder, JointStateError
from dp_ros.conversions.status import PolicySnapshot
from dp_ros.core.command_shaping import Command
from dp_ros.core.log_throttle import LogThrottle
from dp_ros.core.policy_controller import PolicyController, State
from dp_ros.core.policy_runtime import CheckpointError, PolicyRuntime
from dp_ros.core.rate_loop import RateLoop
from dp_ros.core.speed_check import judge_speed
from dp_ros.core.time_alignment import stamp_to_seconds
from dp_ros.node_params.policy import controller_config
from dp_ros.node_params.policy_live import SAMPLER
from dp_ros.nodes.controller_check import check_controller_mode
from dp_ros.nodes.plan_publisher import PlanPublisher
from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

WARNING_INTERVAL = 5.0
STOP_WAIT_PERIODS = 10
"""deactivate waits for the stop to be sent at most the time the acceleration limits need to bring the arm to
rest plus this many command periods."""


def load_runtime(p: dict[str, Any], robot, log) -> tuple[PolicyRuntime, float]:
    """The checkpoint of parameters ``p``, checked against ``robot`` and warmed up; and a warm-up chunk's time."""
    if not p["checkpoint"]:
        raise CheckpointError("parameter 'checkpoint' is empty: pass the pretrained_model folder "
                              "(ros2 launch dp_ros policy.launch.py checkpoint:=/path/to/pretrained_model)")
    import torch

    torch.set_num_threads(p["inference_threads"] or max(1, (os.cpu_count() or 2) - 1))
    runtime = PolicyRuntime.load(
        p["checkpoint"], device=p["device"], noise_scheduler=p["noise_scheduler"] or None,
        num_inference_steps=p["num_inference_steps"] or None, n_action_steps=p["n_action_steps"] or None,
        seed=None if p["seed"] < 0 else p["seed"])
    runtime.check_robot(robot)
    log("info", f"policy: {runtime.describe()}")
    warm = runtime.warm_up(runs=p["warmup_runs"]) if p["warmup_runs"] > 0 else 0.0
    log("info", f"warm-up done: one chunk takes {warm * 1000:.1f} ms "
                f"({robot.control_period * 1000:.0f} ms per policy step)")
    return runtime, warm


class PolicySession:
    """A loaded policy wired to the node's topics; see the module's docstring."""

    def __init__(self, node, p: dict[str, Any], log):
        self.node, self.log = node, log
        self.robot = load_robot_interface(p["robot_config"] or str(default_robot_config_path()))
        self.runtime, warm = load_runtime(p, self.robot, log)
        self.command_type = p["command_type"] or self.robot.command.type
        self.trajectory_mode = p["trajectory_mode"] or self.robot.command.trajectory_mode
        self.controller = PolicyController(self.robot, self.runtime, controller_config(p, self.runtime.n_action_steps),
                                           clock=self.now, log=log, command_type=self.command_type,
                                           trajectory_mode=self.trajectory_mode)
        self.joint_order = JointOrder(self.robot.joint_names)
        self.use_header_stamps = p["stamp_source"] == "header"
        self._warnings = LogThrottle(WARNING_INTERVAL)
        self._resized_cameras: set[str] = set()
        self.command_times: deque[float] = deque(maxlen=5000)
        """Monotonic times at which the latest commands (up to 5000) were published (command jitter)."""
        self.speed_warning = ""
        self.controller_contradiction = ""
        """Set when the trajectory controller does not execute commands as dp_ros's model assumes (no activate)."""
        self.sampler_parameters = {name: p[name] for name in SAMPLER}
        self._ticks = 0
        self._entities = self._wire(p)
        self.plan_publisher = PlanPublisher(node, self.controller, self.robot.joint_names, p["publish_plan"])
        self.controller.set_status(State.IDLE, "configured; activate to command the robot "
                                               "(ros2 lifecycle set /policy_node activate)")
        if warm > 0:
            self.check_speed(warm)
        if self.command_type == "joint_trajectory":
            check_controller_mode(node, self.robot, log, fail=self._on_contradiction)
        # Everything loaded so far lives as long as the session: keep it out of the garbage
        # collector's full passes, which hold the GIL long enough to delay commands.
        gc.collect()
        gc.freeze()
        self.command_loop = RateLoop(self.robot.command_rate, self._command_tick, name="dp_ros_commands",
                                     on_error=self._command_loop_error, realtime_priority=p["command_priority"])
        self.command_loop.start()
        time.sleep(0.05)
        log("info", f"command loop scheduling: {self.command_loop.scheduling}")

    def _wire(self, p: dict[str, Any]) -> list:
        from sensor_msgs.msg import CompressedImage, Image, JointState

        node, robot = self.node, self.robot
        sensor_qos = qos_profile_sensor_data if p["sensor_qos"] == "sensor_data" else QoSProfile(
            depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        subscriptions = [node.create_subscription(JointState, robot.joint_state_topic, self._on_joint_state,
                                                  sensor_qos)]
        for cam in robot.cameras:
            msg_type = CompressedImage if cam.type == "compressed" else Image
            subscriptions.append(node.create_subscription(
                msg_type, cam.topic, lambda msg, cam=cam: self._on_image(cam, msg), sensor_qos))
        self.command_pub = node.create_publisher(command_message_class(self.command_type), robot.command.topic,
                                                 p["command_qos_depth"])
        return subscriptions

    # --- lifecycle ------------------------------------------------------------------------------
    def activate(self) -> None:
        """Command the robot; raises RuntimeError (with the reason) if it must not be commanded."""
        if self.controller_contradiction:
            self.controller.set_fault(self.controller_contradiction)
            raise RuntimeError(self.controller_contradiction)
        mode = f", {self.trajectory_mode}" if self.command_type == "joint_trajectory" else ""
        self.log("info", f"commanding {self.robot.command.topic} ({self.command_type}{mode}) at "
                         f"{self.robot.command_rate:g} Hz from {self.robot.joint_state_topic} and "
                         f"{[c.topic for c in self.robot.cameras]}")
        self.controller.start()

    def deactivate(self, reason: str) -> bool:
        """Stop commanding through the controller's stop path (the arm is brought to rest within the limits), wait
        until that stop has been sent (bounded), then send nothing more. Returns whether it was sent in time."""
        ticks = self._ticks
        self.controller.stop(reason)
        deadline = time.monotonic() + self.stop_wait()
        # one whole tick after the stop took the pending stop; a stream of steps brakes over further ticks
        while (self._ticks < ticks + 2 or self.controller.shaper.braking) and time.monotonic() < deadline:
            time.sleep(0.25 / self.robot.command_rate)
        done = self._ticks >= ticks + 2 and not self.controller.shaper.braking
        if not done:
            self.log("warn", f"deactivate: the command loop did not finish the stop within {self.stop_wait():.2f} s "
                             "(a busy CPU); it is sent when the loop runs, nothing after it")
        return done

    def stop_wait(self) -> float:
        """The longest deactivate waits: the time to rest from the velocity limits, plus STOP_WAIT_PERIODS."""
        limits = self.controller.safety.limits
        to_rest = 0.0 if limits.acceleration is None else float(np.max(limits.velocity / limits.acceleration))
        return to_rest + STOP_WAIT_PERIODS / self.robot.command_rate

    def prepare_live(self, changes: dict[str, Any]) -> Callable[[], None]:
        """Check changes of live parameters (node_params.policy_live.LIVE) as a whole; raises ValueError or
        CheckpointError with the reason, changing nothing. Returns what applies them: the sampler from the next
        chunk started, the controller's settings from the next chunk requested."""
        sampler = {name: changes[name] for name in SAMPLER if name in changes}
        controller = {name: value for name, value in changes.items() if name not in SAMPLER}
        prepared = None
        if sampler:
            sampler = {**self.sampler_parameters, **sampler}
            prepared = self.runtime.prepare_sampler(sampler["noise_scheduler"] or None,
                                                    sampler["num_inference_steps"] or None)
        self.controller.live.check(controller)

        def apply() -> None:
            if prepared is not None:
                self.runtime.use_sampler(prepared)
                self.sampler_parameters = sampler
                self.log("info", f"sampler from the next chunk on: {self.runtime.describe()}")
            if controller:
                self.controller.retune(controller)
        return apply

    def _on_contradiction(self, text: str) -> None:
        self.controller_contradiction = text
        self.controller.set_fault(text)

    def close(self) -> None:
        self.command_loop.stop()
        self.controller.close()
        self.plan_publisher.close()
        for publisher in self.plan_publisher.publishers() + [self.command_pub]:
            self.node.destroy_publisher(publisher)
        for subscription in self._entities:
            self.node.destroy_subscription(subscription)
        self._entities = []
        gc.unfreeze()  # what this session froze can be collected once released

    # --- time and logs -------------------------------------------------------------------------
    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _warn_throttled(self, key, text: str) -> None:
        """One warning per key every WARNING_INTERVAL s (a key per source and kind of problem: the start of
        its text, so that different problems of one sensor are each reported)."""
        if self._warnings.ready(key):
            self.log("warn", text)

    def _stamp(self, header) -> float:
        if self.use_header_stamps:
            stamp = stamp_to_seconds(header.stamp)
            if stamp > 0:
                return stamp
            self._warn_throttled("zero_stamp", "a sensor message has a zero header stamp; using its arrival time "
                                               "(set stamp_source:=receive to silence this)")
        return self.now()

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
                self.log("info", f"camera {cam.name} sends {rgb.shape[1]}x{rgb.shape[0]} frames; resizing them "
                                 f"to the policy's {cam.width}x{cam.height}")
            rgb = resize_rgb(rgb, cam.width, cam.height)
        self._add_sample(cam.feature, self._stamp(msg.header),
                         lambda stamp: self.controller.on_image(cam.feature, stamp, rgb))

    def _add_sample(self, stream: str, stamp: float, add) -> None:
        newest = self.controller.history.streams[stream].latest()
        if newest is not None and stamp < newest.stamp:
            self._warn_throttled(f"order_{stream}", f"{stream} stamps went back by {newest.stamp - stamp:.3f}s; "
                                 "samples are placed by stamp (check the sensor driver's clock, or set "
                                 "stamp_source:=receive)")
        add(stamp)

    # --- commands ---------------------------------------------------------------------------
    def _command_tick(self) -> None:
        try:
            self._send_command()
        finally:
            self._ticks += 1

    def _send_command(self) -> None:
        now = self.now()
        try:
            command = self.controller.step(now)
        except Exception as exc:  # noqa: BLE001 - the control loop must survive anything
            self.controller.set_fault(f"control step failed: {exc}")
            return
        if command is None:
            return
        msg = self._command_message(command)
        if not self.controller.confirm(command, self.now() - now):
            return
        self.command_pub.publish(msg)
        self.controller.note_publish_delay(self.now() - now)
        self.command_times.append(time.monotonic())
        self.plan_publisher.on_command(command)

    def _command_loop_error(self, exc: BaseException) -> None:
        import traceback

        self.log("error", "command step failed: " + "".join(traceback.format_exception(exc)))
        self.controller.set_fault(f"command step failed: {exc}")

    def _command_message(self, command: Command):
        clock_type = self.node.get_clock().clock_type
        stamp = Time(nanoseconds=int(round(command.stamp * 1e9)), clock_type=clock_type).to_msg()
        return command_message(self.command_type, self.robot.joint_names, command.times_from_start,
                               command.positions, stamp)

    # --- status ---------------------------------------------------------------------------------
    def check_speed(self, chunk_seconds: float) -> None:
        """Say (once per change) whether chunks of this length leave the robot without actions, and what to do."""
        runtime, config = self.runtime, self.controller.config
        verdict = judge_speed(chunk_seconds, self.robot.control_period, runtime.n_action_steps, config.replan_steps,
                              runtime.future_steps, runtime.noise_scheduler, runtime.num_inference_steps)
        if verdict.message and not self.speed_warning:
            self.log("warn", f"policy too slow for this robot: {verdict.message}")
        elif self.speed_warning and not verdict.message:
            self.log("info", f"chunks now take {chunk_seconds * 1000:.0f} ms: fast enough again")
        self.speed_warning = verdict.message

    def snapshot(self) -> PolicySnapshot:
        now, controller = self.now(), self.controller
        age, _ = controller.history.newest_age(now)
        wall = time.monotonic()
        recent = [t for t in tuple(self.command_times) if wall - t <= 1.0]  # tuple(): one step under the GIL
        stats, safety = controller.stats, controller.safety.counters
        return PolicySnapshot(
            state=controller.state, reason=controller.reason,
            last_inference_time=stats.last_inference_time, mean_inference_time=stats.mean_inference_time,
            queue_depth=controller.queue_depth(now), newest_observation_age=age,
            chunks_produced=stats.chunks_produced, actions_dropped_late=stats.actions_dropped_late,
            inference_errors=stats.inference_errors, queue_underruns=stats.queue_underruns,
            commands_published=stats.commands_published, command_rate=float(len(recent)),
            stop_commands=stats.stop_commands, position_clamps=safety.position_clamps,
            velocity_clamps=safety.velocity_clamps, acceleration_clamps=safety.acceleration_clamps,
            nonfinite_rejections=safety.nonfinite_rejections,
            self_check_failures=controller.shaper.self_check_failures, watchdog_trips=stats.watchdog_trips,
            watchdog_timeout=controller.watchdog_limit(), worst_publish_delay=stats.worst_publish_delay,
            late_commands_withdrawn=stats.late_commands_withdrawn,
            expected_chunk_delay=controller.expected_delay(), late_chunks=controller.delays.outliers.count,
            last_late_chunk_delay=controller.delays.outliers.last_delay, chunks_discarded=stats.chunks_discarded,
            future_stamps_refused=sum(controller.history.future_counts().values()),
            stop_steps=controller.shaper.stop_steps, speed_warning=self.speed_warning,
            last_chunk_sampler=self.runtime.last_chunk_sampler, transition_in_force=controller.config.transition,
            velocity_scale_in_force=controller.live.easing.scale)
