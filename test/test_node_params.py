"""Node parameters declared once: the shipped YAML files, the dp-ros options and the ROS parameters all come
from the declarations, and options reach a node through rclpy's own argument handling."""
from __future__ import annotations

import argparse

import pytest
import rclpy
import yaml
from rclpy.node import Node

from ros_testing import REPO_ROOT

from dp_ros.cli import record, sim
from dp_ros.cli.main import main
from dp_ros.node_params import ParameterError, parameters_file
from dp_ros.node_params.config_files import CONFIG_FILES, NODES
from dp_ros.node_params.recorder import RECORDER
from dp_ros.node_params.sim import EXPERT, SIM
from dp_ros.nodes.node_tools import declare_parameters


@pytest.mark.parametrize("file_name", sorted(CONFIG_FILES))
def test_shipped_parameters_files_are_the_declarations(file_name):
    header, declarations = CONFIG_FILES[file_name]
    shipped = (REPO_ROOT / "config" / file_name).read_text()
    assert shipped == parameters_file(header, *declarations), (
        f"config/{file_name} differs from the declarations: `dp-ros params {file_name} > config/{file_name}`")
    data = yaml.safe_load(shipped)
    for declaration in declarations:
        assert data[declaration.node_name]["ros__parameters"] == declaration.defaults()
        for param in declaration:
            assert param.description and type(param.convert(param.default)) is type(param.default)


def test_values_are_converted_and_checked_with_the_parameters_name():
    assert SIM["time_limit"].convert(15) == 15.0 and isinstance(SIM["time_limit"].convert(15), float)
    assert SIM["publish_clock"].convert("true") is True
    for param, value, message in ((SIM["seed"], 1.5, "seed must be a whole number"),
                                  (SIM["joint_state_rate"], 0.0, "joint_state_rate must be greater than 0"),
                                  (SIM["camera_rate"], -1.0, "camera_rate must be at least 0"),
                                  (EXPERT["side"], "up", "side must be one of random, alternate, left, right"),
                                  (RECORDER["on_stale"], 3, "on_stale must be a string")):
        with pytest.raises(ParameterError, match=message):
            param.convert(value)


def _recorder_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    record.add_arguments(parser)
    return parser.parse_args(argv)


def test_file_then_options_then_pairs_reach_a_node_through_rclpy(tmp_path):
    params = tmp_path / "rec.yaml"
    params.write_text("recorder_node:\n  ros__parameters:\n    task: from file\n    max_input_age: 0.5\n"
                      "    min_frames: 4\n")
    args = _recorder_args("--params-file", str(params), "--root", "/data/x", "--max-episode-seconds", "20",
                          "--min-frames", "7", "--action-source", "next_state",
                          "--param", "input_reliability=reliable", "--param", "min_frames=8", "--use-sim-time")
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node("recorder_node", context=context, cli_args=record.node_arguments(args))
        values = declare_parameters(node, RECORDER)
        assert node.get_parameter("use_sim_time").value is True
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert values == {**RECORDER.defaults(), "task": "from file", "max_input_age": 0.5, "dataset_root": "/data/x",
                      "max_episode_seconds": 20.0, "action_source": "next_state", "input_reliability": "reliable",
                      "min_frames": 8}


def test_bad_arguments_are_refused_before_any_node_starts(tmp_path):
    with pytest.raises(ParameterError, match="recorder_node has no parameter 'fps'"):
        record.node_arguments(_recorder_args("--param", "fps=30"))
    with pytest.raises(ParameterError, match="parameters file not found"):
        record.node_arguments(_recorder_args("--params-file", str(tmp_path / "missing.yaml")))
    assert main(["record", "--param", "nonsense"]) == 2


def test_sim_options_set_both_nodes_where_they_share_a_parameter():
    parser = argparse.ArgumentParser()
    sim.add_arguments(parser)
    args = parser.parse_args(["--seed", "3", "--side", "left", "--no-forward", "--publish-clock",
                              "--param", "task_status_topic=/other"])
    sim_arguments, expert_arguments = sim.node_arguments(args)
    assert "seed:=3" in sim_arguments and "seed:=3" in expert_arguments
    assert "publish_clock:=true" in sim_arguments and "use_sim_time:=true" in expert_arguments
    assert "side:=\"left\"" in expert_arguments and "forward_commands:=false" in expert_arguments
    assert "task_status_topic:=/other" in expert_arguments   # the expert listens where the simulator speaks


def test_dp_ros_params_prints_the_files_and_nodes(capsys):
    assert main(["params", "sim.yaml"]) == 0
    assert capsys.readouterr().out == (REPO_ROOT / "config" / "sim.yaml").read_text()
    assert main(["params", "recorder_node"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["recorder_node"]["ros__parameters"] == RECORDER.defaults()
    assert main(["params"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in NODES)
    assert main(["params", "nowhere_node"]) == 2
