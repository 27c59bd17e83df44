"""What in a joint_trajectory_controller's configuration contradicts dp_ros's model of it (no ROS; the check
over ROS against a node that declares the controller's parameters is in test_policy_node)."""
import pytest

from dp_ros.nodes.controller_check import contradictions, interpolate_from
from lerobot_fixtures import tiny_robot

AS_MODELLED = {"interpolate_from_desired_state": True, "open_loop_control": None, "interpolation_method": "splines",
               "joints": ["j3", "j1", "j2"], "command_interfaces": ["position"]}


def test_a_controller_configured_as_modelled_has_no_contradiction():
    robot = tiny_robot(interpolate_from="desired")
    assert contradictions(AS_MODELLED, robot) == []
    assert contradictions({name: None for name in AS_MODELLED}, robot) == [], "undeclared: nothing to contradict"
    assert interpolate_from({"open_loop_control": True}) == "desired"


@pytest.mark.parametrize("change,expected", [
    ({"interpolate_from_desired_state": False}, "starts new trajectories from the measured state"),
    ({"interpolation_method": "none"}, "interpolation_method is 'none'"),
    ({"joints": ["j1", "j2"]}, "its joints ['j1', 'j2'] are not the robot interface's ['j1', 'j2', 'j3']"),
    ({"command_interfaces": ["position", "velocity"]}, "command_interfaces are ['position', 'velocity']"),
])
def test_each_contradiction_is_named_with_what_to_change(change, expected):
    problems = contradictions({**AS_MODELLED, **change}, tiny_robot(interpolate_from="desired"))
    assert len(problems) == 1 and expected in problems[0], problems
