"""dp-ros doctor and the CLI's help."""
import json
import subprocess
import sys
from pathlib import Path

DP_ROS = str(Path(sys.executable).parent / "dp-ros")


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
    import os

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
