"""Check that dp_ros can run here.

First the environment: Python new enough for LeRobot, one ROS 2 install (each
ROS Python package importable from one place, no packages for another Python on
PYTHONPATH, a sourced ROS_DISTRO that matches the installed ROS 2 wheels). Then
the versions found (rclpy, dp_ros_msgs, LeRobot, torch, diffusers, MuJoCo,
rosbags, cv_bridge) and the compute device; the middleware is tried for real (a
node publishes a PolicyStatus to itself), and its RMW and ROS domain are compared
with the robot's side when --robot-rmw / --robot-domain-id are given. Exits 1 and
says how to fix each problem found.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import json
import os
import time
from dataclasses import asdict

from dp_ros import environment_check
from dp_ros.environment_check import Check

SETUP_HINT = ("pip route: run `make setup` in the dp_ros repository; ROS workspace: "
              "pip install -r src/dp_ros/requirements.txt in the workspace's venv")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _location(module) -> str:
    """The folder a module was imported from (every folder of a namespace package)."""
    return os.path.dirname(module.__file__) if module.__file__ else ", ".join(module.__path__)


def check_rclpy() -> Check:
    try:
        import rclpy
    except Exception as exc:  # noqa: BLE001 - report any import failure
        return Check("rclpy", False, f"cannot import: {exc}",
                     "ROS workspace: source /opt/ros/jazzy/setup.bash; pip route: run `make setup`")
    version = _version("ros-rclpy") or _version("rclpy") or "version unknown"
    return Check("rclpy", True, f"{version} from {_location(rclpy)}")


def check_middleware() -> tuple[Check, str | None]:
    """Create a node and get a message through the middleware; also return the RMW's name."""
    try:
        import rclpy
        from rclpy.context import Context

        from dp_ros_msgs.msg import PolicyStatus
    except Exception as exc:  # noqa: BLE001
        return Check("middleware", False, f"cannot import: {exc}", SETUP_HINT), None
    rmw = None
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
                         "check ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE and the firewall"), rmw
        return Check("middleware", True, f"{rmw}, a PolicyStatus went through it"), rmw
    except Exception as exc:  # noqa: BLE001
        hint = SETUP_HINT
        if os.environ.get("RMW_IMPLEMENTATION"):
            hint = (f"RMW_IMPLEMENTATION={os.environ['RMW_IMPLEMENTATION']} is set: install that RMW "
                    "(workspace: apt install ros-jazzy-rmw-...; the pip route has only rmw_fastrtps_cpp) or unset it")
        return Check("middleware", False, str(exc), hint), rmw
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


def check_standard_messages() -> Check:
    """Serialize standard messages through the C type support, with numpy arrays in them.

    In a ROS workspace the venv's numpy (LeRobot needs numpy 2) meets message packages built
    by the distro against its own numpy; this is where such a mismatch would show.
    """
    try:
        import numpy
        from rclpy.serialization import deserialize_message, serialize_message
        from sensor_msgs.msg import CameraInfo
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        info = deserialize_message(serialize_message(CameraInfo(k=numpy.arange(9.0))), CameraInfo)
        trajectory = JointTrajectory(joint_names=["a"], points=[JointTrajectoryPoint(positions=[0.5])])
        trajectory = deserialize_message(serialize_message(trajectory), JointTrajectory)
        if info.k[8] != 8.0 or trajectory.points[0].positions[0] != 0.5:
            raise ValueError("a message changed its values on a serialization round trip")
    except Exception as exc:  # noqa: BLE001
        return Check("ros messages", False, f"standard messages do not serialize: {exc}",
                     "the message packages and numpy do not fit together; " + environment_check.ONE_ROS_FIX)
    return Check("ros messages", True, f"CameraInfo and JointTrajectory serialize with numpy {numpy.__version__}")


def check_messages() -> Check:
    try:
        from dp_ros_msgs.msg import PolicyStatus, RecorderStatus, TaskStatus, TrainingStatus  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return Check("dp_ros_msgs", False, f"cannot import: {exc}",
                     "pip route: `make msgs`; ROS workspace: colcon build the dp_ros_msgs package and source install/setup.bash")
    import dp_ros_msgs

    return Check("dp_ros_msgs", True, f"PolicyStatus, TrainingStatus, RecorderStatus, TaskStatus from {_location(dp_ros_msgs)}")


def check_module(name: str, dist: str, fix: str = SETUP_HINT) -> Check:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        return Check(name, False, f"cannot import: {exc}", fix)
    version = getattr(module, "__version__", "") or _version(dist) or "version unknown"
    return Check(name, True, f"{version} from {_location(module)}")


def check_lerobot() -> Check:
    """LeRobot importable, and a release dp_ros supports (every other entry point exits 2 otherwise)."""
    from dp_ros.lerobot_compat import LeRobotCompatError, check_lerobot_version

    try:
        version = check_lerobot_version()
    except LeRobotCompatError as exc:
        return Check("lerobot", False, str(exc), "pip install -r requirements.txt (pins the release tested)")
    found = check_module("lerobot", "lerobot")
    if not found.ok:
        return found
    return Check("lerobot", True, f"{version} (supported) from {found.detail.split(' from ', 1)[-1]}")


def check_device() -> Check:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return Check("device", False, f"torch missing: {exc}", SETUP_HINT)
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("device", True, f"cuda ({names}); policies run there with device=auto")
    return Check("device", True, f"cpu ({os.cpu_count()} cores, no CUDA device); policies run on the CPU")


def run_checks(robot_rmw: str | None = None, robot_domain: int | None = None) -> list[Check]:
    checks = [
        environment_check.check_python(),
        environment_check.check_pythonpath(),
        environment_check.check_ros_packages(),
        environment_check.check_distro(os.environ.get("ROS_DISTRO") or None, environment_check.wheel_distros()),
        check_rclpy(),
        check_standard_messages(),
        check_messages(),
    ]
    middleware, rmw = check_middleware()
    checks.append(middleware)
    checks.append(environment_check.check_robot_side(rmw, environment_check.node_domain_id(), robot_rmw, robot_domain))
    checks.append(check_lerobot())
    checks.append(check_module("torch", "torch"))
    checks.append(check_module("diffusers", "diffusers"))
    checks.append(check_module("mujoco", "mujoco"))
    checks.append(check_module("rosbags", "rosbags"))
    checks.append(check_module("cv_bridge", "cv-bridge"))
    checks.append(check_device())
    return checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")
    parser.add_argument("--robot-rmw", metavar="RMW",
                        help="the middleware of the robot's ROS 2 nodes (its RMW_IMPLEMENTATION, e.g. "
                             "rmw_fastrtps_cpp, rmw_cyclonedds_cpp); a different one from this node's is a problem")
    parser.add_argument("--robot-domain-id", type=int, metavar="ID",
                        help="the robot's ROS_DOMAIN_ID; a different one from this node's is a problem")


def run(args: argparse.Namespace) -> int:
    import dp_ros

    checks = run_checks(args.robot_rmw, args.robot_domain_id)
    failed = [c for c in checks if not c.ok]
    location = _location(dp_ros)
    if args.json:
        print(json.dumps({"ok": not failed, "dp_ros": location, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(f"dp_ros {dp_ros.__version__} from {location}")
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            print(f"  [{mark}] {c.name:<{width}}  {c.detail}")
            if not c.ok and c.fix:
                print(f"         {'':<{width}}  fix: {c.fix}")
        print("healthy" if not failed else f"{len(failed)} problem(s): {', '.join(c.name for c in failed)}")
    return 1 if failed else 0
