"""Is this Python one ROS 2 install and one dp_ros install? The ROS-free checks of `dp-ros doctor`.

The set-ups that break ROS 2 with LeRobot are mixed environments: the ROS Python packages
importable from two places (a sourced /opt/ros/<distro> on PYTHONPATH and the PyPI wheels of
the pip route in site-packages), a sourced distro other than the wheels', packages built for
another Python on PYTHONPATH, a Python older than LeRobot needs, and a robot whose middleware or
ROS domain differs from the node's. These checks read only the interpreter, its search path, the
installed distributions' metadata and the environment variables, so they need no rclpy and report
a broken ROS set-up instead of failing inside it.
"""
from __future__ import annotations

import importlib.machinery
import importlib.metadata as metadata
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# LeRobot 0.6.1 (requirements.txt) declares Requires-Python >=3.12.
LEROBOT_MIN_PYTHON = (3, 12)
# The ROS 2 Python packages dp_ros imports (package.xml's exec_depends that are Python packages).
ROS_PYTHON_PACKAGES = (
    "rclpy", "ament_index_python", "builtin_interfaces", "rcl_interfaces", "rosgraph_msgs", "std_msgs",
    "std_srvs", "sensor_msgs", "trajectory_msgs", "diagnostic_msgs", "lifecycle_msgs", "cv_bridge", "dp_ros_msgs",
)
# Where README explains what runs on Humble and other distributions.
OTHER_DISTROS_HINT = "README, 'ROS 2 Humble and other distributions'"
ONE_ROS_FIX = (
    "use one ROS 2 per environment. ROS workspace: the ROS packages come from the sourced "
    "/opt/ros/<distro>, and the workspace venv holds only requirements.txt; recreate it: "
    "rm -rf .venv && python3 -m venv --system-site-packages .venv && "
    ".venv/bin/pip install -r src/dp_ros/requirements.txt. Pip route (make setup): use a shell in "
    "which no ROS setup.bash was sourced (PYTHONPATH and AMENT_PREFIX_PATH unset)"
)


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python(version: Sequence[int] = tuple(sys.version_info[:3]), executable: str = sys.executable) -> Check:
    """LeRobot needs Python 3.12 or newer (ROS 2 Humble runs 3.10, Jazzy 3.12)."""
    text = ".".join(str(v) for v in version)
    detail = f"{text} ({executable})"
    if tuple(version[:2]) >= LEROBOT_MIN_PYTHON:
        return Check("python", True, detail)
    needed = ".".join(str(v) for v in LEROBOT_MIN_PYTHON)
    return Check("python", False, detail + f"; LeRobot 0.6.1 needs Python >= {needed}",
                 "dp_ros cannot run in this Python (ROS 2 Humble's is 3.10): run it in a ROS 2 Jazzy "
                 "workspace or container, or by the pip route (make setup, no ROS install), on the "
                 f"robot's network; see {OTHER_DISTROS_HINT}")


def module_locations(name: str, search_path: Iterable[str]) -> list[str]:
    """Every place on ``search_path`` where top-level module ``name`` can be imported from.

    In search order (the first one is what ``import name`` loads), as real paths without
    repeats; namespace-package portions (folders without ``__init__.py``) are not counted.
    """
    locations: list[str] = []
    for entry in search_path:
        entry = entry or os.getcwd()
        if not os.path.isdir(entry):
            continue
        spec = importlib.machinery.PathFinder.find_spec(name, [entry])
        if spec is None or spec.origin is None:
            continue
        where = spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
        where = os.path.realpath(where)
        if where not in locations:
            locations.append(where)
    return locations


def check_ros_packages(search_path: Iterable[str] | None = None,
                       names: Sequence[str] = ROS_PYTHON_PACKAGES) -> Check:
    """Each ROS Python package must be importable from one place only."""
    search_path = list(sys.path if search_path is None else search_path)
    duplicated = {name: places for name in names if len(places := module_locations(name, search_path)) > 1}
    if not duplicated:
        return Check("ros packages", True, "each ROS 2 Python package is importable from one place")
    lines = [f"{name} from {len(places)} places: {places[0]} (imported), " + ", ".join(places[1:])
             for name, places in duplicated.items()]
    return Check("ros packages", False, "two ROS 2 installs are mixed: " + "; ".join(lines), ONE_ROS_FIX)


