"""Every launch file: a value in the user's params_file wins over the launch file's own defaults, and an
argument the user gives wins over params_file. The launch files run against test/launch_standin.py (the ROS 2
launch system is not installable here; see that module for what it reproduces)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dp_ros.node_params.config_files import NODES
from dp_ros.node_params.declaration import Param
from dp_ros.node_params.launch_arguments import NOT_GIVEN
from launch_standin import launch

LAUNCH_DIR = Path(__file__).resolve().parent.parent / "launch"
LAUNCH_FILES = sorted(p.name for p in LAUNCH_DIR.glob("*.launch.py"))
# launch arguments that are no node parameter: which nodes start
SWITCHES = {"sim.launch.py": {"expert": "true"}}
RENAMED = {("sim_node", "use_sim_time"): "publish_clock"}


def another_value(param: Param, offset: int = 1):
    """A valid value of ``param`` other than its default (``offset`` picks different ones)."""
    default = param.default
    if isinstance(default, bool):
        return not default if offset % 2 else default
    if isinstance(default, int):
        return default + offset
    if isinstance(default, float):
        return default + 0.25 * offset
    if isinstance(default, tuple):
        return [f"from_file_{offset}"]
    if param.choices:
        others = [c for c in param.choices if c and c != default]
        return others[offset % len(others)]
    return f"/from/source_{offset}"


def file_values(node_name: str) -> dict:
    values = {p.name: another_value(p) for p in NODES[node_name]}
    values["use_sim_time"] = True
    return values


def write_params_file(tmp_path, node_names) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({name: {"ros__parameters": file_values(name)} for name in node_names}))
    return path


def dp_ros_nodes(launch_file: str, arguments: dict):
    context = launch(LAUNCH_DIR / launch_file, {**SWITCHES.get(launch_file, {}), **arguments})
    return context, [n for n in context.nodes if n.package == "dp_ros"]


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_every_value_of_the_users_params_file_wins_over_the_launch_files_defaults(tmp_path, launch_file):
    context, nodes = dp_ros_nodes(launch_file, {})
    if not nodes:  # sim_gazebo: Gazebo's own nodes, none of dp_ros's parameters to override
        assert launch_file == "sim_gazebo.launch.py" and context.skipped
        return
    params_file = write_params_file(tmp_path, [n.name for n in nodes])
    context, nodes = dp_ros_nodes(launch_file, {"params_file": str(params_file)})
    for node in nodes:
        started_with = node.parameter_values(context)
        for name, value in file_values(node.name).items():
            assert started_with.get(name) == value, (
                f"{launch_file}: {node.name}'s {name} is {started_with.get(name)!r}, params_file says {value!r}")


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_the_arguments_the_user_gives_win_over_the_params_file(tmp_path, launch_file):
    context, nodes = dp_ros_nodes(launch_file, {})
    offered = [name for name, value in context.launch_configurations.items()
               if value == NOT_GIVEN and name != "params_file"]
    if not nodes:
        return
    params_file = write_params_file(tmp_path, [n.name for n in nodes])
    given, expected = {}, {}
    for name in offered:
        for node in nodes:
            parameter = RENAMED.get((node.name, name), name)
            declaration = NODES[node.name]
            if name == "use_sim_time":
                given[name], expected[(node.name, parameter)] = "false", False
            elif parameter in declaration:
                value = another_value(declaration[parameter], offset=2)
                given[name] = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
                if isinstance(value, str):
                    given[name] = value
                expected[(node.name, parameter)] = value
    assert expected, f"{launch_file} offers no node parameter as an argument"
    context, nodes = dp_ros_nodes(launch_file, {"params_file": str(params_file), **given})
    for node in nodes:
        started_with = node.parameter_values(context)
        for (node_name, parameter), value in expected.items():
            if node_name == node.name:
                assert started_with[parameter] == value, f"{launch_file}: {node.name}'s {parameter}"


def test_a_launch_argument_left_out_passes_nothing(tmp_path):
    """Without params_file or arguments, policy_node starts from the shipped file alone: every value the node's
    declaration has, nothing from the launch file."""
    context, nodes = dp_ros_nodes("policy.launch.py", {})
    (node,) = nodes
    assert node.parameter_values(context) == NODES["policy_node"].defaults()
