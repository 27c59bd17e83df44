"""package.xml, setup.py and the repository layout agree with the code."""
import ast
import importlib.metadata as metadata
import subprocess
import sys
import zipfile
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parent.parent
# ROS packages that have no PyPI wheel here but are imported by launch files.
ROS_ONLY_PACKAGES = {"launch", "launch_ros", "launch_testing", "ros2cli", "rosbag2_py"}


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


def _is_ros_package(module):
    if module in ROS_ONLY_PACKAGES or module == "dp_ros_msgs":
        return True
    dists = metadata.packages_distributions().get(module, [])
    return any(d.lower().startswith("ros-") or d.lower().startswith("ros_") for d in dists)


def test_package_xml_parses_and_declares_ros_imports():
    package = parse_package(str(ROOT / "package.xml"))
    assert package.name == "dp_ros"
    assert package.package_format == 3
    assert package.get_build_type() == "ament_python"
    declared = {d.name for d in package.exec_depends + package.build_depends + package.build_export_depends}
    sources = list((ROOT / "dp_ros").rglob("*.py")) + list((ROOT / "launch").glob("*.py"))
    imported_ros = {m for m in _imported_top_levels(sources) if _is_ros_package(m)}
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
                 "resource/dp_ros", "requirements.txt", "README.md", ".ci/run"):
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
    assert "dp-ros = dp_ros.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_console_scripts_resolve():
    for ep in metadata.distribution("dp_ros").entry_points:
        if ep.group == "console_scripts":
            assert callable(ep.load()), ep


def test_requirements_pin_every_package():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"requirements.txt must pin versions: {line}"
