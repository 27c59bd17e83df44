"""Helpers for tests that talk to real nodes over real DDS."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def ros_node(name: str, **node_kwargs) -> Iterator:
    """An rclpy node in its own context with a single-threaded executor."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context, **node_kwargs)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.executor_for_tests = executor
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def spin_until(node, predicate: Callable[[], bool], timeout: float, step: Callable[[], None] | None = None) -> bool:
    """Spin ``node`` until ``predicate()`` holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        node.executor_for_tests.spin_once(timeout_sec=0.02)
        if predicate():
            return True
    return predicate()


def spin_for(node, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        node.executor_for_tests.spin_once(timeout_sec=0.02)


def python_process(code_or_args: str | list[str], **kwargs) -> subprocess.Popen:
    """Start another Python process of this environment (same ROS domain)."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, *args], env=env, cwd=kwargs.pop("cwd", REPO_ROOT),
                            stdout=kwargs.pop("stdout", subprocess.PIPE),
                            stderr=kwargs.pop("stderr", subprocess.STDOUT), text=True, **kwargs)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    """Ask a process to stop (SIGINT, then SIGKILL) and return its output."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ""


def call_trigger(node, service: str, timeout: float = 15.0):
    """Call a std_srvs/Trigger service from ``node`` (waiting for it to appear); returns the response."""
    from std_srvs.srv import Trigger

    client = node.create_client(Trigger, service)
    try:
        assert spin_until(node, client.service_is_ready, timeout), f"service {service} did not appear"
        future = client.call_async(Trigger.Request())
        assert spin_until(node, future.done, timeout), f"{service} did not answer"
        return future.result()
    finally:
        node.destroy_client(client)


def call_service(node, service_type, service: str, request, timeout: float = 15.0):
    """Call any service from ``node`` (waiting for it to appear); returns the response."""
    client = node.create_client(service_type, service)
    try:
        assert spin_until(node, client.service_is_ready, timeout), f"service {service} did not appear"
        future = client.call_async(request)
        assert spin_until(node, future.done, timeout), f"{service} did not answer"
        return future.result()
    finally:
        node.destroy_client(client)


def change_state(node, target: str, transition: str, timeout: float = 30.0) -> bool:
    """A lifecycle transition of node ``target`` by its label (activate, deactivate, ...), as
    ``ros2 lifecycle set`` does it; returns whether it succeeded."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    request = ChangeState.Request(transition=Transition(label=transition))
    return call_service(node, ChangeState, f"{target}/change_state", request, timeout).success
