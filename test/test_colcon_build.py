"""A colcon workspace build of this repository, with colcon and ROS 2 from PyPI wheels."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)


@pytest.mark.slow
def test_colcon_build_and_use(tmp_path):
    src = tmp_path / "src" / "dp_ros"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "build", "install", "log", ".git",
                                                             "__pycache__", "*.egg-info", "outputs"))
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}",
               AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    build = subprocess.run(
        [str(VENV / "bin" / "colcon"), "build", "--base-paths", "src", "src/dp_ros/dp_ros_msgs",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
         f"-DCMAKE_PROJECT_INCLUDE={src / 'tools' / 'wheel_include_fix.cmake'}", "-DBUILD_TESTING=OFF"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = tmp_path / "install"
    assert (install / "dp_ros" / "share" / "dp_ros" / "launch").is_dir()
    assert (install / "dp_ros" / "share" / "dp_ros" / "config" / "robot.yaml").is_file()
    assert (install / "dp_ros" / "lib" / "dp_ros" / "dp-ros").is_file()
    # The workspace's own messages and package import after sourcing setup.bash.
    check = ("import dp_ros, dp_ros_msgs; from dp_ros_msgs.msg import PolicyStatus; "
             "assert '/install/' in dp_ros_msgs.__file__ and '/install/' in dp_ros.__file__, dp_ros_msgs.__file__; "
             "print(PolicyStatus(reason='ws').reason)")
    run = subprocess.run(["bash", "-c", f"source install/setup.bash && {sys.executable} -c \"{check}\""],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("ws")
