"""README's ROS 2 workspace commands, run as written against a stand-in for a system ROS 2 Jazzy.

The block after README's ``<!-- workspace-commands`` marker runs line by line in one bash, in a
fresh HOME, against the stand-in of ros_standin.py: a system Python with apt's tools, an
/opt/ros/jazzy made of the ROS 2 Jazzy wheels, and the distributions of requirements.txt ready to
be linked into the workspace venv. That is the closest this machine comes to Ubuntu 24.04 with
ROS 2 from apt: it has no ROS package repository, no rosdep database, no ros2 command and no
container engine. The suite's venv cannot serve as the system Python itself: ``python -m venv
--system-site-packages`` run from it sees the base CPython's site-packages, not the venv's, and the
base CPython must stay untouched; so the stand-in system Python is a second installation prefix of
that CPython (executable copied, standard library linked). As on Ubuntu, the ROS packages are not
in its site-packages but on PYTHONPATH, from the stand-in /opt/ros/jazzy/setup.bash.

The lines that cannot run here as written are replaced as SUBSTITUTIONS says, each with its
reason; every other line runs verbatim. Then the test checks what a user relies on: colcon built
both packages, the nodes' executables start with the workspace venv's Python, and `dp-ros doctor`
(a real message through Fast DDS) passes there with rclpy from the stand-in /opt/ros/jazzy,
LeRobot from the venv and dp_ros_msgs from install/.
"""
import json
import shutil
import subprocess

import pytest

import ros_standin
from workspace_commands import ROOT, readme_commands

# README line -> what runs instead ("" skips it), and why.
SUBSTITUTIONS = {
    "apt-get install -y --no-install-recommends python3-venv libosmesa6 ffmpeg":
        ("", "system packages: make setup installed libosmesa6 and ffmpeg; the stand-in Python has venv"),
    "git clone <this repository> src/dp_ros":
        ("cp -r {repository} src/dp_ros", "the working tree under test, not its last commit"),
    "source /opt/ros/jazzy/setup.bash":
        ("source {ros_setup}", "the stand-in /opt/ros/jazzy"),
    "rosdep install --from-paths src src/dp_ros/dp_ros_msgs --ignore-src -y":
        ("", "no rosdep database or ROS apt repository here; the stand-in holds the ROS packages"),
    "pip install -r src/dp_ros/requirements.txt":
        ("ln -s {workspace_site}/* .venv/lib/{python}/site-packages/ && ln -s {workspace_bin}/* .venv/bin/ && "
         "pip install --no-index --no-deps -r src/dp_ros/requirements.txt",
         "the installed distributions of requirements.txt's dependency closure are linked in first (a real "
         "install downloads 3 GB); pip must then find every pin satisfied, without an index"),
    "python -m colcon build --base-paths src src/dp_ros/dp_ros_msgs":
        ("python -m colcon build --base-paths src src/dp_ros/dp_ros_msgs --cmake-args "
         "-DCMAKE_PROJECT_INCLUDE=$PWD/src/dp_ros/tools/wheel_include_fix.cmake "
         "-DPython3_EXECUTABLE=$VIRTUAL_ENV/bin/python -DBUILD_TESTING=OFF",
         "the wheels export the include folders of the image they were built in (tools/wheel_include_fix.cmake); "
         "no package tests are built"),
    "ros2 run dp_ros dp-ros doctor":
        ("install/dp_ros/lib/dp_ros/dp-ros doctor --json > doctor.json",
         "no ros2 command here: the executable `ros2 run` starts"),
}


def test_substitutions_are_for_readme_lines():
    commands = readme_commands()
    stale = [line for line in SUBSTITUTIONS if line not in commands]
    assert not stale, f"SUBSTITUTIONS name lines that README no longer has: {stale}"


@pytest.mark.slow
def test_readme_workspace_builds_and_runs_against_a_system_ros(tmp_path):
    sides = ros_standin.split_requirements()
    ros_standin.check_sides_do_not_share_files(sides)
    system_python = ros_standin.system_python(tmp_path / "usr", sides["system"])
    ros_setup = ros_standin.ros_prefix(tmp_path / "opt" / "ros" / "jazzy", sides["ros"])
    home = tmp_path / "home"
    workspace = home / "dp_ws"
    venv = workspace / ".venv"
    workspace_site, workspace_bin = ros_standin.workspace_packages(tmp_path / "pip-install", sides["workspace"], venv)
    repository = tmp_path / "repository"
    shutil.copytree(ROOT, repository, ignore=shutil.ignore_patterns(
        ".venv", "build", "install", "log", ".git", "__pycache__", "*.egg-info", "outputs"))
    values = dict(repository=repository, ros_setup=ros_setup, workspace_site=workspace_site,
                  workspace_bin=workspace_bin, python=ros_standin.PYTHON)

    lines = ["set -eo pipefail", "PS4='+ ${SECONDS}s '", "set -x"]
    for command in readme_commands():
        replacement, _reason = SUBSTITUTIONS.get(command, (command, "as written"))
        if replacement:
            lines.append(replacement.format(**values))
    home.mkdir()
    run = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=home, capture_output=True, text=True,
                         env=ros_standin.clean_environment(home, system_python.parent), timeout=1500)
    log = run.stdout[-3000:] + run.stderr[-6000:]
    doctor = json.loads((workspace / "doctor.json").read_text()) if (workspace / "doctor.json").is_file() else None
    assert doctor is not None, log
    failed = [c for c in doctor["checks"] if not c["ok"]]
    assert run.returncode == 0 and doctor["ok"], f"{failed}\n{log}"

    # The venv is the one README made: from the system Python, seeing its site-packages.
    config = (venv / "pyvenv.cfg").read_text()
    assert f"home = {system_python.parent}" in config and "include-system-site-packages = true" in config
    # colcon built both packages; `ros2 run` and `ros2 launch` start the nodes with the venv's Python.
    install = workspace / "install"
    assert (install / "dp_ros" / "share" / "dp_ros" / "launch" / "policy.launch.py").is_file()
    assert (install / "dp_ros" / "share" / "dp_ros" / "config" / "robot.yaml").is_file()
    for executable in ("policy_node", "recorder_node", "dp-ros"):
        first_line = (install / "dp_ros" / "lib" / "dp_ros" / executable).read_text().splitlines()[0]
        assert first_line == f"#!{venv}/bin/python", f"{executable}: {first_line}"
    # Each part comes from where a workspace has it, and doctor saw one ROS 2.
    checks = {c["name"]: c for c in doctor["checks"]}
    assert doctor["dp_ros"].startswith(str(install / "dp_ros") + "/"), doctor["dp_ros"]
    assert f"from {ros_setup.parent}/" in checks["rclpy"]["detail"], checks["rclpy"]
    assert f"from {install / 'dp_ros_msgs'}/" in checks["dp_ros_msgs"]["detail"], checks["dp_ros_msgs"]
    for module in ("lerobot", "torch", "mujoco", "rosbags"):
        assert f"from {venv}/" in checks[module]["detail"], checks[module]
    assert f"from {ros_setup.parent}/" in checks["cv_bridge"]["detail"], checks["cv_bridge"]
    assert checks["ros packages"]["ok"] and checks["ros distro"]["detail"].startswith("jazzy")
    assert checks["middleware"]["detail"].startswith("rmw_fastrtps_cpp")
