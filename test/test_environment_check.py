"""The ROS-free environment checks behind `dp-ros doctor`, on folders and metadata made here."""
import importlib.metadata as metadata

from dp_ros import environment_check as ec
from test_package_metadata import ROOT, imported_ros_packages


def _package(folder, name):
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text("")
    return folder / name


def _distribution(folder, name):
    info = folder / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    return metadata.PathDistribution(info)


def test_module_locations_lists_real_copies_in_import_order(tmp_path):
    first = _package(tmp_path / "a", "pkgx")
    second = _package(tmp_path / "b", "pkgx")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "pkgx").symlink_to(first)  # the same copy again
    (tmp_path / "d" / "pkgx").mkdir(parents=True)  # a namespace portion, no package
    search = [str(tmp_path / p) for p in ("d", "a", "missing", "c", "b")]
    assert ec.module_locations("pkgx", search) == [str(first), str(second)]


def test_ros_packages_from_two_places_fail_and_name_both(tmp_path):
    system = _package(tmp_path / "opt" / "ros" / "jazzy" / "lib" / "python3.12" / "site-packages", "std_msgs")
    wheels = _package(tmp_path / "venv" / "site-packages", "std_msgs")
    _package(tmp_path / "venv" / "site-packages", "rclpy")
    check = ec.check_ros_packages([str(system.parent), str(wheels.parent)])
    assert not check.ok
    assert f"std_msgs from 2 places: {system} (imported), {wheels}" in check.detail
    assert "rclpy" not in check.detail
    assert "requirements.txt" in check.fix and "setup.bash" in check.fix
    assert ec.check_ros_packages([str(wheels.parent)]).ok


def test_pythonpath_for_another_python_fails():
    humble = "/opt/ros/humble/lib/python3.10/site-packages"
    check = ec.check_pythonpath(f"/ws/install/x/lib/python3.12/site-packages:{humble}", (3, 12))
    assert not check.ok and humble in check.detail and "/ws/install" not in check.detail
    assert "Humble" in check.fix
    assert ec.check_pythonpath("/opt/ros/jazzy/lib/python3.12/site-packages", (3, 12)).ok
    assert ec.check_pythonpath("", (3, 12)).ok


def test_python_older_than_lerobot_needs_fails():
    check = ec.check_python((3, 10, 12), "/usr/bin/python3")
    assert not check.ok and "3.10.12" in check.detail and ">= 3.12" in check.detail
    assert "Jazzy" in check.fix and "pip route" in check.fix
    assert ec.check_python((3, 12, 3), "/usr/bin/python3").ok


def test_wheel_distros_come_from_the_rclpy_wheel_names(tmp_path):
    dists = [_distribution(tmp_path, n) for n in ("ros-jazzy-rclpy", "ros-rclpy", "ros-humble-std-msgs", "torch")]
    assert ec.wheel_distros(dists) == {"jazzy"}
    assert ec.wheel_distros([]) == set()


def test_sourced_distro_must_match_the_wheels():
    mixed = ec.check_distro("humble", {"jazzy"})
    assert not mixed.ok and "humble" in mixed.detail and "jazzy (PyPI wheels)" in mixed.detail and mixed.fix
    assert ec.check_distro("jazzy", {"jazzy"}).ok
    assert ec.check_distro("jazzy", set()).ok
    assert ec.check_distro(None, {"jazzy"}).ok
    assert ec.check_distro(None, set()).ok


def test_robot_side_compares_middleware_and_domain():
    assert ec.node_domain_id({"ROS_DOMAIN_ID": "7"}) == 7
    assert ec.node_domain_id({}) == 0
    unknown = ec.check_robot_side("rmw_fastrtps_cpp", 0)
    assert unknown.ok and "--robot-rmw" in unknown.detail
    assert ec.check_robot_side("rmw_fastrtps_cpp", 3, "rmw_fastrtps_cpp", 3).ok
    rmw = ec.check_robot_side("rmw_fastrtps_cpp", 0, robot_rmw="rmw_cyclonedds_cpp")
    assert not rmw.ok and "rmw_cyclonedds_cpp" in rmw.detail and "RMW_IMPLEMENTATION=rmw_cyclonedds_cpp" in rmw.fix
    domain = ec.check_robot_side("rmw_fastrtps_cpp", 0, robot_domain=5)
    assert not domain.ok and "ROS_DOMAIN_ID=5" in domain.fix and "RMW_IMPLEMENTATION" not in domain.fix
    assert not ec.check_robot_side(None, 0, robot_rmw="rmw_fastrtps_cpp").ok


def test_the_checked_ros_packages_cover_what_dp_ros_imports():
    checked = set(ec.ROS_PYTHON_PACKAGES)
    sources = list((ROOT / "dp_ros").rglob("*.py"))
    missing = imported_ros_packages(sources) - checked
    assert not missing, f"dp_ros imports ROS packages that doctor does not check for copies: {sorted(missing)}"
