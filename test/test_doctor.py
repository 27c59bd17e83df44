"""dp-ros doctor and the CLI's help."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DP_ROS = str(Path(sys.executable).parent / "dp-ros")
ROOT = Path(__file__).resolve().parent.parent


def test_doctor_reports_a_healthy_environment():
    result = subprocess.run([DP_ROS, "doctor", "--json"], capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["ok"]
    names = {c["name"] for c in report["checks"]}
    assert {"python", "rclpy", "middleware", "dp_ros_msgs", "lerobot", "torch", "device"} <= names


def test_doctor_fails_with_an_explanation_when_messages_are_missing(tmp_path):
    # Hide dp_ros_msgs behind a package that fails to import.
    fake = tmp_path / "dp_ros_msgs"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('dp_ros_msgs was not built')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    result = subprocess.run([DP_ROS, "doctor"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "dp_ros_msgs" in result.stdout
    assert "make msgs" in result.stdout


def test_help_lists_subcommands():
    result = subprocess.run([DP_ROS, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "doctor" in result.stdout
    assert subprocess.run([DP_ROS, "doctor", "--help"], capture_output=True, text=True).returncode == 0


def _python_older_than_312():
    for name in ("python3.10", "python3.11", "python3"):
        path = shutil.which(name)
        probe = path and subprocess.run([path, "-c", "import sys; print(sys.version_info < (3, 12))"],
                                        capture_output=True, text=True)
        if probe and probe.returncode == 0 and probe.stdout.strip() == "True":
            return path
    return None


def test_doctor_reports_a_mixed_ros_environment(tmp_path):
    """A sourced ROS 2 Humble over the pip route's Jazzy wheels, and a robot on another middleware.

    The Humble install is a folder laid out like /opt/ros/humble with a real second copy of
    std_msgs in its Python 3.10 site-packages, put on PYTHONPATH as its setup.bash would, with
    ROS_DISTRO=humble; the copy is the wheels' own (no Humble build exists here), which is enough:
    Python imports whichever copy comes first.
    """
    humble = tmp_path / "opt" / "ros" / "humble"
    site = humble / "lib" / "python3.10" / "site-packages"
    wheels_std_msgs = Path(importlib.util.find_spec("std_msgs").submodule_search_locations[0])
    shutil.copytree(wheels_std_msgs, site / "std_msgs")
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep),
               ROS_DISTRO="humble", AMENT_PREFIX_PATH=str(humble))
    result = subprocess.run([DP_ROS, "doctor", "--json", "--robot-rmw", "rmw_cyclonedds_cpp"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert not report["ok"]
    copies = checks["ros packages"]
    assert not copies["ok"] and f"std_msgs from 2 places: {site / 'std_msgs'} (imported), {wheels_std_msgs}" in copies["detail"]
    assert not checks["pythonpath"]["ok"] and str(site) in checks["pythonpath"]["detail"]
    distro = checks["ros distro"]
    assert not distro["ok"] and "humble" in distro["detail"] and "jazzy (PyPI wheels)" in distro["detail"]
    robot = checks["robot side"]
    assert not robot["ok"] and "rmw_cyclonedds_cpp" in robot["detail"] and "rmw_fastrtps_cpp" in robot["detail"]
    for name in ("ros packages", "pythonpath", "ros distro", "robot side"):
        assert checks[name]["fix"], name
    assert checks["python"]["ok"] and checks["lerobot"]["ok"]


def test_doctor_says_why_an_older_python_cannot_run_dp_ros():
    """ROS 2 Humble's Python is 3.10: doctor runs there and says what to do instead."""
    python = _python_older_than_312()
    if python is None:
        pytest.skip("no Python older than 3.12 on this machine (python3.10, python3.11 or python3)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH")}
    result = subprocess.run([python, "-m", "dp_ros.cli.main", "doctor", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert not checks["python"]["ok"] and ">= 3.12" in checks["python"]["detail"]
    assert "Jazzy" in checks["python"]["fix"] and "pip route" in checks["python"]["fix"]
