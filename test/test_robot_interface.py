"""The robot interface: the one description of the robot, validated with clear errors (no ROS)."""
import copy

import pytest
import yaml

from dp_ros.robot_interface import (RobotInterfaceError, default_robot_config_path, load_robot_interface,
                                    parse_robot_interface, save_robot_interface)


def shipped():
    return yaml.safe_load(default_robot_config_path().read_text())


def error_for(change) -> str:
    data = copy.deepcopy(shipped())
    change(data["robot"])
    with pytest.raises(RobotInterfaceError) as info:
        parse_robot_interface(data, source="robot.yaml")
    return str(info.value)


def test_the_shipped_interface_reads_and_round_trips(tmp_path):
    robot = load_robot_interface(default_robot_config_path())
    assert robot.joint_names == ["shoulder_pan", "shoulder_lift", "elbow"]
    assert (robot.control_rate, robot.command_rate, robot.fps) == (10, 50, 10)
    assert robot.command.interpolate_from == "desired" and robot.acceleration_limits is None
    assert robot.cameras[0].feature == "observation.images.front" and robot.cameras[0].shape == (3, 96, 96)
    again = load_robot_interface(save_robot_interface(robot, tmp_path / "robot.yaml"))
    assert again.model_dump() == robot.model_dump()


def test_defaults_and_optional_fields():
    data = shipped()["robot"]
    del data["command_rate"], data["command"]["interpolate_from"], data["action"]
    data["joints"][1]["acceleration_limit"] = 8.0
    robot = parse_robot_interface(data)
    assert robot.command_rate == robot.control_rate
    assert robot.command.interpolate_from == "measured", "joint_trajectory_controller's default"
    assert robot.action.source == "leader" and robot.action.topic == "/leader/joint_states"
    assert robot.acceleration_limits == [float("inf"), 8.0, float("inf")]


@pytest.mark.parametrize("change,expected", [
    (lambda r: r["joints"][0].pop("velocity_limit"), "joints[0] (shoulder_pan).velocity_limit: missing required key"),
    (lambda r: r["joints"][1].update(velocity_limit=-1), "joints[1] (shoulder_lift).velocity_limit: Input should be "
                                                         "greater than 0, got -1"),
    (lambda r: r["joints"][0].update(position_limits=[1, -1]), "lower < upper"),
    (lambda r: r["joints"][0].update(acceleration_limit=0), "acceleration_limit: Input should be greater than 0"),
    (lambda r: r["joints"][0].update(velocity_limt=2), "velocity_limt: unknown key"),
    (lambda r: r["joints"].append(dict(r["joints"][0])), "duplicate joint names ['shoulder_pan']"),
    (lambda r: r.update(joints=[]), "joints: Tuple should have at least 1 item"),
    (lambda r: r.update(control_rate=7.5), "control_rate must be a whole number of Hz"),
    (lambda r: r.update(command_rate=5), "command_rate (5.0 Hz) must be at least control_rate (10.0 Hz)"),
    (lambda r: r["command"].update(type="velocity"), "command.type: Input should be 'joint_trajectory', "
                                                     "'float64_multi_array' or 'joint_state'"),
    (lambda r: r["command"].update(interpolate_from="now"), "command.interpolate_from: Input should be 'measured' or "
                                                            "'desired'"),
    (lambda r: r.update(joint_state_topic="/joint states"), "joint_state_topic: must be a topic name"),
    (lambda r: r["joints"][0].pop("position_limits"), "position_limits: missing required key (or mark the joint "
                                                      "continuous: true)"),
    (lambda r: r["joints"][0].update(continuous=True), "a continuous joint has no position_limits"),
    (lambda r: r["command"].update(update_rate=25), "command.update_rate (25.0 Hz) must be at least command_rate"),
    (lambda r: r["cameras"][0].update(name="front cam"), "cameras[0] (front cam).name: String should match pattern"),
    (lambda r: r["action"].update(topic=""), "action: topic must name the leader arm's JointState topic"),
])
def test_mistakes_are_named_with_where_they_are(change, expected):
    message = error_for(change)
    assert message.startswith("robot.yaml: ") and expected in message, message


def test_continuous_joints_and_the_controller_update_rate(tmp_path):
    data = shipped()["robot"]
    del data["joints"][0]["position_limits"]
    data["joints"][0]["continuous"] = True
    data["command"]["update_rate"] = 100
    robot = parse_robot_interface(data)
    assert robot.lower_limits[0] == float("-inf") and robot.upper_limits[0] == float("inf")
    assert robot.continuous_joints == [True, False, False] and robot.update_period == pytest.approx(0.01)
    assert load_robot_interface(save_robot_interface(robot, tmp_path / "robot.yaml")).model_dump() == robot.model_dump()
    assert load_robot_interface(default_robot_config_path()).update_period == pytest.approx(1 / 50)


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(RobotInterfaceError, match="not found"):
        load_robot_interface(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("robot: [unclosed")
    with pytest.raises(RobotInterfaceError, match="not valid YAML"):
        load_robot_interface(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(RobotInterfaceError, match="must be a YAML mapping"):
        load_robot_interface(tmp_path / "list.yaml")
