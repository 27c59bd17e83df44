"""The Gazebo files (which cannot run here) and the simulator's YAML agree with the robot interface and the MJCF."""
import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from dp_ros.robot_interface import default_robot_config_path, load_robot_interface
from dp_ros.sim.kinematics import MODEL_PATH, load_model

ROOT = Path(__file__).resolve().parent.parent
URDF = ROOT / "urdf" / "dp_sim_arm.urdf.xacro"
WORLD = ROOT / "worlds" / "reach_around.sdf"


@pytest.fixture(scope="module")
def robot():
    return load_robot_interface(default_robot_config_path())


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL_PATH)


def _floats(text):
    return np.array([float(v) for v in text.split()])


def test_urdf_joints_match_the_robot_interface_and_the_mjcf(robot, model):
    urdf = ET.parse(URDF).getroot()
    joints = {j.get("name"): j for j in urdf.findall("joint") if j.get("type") == "revolute"}
    assert list(joints) == robot.joint_names
    for spec in robot.joints:
        joint = joints[spec.name]
        limit = joint.find("limit")
        assert (float(limit.get("lower")), float(limit.get("upper"))) == (spec.lower, spec.upper)
        assert float(limit.get("velocity")) == spec.max_velocity
        mj_joint = model.joint(spec.name)
        np.testing.assert_allclose(mj_joint.range, [spec.lower, spec.upper])
        np.testing.assert_allclose(_floats(joint.find("axis").get("xyz")), mj_joint.axis)
        np.testing.assert_allclose(_floats(joint.find("origin").get("xyz")), model.body(mj_joint.bodyid[0]).pos)
    tip = next(j for j in urdf.findall("joint") if j.get("name") == "tip_joint")
    np.testing.assert_allclose(_floats(tip.find("origin").get("xyz")), model.site("tip").pos)

    control = urdf.find("ros2_control")
    assert control.find("hardware/plugin").text == "gz_ros2_control/GazeboSimSystem"
    assert [j.get("name") for j in control.findall("joint")] == robot.joint_names
    for joint in control.findall("joint"):
        assert [c.get("name") for c in joint.findall("command_interface")] == ["position"]
    plugin = urdf.find("gazebo/plugin")
    assert plugin.get("filename") == "gz_ros2_control-system"
    assert plugin.get("name") == "gz_ros2_control::GazeboSimROS2ControlPlugin"


def test_controllers_serve_the_robot_interface_topics(robot):
    config = yaml.safe_load((ROOT / "config" / "gz_controllers.yaml").read_text())
    managers = config["controller_manager"]["ros__parameters"]
    assert managers["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    assert managers["arm_controller"]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    assert config["arm_controller"]["ros__parameters"]["joints"] == robot.joint_names
    assert robot.command.type == "joint_trajectory"
    assert robot.command.topic == "/arm_controller/joint_trajectory"
    assert robot.joint_state_topic == "/joint_states"   # joint_state_broadcaster's topic


def test_bridge_and_world_camera_match_the_robot_interface_and_the_mjcf(robot, model):
    bridge = yaml.safe_load((ROOT / "config" / "gz_bridge.yaml").read_text())
    by_ros_topic = {b["ros_topic_name"]: b for b in bridge}
    assert by_ros_topic["/clock"]["ros_type_name"] == "rosgraph_msgs/msg/Clock"
    camera = robot.cameras[0]
    entry = by_ros_topic[camera.topic]
    assert entry["ros_type_name"] == "sensor_msgs/msg/Image" and entry["direction"] == "GZ_TO_ROS"

    world = ET.parse(WORLD).getroot().find("world")
    sensor = world.find(".//sensor[@name='front']")
    assert sensor.find("topic").text == entry["gz_topic_name"]
    image = sensor.find("camera/image")
    assert (int(image.find("width").text), int(image.find("height").text)) == (camera.width, camera.height)
    assert float(sensor.find("camera/horizontal_fov").text) == pytest.approx(np.radians(model.cam_fovy[0]), abs=1e-3)

    import mujoco

    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    pose = _floats(world.find("model[@name='front_camera']/pose").text)
    np.testing.assert_allclose(pose[:3], data.cam("front").xpos, atol=1e-6)
    roll, pitch, yaw = pose[3:]
    sdf_view = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
    mujoco_view = -data.cam("front").xmat.reshape(3, 3)[:, 2]   # MuJoCo cameras look along -z
    np.testing.assert_allclose(sdf_view, mujoco_view, atol=1e-3)

    obstacle = world.find("model[@name='obstacle']")
    np.testing.assert_allclose(_floats(obstacle.find("pose").text)[:3], model.geom("obstacle").pos)
    cylinder = obstacle.find("link/visual/geometry/cylinder")
    assert float(cylinder.find("radius").text) == pytest.approx(model.geom("obstacle").size[0])
    assert float(cylinder.find("length").text) == pytest.approx(2 * model.geom("obstacle").size[1])


def test_launch_files_name_files_that_exist():
    names = {p.name for folder in ("config", "urdf", "worlds") for p in (ROOT / folder).iterdir()}
    for launch_file in ("sim.launch.py", "sim_gazebo.launch.py"):
        tree = ast.parse((ROOT / "launch" / launch_file).read_text())
        literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        referenced = {s for s in literals if s.endswith((".yaml", ".sdf", ".xacro"))}
        assert referenced and referenced <= names, referenced - names


def test_the_package_installs_the_gazebo_files(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("dp_ros-*.whl"))).namelist()
    for path in ("share/dp_ros/urdf/dp_sim_arm.urdf.xacro", "share/dp_ros/worlds/reach_around.sdf",
                 "share/dp_ros/config/gz_bridge.yaml", "share/dp_ros/config/gz_controllers.yaml",
                 "share/dp_ros/config/sim.yaml", "share/dp_ros/launch/sim_gazebo.launch.py"):
        assert any(n.endswith(".data/data/" + path) for n in names), path
    assert "dp_ros/sim/assets/arm.xml" in names
    entry_points = zipfile.ZipFile(next(tmp_path.glob("dp_ros-*.whl"))).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "sim_node = dp_ros.entry_points:sim_node" in entry_points
    assert "expert_node = dp_ros.entry_points:expert_node" in entry_points
