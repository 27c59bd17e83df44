"""Check that dp_ros can run here.

Prints the versions found (Python, ROS 2 client library and distro, DDS
middleware, dp_ros_msgs, LeRobot, torch, diffusers, MuJoCo, rosbags, cv_bridge)
and the compute device, then tries the middleware for real (a node publishes a
PolicyStatus to itself). Exits 1 and says how to fix each problem when something
is missing.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass

SETUP_HINT = "run `make setup` in the dp_ros repository (or pip install -r requirements.txt)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def check_python() -> Check:
    ok = sys.version_info[:2] >= (3, 10)
    detail = f"{platform.python_version()} ({sys.executable})"
    return Check("python", ok, detail, "" if ok else "dp_ros needs Python >= 3.10 (3.12 for LeRobot 0.6.1)")


def check_rclpy() -> Check:
    try:
        import rclpy  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - report any import failure
        return Check("rclpy", False, f"cannot import: {exc}",
                     "source your ROS 2 setup.bash, or " + SETUP_HINT)
    distro = os.environ.get("ROS_DISTRO") or ("jazzy (PyPI wheels)" if _version("ros-jazzy-rclpy") else "unknown")
    version = _version("ros-rclpy") or _version("rclpy") or "from ROS install"
    return Check("rclpy", True, f"{version}, ROS 2 distro {distro}")


def check_middleware() -> Check:
    """Create a node and get a message through the middleware."""
    try:
        import rclpy
        from rclpy.context import Context

        from dp_ros_msgs.msg import PolicyStatus
    except Exception as exc:  # noqa: BLE001
        return Check("middleware", False, f"cannot import: {exc}", SETUP_HINT)
    context = Context()
    try:
        rclpy.init(context=context)
        rmw = rclpy.get_rmw_implementation_identifier()
        node = rclpy.create_node("dp_ros_doctor", context=context)
        received = []
        node.create_subscription(PolicyStatus, "~/probe", received.append, 10)
        pub = node.create_publisher(PolicyStatus, "~/probe", 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 3.0
        while not received and time.monotonic() < deadline:
            pub.publish(PolicyStatus(reason="doctor"))
            executor.spin_once(timeout_sec=0.05)
        node.destroy_node()
        if not received:
            return Check("middleware", False, f"{rmw}: a node did not receive its own message within 3 s",
                         "check ROS_DOMAIN_ID / ROS_LOCALHOST_ONLY and the firewall")
        return Check("middleware", True, f"{rmw}, a PolicyStatus went through it")
    except Exception as exc:  # noqa: BLE001
        hint = "install ros-jazzy-rmw-fastrtps-cpp (" + SETUP_HINT + ")" if "rmw" in str(exc) else SETUP_HINT
        return Check("middleware", False, str(exc), hint)
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


def check_messages() -> Check:
    try:
        from dp_ros_msgs.msg import PolicyStatus, RecorderStatus, TaskStatus, TrainingStatus  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return Check("dp_ros_msgs", False, f"cannot import: {exc}",
                     "pip route: `make msgs`; ROS workspace: colcon build the dp_ros_msgs package and source install/setup.bash")
    import dp_ros_msgs

    return Check("dp_ros_msgs", True, f"PolicyStatus, TrainingStatus, RecorderStatus, TaskStatus from {os.path.dirname(dp_ros_msgs.__file__)}")


def check_module(name: str, dist: str, fix: str = SETUP_HINT) -> Check:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        return Check(name, False, f"cannot import: {exc}", fix)
    version = getattr(module, "__version__", "") or _version(dist)
    return Check(name, True, version or "installed")


def check_device() -> Check:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return Check("device", False, f"torch missing: {exc}", SETUP_HINT)
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("device", True, f"cuda ({names}); policies run there with device=auto")
    return Check("device", True, f"cpu ({os.cpu_count()} cores, no CUDA device); policies run on the CPU")


def run_checks() -> list[Check]:
    checks = [check_python(), check_rclpy(), check_messages(), check_middleware()]
    checks.append(check_module("lerobot", "lerobot"))
    checks.append(check_module("torch", "torch"))
    checks.append(check_module("diffusers", "diffusers"))
    checks.append(check_module("mujoco", "mujoco"))
    checks.append(check_module("rosbags", "rosbags"))
    checks.append(check_module("cv_bridge", "cv-bridge"))
    checks.append(check_device())
    return checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    checks = run_checks()
    failed = [c for c in checks if not c.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        import dp_ros

        print(f"dp_ros {dp_ros.__version__}")
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            print(f"  [{mark}] {c.name:<{width}}  {c.detail}")
            if not c.ok and c.fix:
                print(f"         {'':<{width}}  fix: {c.fix}")
        print("healthy" if not failed else f"{len(failed)} problem(s): {', '.join(c.name for c in failed)}")
    return 1 if failed else 0