def check_pythonpath(pythonpath: str | None = None, version: Sequence[int] = tuple(sys.version_info[:2])) -> Check:
    """PYTHONPATH must not hold packages built for another Python (a sourced ROS of another distro)."""
    pythonpath = os.environ.get("PYTHONPATH", "") if pythonpath is None else pythonpath
    own = f"{version[0]}.{version[1]}"
    foreign = [entry for entry in pythonpath.split(os.pathsep)
               if (match := re.search(r"/python(\d+\.\d+)/", entry + "/")) and match.group(1) != own]
    if not foreign:
        return Check("pythonpath", True, "no packages for another Python version on PYTHONPATH")
    return Check("pythonpath", False,
                 f"PYTHONPATH holds packages for another Python than {own}: {', '.join(foreign)}; "
                 "their compiled modules cannot load here",
                 "this shell sourced a ROS 2 built for another Python (Humble: 3.10): open a shell "
                 f"without it; dp_ros needs ROS 2 Jazzy (Python 3.12) or the pip route ({OTHER_DISTROS_HINT})")


def wheel_distros(distributions: Iterable[metadata.Distribution] | None = None) -> set[str]:
    """ROS 2 distributions of the rclpy wheels installed from PyPI (``ros-<distro>-rclpy``)."""
    found = set()
    for dist in metadata.distributions() if distributions is None else distributions:
        if match := re.fullmatch(r"ros[-_]([a-z]+)[-_]rclpy", (dist.metadata["Name"] or "").lower()):
            found.add(match.group(1))
    return found


def check_distro(sourced: str | None, wheels: set[str]) -> Check:
    """A sourced ROS 2 (ROS_DISTRO) and the ROS 2 wheels in this Python must be the same distro."""
    where = ([f"{sourced} (ROS_DISTRO, a sourced ROS 2)"] if sourced else []) + \
            [f"{distro} (PyPI wheels)" for distro in sorted(wheels)]
    if not where:
        return Check("ros distro", True, "no ROS_DISTRO set and no ROS 2 wheels installed")
    distros = ({sourced} if sourced else set()) | wheels
    if len(distros) == 1:
        return Check("ros distro", True, ", ".join(where))
    return Check("ros distro", False, "different ROS 2 distributions in one environment: " + ", ".join(where),
                 ONE_ROS_FIX + f"; a robot on another distro talks to dp_ros over the network ({OTHER_DISTROS_HINT})")


def node_domain_id(environ: Mapping[str, str] = os.environ) -> int:
    """The ROS domain this process joins (ROS_DOMAIN_ID, 0 when unset)."""
    value = environ.get("ROS_DOMAIN_ID", "").strip()
    return int(value) if value.isdigit() else 0


def check_robot_side(node_rmw: str | None, node_domain: int,
                     robot_rmw: str | None = None, robot_domain: int | None = None) -> Check:
    """The robot's nodes and dp_ros's must share the middleware (RMW) and the ROS domain."""
    here = f"this node: {node_rmw or 'middleware unknown'}, ROS_DOMAIN_ID {node_domain}"
    if robot_rmw and node_rmw is None:
        return Check("robot side", False, f"{here}: cannot compare with the robot's {robot_rmw}",
                     "make the middleware work here first (see the 'middleware' line)")
    problems, fixes = [], []
    if robot_rmw and robot_rmw != node_rmw:
        problems.append(f"the robot uses {robot_rmw} (ROS 2 does not guarantee that two RMWs talk)")
        fixes.append(f"use one middleware on both sides: export RMW_IMPLEMENTATION={robot_rmw} here (a workspace "
                     f"or container needs its package, ros-jazzy-{robot_rmw.replace('_', '-')}; the pip route has "
                     f"only rmw_fastrtps_cpp, PyPI's one RMW), or RMW_IMPLEMENTATION={node_rmw} on the robot")
    if robot_domain is not None and robot_domain != node_domain:
        problems.append(f"the robot is on ROS_DOMAIN_ID {robot_domain} (nodes of two domains never meet)")
        fixes.append(f"export ROS_DOMAIN_ID={robot_domain} here")
    if problems:
        return Check("robot side", False, f"{here}; " + "; ".join(problems),
                     "; ".join(fixes))
    if robot_rmw is None and robot_domain is None:
        return Check("robot side", True, here + " (the robot's side must use the same; "
                                                "compare with --robot-rmw and --robot-domain-id)")
    return Check("robot side", True, here + ", the same as the robot's")
