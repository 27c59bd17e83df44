"""The recorder's configuration stays in one piece: config/recorder.yaml lists exactly the node's
parameters with their defaults, dp-ros record maps its options onto them, and record.launch.py
starts the recorder_node executable with that file."""
from __future__ import annotations

import argparse
import ast

from ros_testing import REPO_ROOT

from dp_ros.bringup import load_params_file
from dp_ros.cli import record
from dp_ros.nodes.recorder_node import PARAMETERS


def test_config_file_lists_every_parameter_with_its_default():
    values = load_params_file(REPO_ROOT / "config" / "recorder.yaml", "recorder_node")
    assert set(values) == set(PARAMETERS)
    for name, (default, description) in PARAMETERS.items():
        assert values[name] == default, name
        assert description
    text = (REPO_ROOT / "config" / "recorder.yaml").read_text()
    for name in PARAMETERS:  # every line carries a comment
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{name}:"))
        assert "#" in line or name == "dataset_root", line


def test_record_options_become_node_parameters(tmp_path):
    parser = argparse.ArgumentParser()
    record.add_arguments(parser)
    params = tmp_path / "rec.yaml"
    params.write_text("recorder_node:\n  ros__parameters:\n    task: from file\n    max_input_age: 0.5\n")
    args = parser.parse_args(["--params-file", str(params), "--root", "/data/x", "--max-episode-seconds", "20",
                              "--action-source", "next_state", "--param", "input_reliability=reliable", "--use-sim-time"])
    values = record.node_parameters(args)
    assert values == {"task": "from file", "max_input_age": 0.5, "dataset_root": "/data/x",
                      "max_episode_seconds": 20.0, "action_source": "next_state", "input_reliability": "reliable",
                      "use_sim_time": True}
    assert set(values) - {"use_sim_time"} <= set(PARAMETERS)


def test_launch_file_starts_the_recorder_with_its_parameters_file():
    source = (REPO_ROOT / "launch" / "record.launch.py").read_text()
    tree = ast.parse(source)
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert {"recorder_node", "recorder.yaml", "robot.yaml", "dataset_root", "task", "use_sim_time"} <= strings
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
