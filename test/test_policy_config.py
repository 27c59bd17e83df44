"""config/policy.yaml documents exactly the policy node's parameters, with the node's defaults."""
from pathlib import Path

import yaml

from dp_ros.nodes.policy_node import PARAMETERS

ROOT = Path(__file__).resolve().parent.parent


def test_policy_yaml_lists_every_parameter_with_its_default():
    params = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text())["policy_node"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, (default, description) in PARAMETERS.items():
        assert params[name] == default, name
        assert description, name


def test_launch_file_passes_the_documented_arguments():
    text = (ROOT / "launch" / "policy.launch.py").read_text()
    for argument in ("checkpoint", "robot_config", "params_file", "device", "use_sim_time"):
        assert f'"{argument}"' in text
    assert 'executable="policy_node"' in text
