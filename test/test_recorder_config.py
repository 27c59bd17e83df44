"""record.launch.py starts the recorder_node executable with config/recorder.yaml (the file itself and the
dp-ros record options come from the node's declaration: test_node_params.py)."""
from __future__ import annotations

import ast

from ros_testing import REPO_ROOT



def test_launch_file_starts_the_recorder_with_its_parameters_file():
    source = (REPO_ROOT / "launch" / "record.launch.py").read_text()
    tree = ast.parse(source)
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert {"recorder_node", "recorder.yaml", "dataset_root", "task", "use_sim_time"} <= strings
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
