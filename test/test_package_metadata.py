"""package.xml, setup.py and the repository layout agree with the code."""
import ast
import functools
import importlib.metadata as metadata
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parent.parent
# ROS packages that have no PyPI wheel here but are imported by launch files.
ROS_ONLY_PACKAGES = {"launch", "launch_ros", "launch_testing", "ros2cli", "rosbag2_py"}
# The pinned requirement files: the workspace's (ML and data), the pip route's ROS 2 wheels, tests.
REQUIREMENT_FILES = ("requirements.txt", "requirements-ros.txt", "requirements-test.txt", "requirements-view.txt")


def _imported_top_levels(paths):
    names = set()
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


@functools.cache
def _packages_distributions():
    return metadata.packages_distributions()  # reads every installed RECORD: once per run


def _is_ros_package(module):
    if module in ROS_ONLY_PACKAGES or module == "dp_ros_msgs":
        return True
    dists = _packages_distributions().get(module, [])
    return any(d.lower().startswith("ros-") or d.lower().startswith("ros_") for d in dists)


def imported_ros_packages(paths):
    """The ROS packages imported by the Python files ``paths``."""
    return {m for m in _imported_top_levels(paths) if _is_ros_package(m)}


def test_package_xml_parses_and_declares_ros_imports():
    package = parse_package(str(ROOT / "package.xml"))
    assert package.name == "dp_ros"
    assert package.package_format == 3
    assert package.get_build_type() == "ament_python"
    declared = {d.name for d in package.exec_depends + package.build_depends + package.build_export_depends}
    sources = list((ROOT / "dp_ros").rglob("*.py")) + list((ROOT / "launch").glob("*.py"))
    imported_ros = imported_ros_packages(sources)
    assert {"rclpy", "dp_ros_msgs"} <= imported_ros
    missing = sorted(imported_ros - declared)
    assert not missing, f"package.xml does not declare ROS packages the code imports: {missing}"


def test_messages_package_xml_parses():
    package = parse_package(str(ROOT / "dp_ros_msgs" / "package.xml"))
    assert package.name == "dp_ros_msgs"
    assert package.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [g.name for g in package.member_of_groups]
    for msg in (ROOT / "msg").glob("*.msg"):
        assert msg.stem in (ROOT / "dp_ros_msgs" / "CMakeLists.txt").read_text(), f"{msg.name} is not generated"


def test_layout_of_the_design_card():
    for path in ("package.xml", "setup.py", "setup.cfg", "dp_ros", "launch", "config", "msg", "test",
                 "resource/dp_ros", *REQUIREMENT_FILES, "README.md", ".ci/run", "Dockerfile"):
        assert (ROOT / path).exists(), path


def test_setup_installs_launch_config_and_marker(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("dp_ros-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert "share/ament_index/resource_index/packages/dp_ros" in data
    assert "share/dp_ros/package.xml" in data
    for launch_file in (ROOT / "launch").glob("*.launch.py"):
        assert f"share/dp_ros/launch/{launch_file.name}" in data
    for config_file in (ROOT / "config").glob("*.yaml"):
        assert f"share/dp_ros/config/{config_file.name}" in data
    assert "share/dp_ros/config/robot.yaml" in data
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dp-ros = dp_ros.entry_points:dp_ros" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_console_scripts_resolve():
    for ep in metadata.distribution("dp_ros").entry_points:
        if ep.group == "console_scripts":
            assert callable(ep.load()), ep


def _requirements(name):
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [line for line in lines if line]


def _project_name(requirement):
    return re.split(r"[\[=<>!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_requirements_pin_every_package_in_one_place():
    pinned_in = {}
    for name in REQUIREMENT_FILES:
        for requirement in _requirements(name):
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[^=<>~!,; ]+", requirement), \
                f"{name} must pin one exact version: {requirement}"
            project = _project_name(requirement)
            assert project not in pinned_in, f"{project} is pinned in {pinned_in[project]} and {name}"
            pinned_in[project] = name
    assert set(REQUIREMENT_FILES) <= set(re.findall(r"requirements[a-z-]*\.txt", (ROOT / "tools" / "setup.sh").read_text()))


def test_the_workspace_requirements_hold_no_ros_package():
    """requirements.txt goes into a ROS workspace's venv: nothing in it may shadow the system's ROS."""
    workspace = {_project_name(r) for r in _requirements("requirements.txt")}
    ros_like = {p for p in workspace if p.startswith(("ros-", "colcon", "catkin", "cv-bridge", "rosdep"))}
    assert not ros_like, f"requirements.txt must not install ROS packages: {sorted(ros_like)}"
    installed = {_project_name(r) for r in _requirements("requirements-ros.txt")}
    assert "ros-jazzy-rclpy" in installed and "ros-jazzy-rmw-fastrtps-cpp" in installed
