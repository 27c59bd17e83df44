"""policy.launch.py starts policy_node with the documented arguments (config/policy.yaml itself and the
run-policy options come from the node's declaration: test_node_params.py)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_launch_file_passes_the_documented_arguments():
    text = (ROOT / "launch" / "policy.launch.py").read_text()
    for argument in ("checkpoint", "robot_config", "params_file", "device", "use_sim_time"):
        assert f'"{argument}"' in text
    assert 'executable="policy_node"' in text
