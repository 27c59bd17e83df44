"""The demo's own ROS node: calls the other nodes' services and listens to their status."""
from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from dp_ros.robot_interface import RobotInterface

TASK_STATUS_TOPIC = "/task_status"
SIM_RESET = "/sim_node/reset"
RECORDER = "/recorder_node"
POLICY = "/policy_node"


class DemoClientError(RuntimeError):
    """A service did not answer or refused (the message says which)."""


class ServiceRefused(DemoClientError):
    """A service answered, with success false (the node is up; the message says why it refused)."""


class DemoClient:
    def __init__(self, robot: RobotInterface):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState

        from dp_ros.conversions.joint_state import JointOrder
        from dp_ros_msgs.msg import PolicyStatus, RecorderStatus, TaskStatus

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("dp_ros_demo", context=self.context)
        self._lock = threading.Lock()
        self.task_status = None
        self.task_status_time = 0.0
        """time.monotonic() when the newest TaskStatus arrived."""
        self.policy_status = None
        self.recorder_status = None
        self.recorder_status_time = 0.0
        """time.monotonic() when the newest RecorderStatus arrived."""
        self.policy_statuses: list = []
        self.joint_trace: list[tuple[float, np.ndarray]] = []
        self.trace_joints = False
        order = JointOrder(robot.joint_names)

        def on_joints(msg):
            if self.trace_joints:
                try:
                    self.joint_trace.append((time.monotonic(), order.positions(msg)))
                except ValueError:
                    pass

        def on_policy(msg):
            self.policy_status = msg
            self.policy_statuses.append(msg)

        from rclpy.qos import qos_profile_sensor_data

        self.node.create_subscription(TaskStatus, TASK_STATUS_TOPIC, self._on_task_status, 10)
        self.node.create_subscription(PolicyStatus, f"{POLICY}/status", on_policy, 10)
        self.node.create_subscription(RecorderStatus, f"{RECORDER}/status", self._on_recorder_status, 10)
        self.node.create_subscription(JointState, robot.joint_state_topic, on_joints, qos_profile_sensor_data)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()
        self._clients: dict = {}

    def _on_task_status(self, msg) -> None:
        self.task_status, self.task_status_time = msg, time.monotonic()

    def _on_recorder_status(self, msg) -> None:
        self.recorder_status, self.recorder_status_time = msg, time.monotonic()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown ends the spin
            pass

    def call(self, service: str, timeout: float = 30.0) -> str:
        """Call a std_srvs/Trigger service; returns its message, raises if it fails."""
        from std_srvs.srv import Trigger

        response = self._call(Trigger, service, Trigger.Request(), timeout)
        if not response.success:
            raise ServiceRefused(f"{service} refused: {response.message}")
        return response.message

    def change_state(self, node: str, transition: str, timeout: float = 30.0) -> None:
        """A lifecycle transition of ``node`` by its label (configure, activate, deactivate, cleanup, shutdown),
        as ``ros2 lifecycle set`` does it; raises ServiceRefused if the node refuses it."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request(transition=Transition(label=transition))
        if not self._call(ChangeState, f"{node}/change_state", request, timeout).success:
            raise ServiceRefused(f"{node} refused the lifecycle transition {transition} (its log says why)")

    def _call(self, service_type, service: str, request, timeout: float):
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self.node.create_client(service_type, service)
        if not client.wait_for_service(timeout_sec=timeout):
            raise DemoClientError(f"service {service} did not appear within {timeout:.0f} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not future.done():
            raise DemoClientError(f"service {service} did not answer within {timeout:.0f} s")
        return future.result()

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str,
                 check: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if check is not None:
                check()
            time.sleep(0.02)
        raise DemoClientError(f"timed out after {timeout:.0f} s waiting for {what}")

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
