"""The Foxglove layout in config/ plots only what dp_ros publishes: every topic in it is one of the robot
interface's (config/robot.yaml) or the policy node's, and every message path resolves on that topic's message
type (a renamed field or topic breaks this test, not a user's plot)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

LAYOUT = Path(__file__).resolve().parent.parent / "config" / "foxglove_layout.json"


def topic_types() -> dict:
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from dp_ros_msgs.msg import PolicyChunk, PolicyStatus, SafetyIntervention

    robot = load_robot_interface(default_robot_config_path())
    types = {robot.joint_state_topic: JointState, robot.command.topic: JointTrajectory,
             "/policy_node/plan": JointTrajectory, "/policy_node/chunks": PolicyChunk,
             "/policy_node/safety_interventions": SafetyIntervention, "/policy_node/status": PolicyStatus}
    types.update({cam.topic: Image for cam in robot.cameras})
    return types


def message_paths(node) -> list[str]:
    """Every message path (``value``, ``topicPath``, ``imageTopic``) in a layout's panel configurations."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("value", "topicPath", "imageTopic") and isinstance(value, str):
                found.append(value)
            else:
                found += message_paths(value)
    elif isinstance(node, list):
        for item in node:
            found += message_paths(item)
    return found


def resolve(message_class, fields: list[str]) -> None:
    """Walk ``fields`` (``name`` or ``name[index]``/``name[:]``) down the message class's fields."""
    import importlib

    current = message_class
    for field in fields:
        name, indexed = re.fullmatch(r"(\w+)(\[[^\]]*\])?", field).groups()
        types = current.get_fields_and_field_types()
        assert name in types, f"{current.__name__} has no field {name!r} (fields: {sorted(types)})"
        kind = types[name]
        if indexed:
            assert kind.startswith("sequence<") or "[" in kind, f"{current.__name__}.{name} is not an array"
            kind = re.sub(r"^sequence<(.+?)(, \d+)?>$", r"\1", kind).split("[")[0]
        if "/" in kind:
            package, type_name = kind.split("/")
            current = getattr(importlib.import_module(f"{package}.msg"), type_name)


def test_the_layout_plots_only_topics_and_fields_dp_ros_publishes():
    layout = json.loads(LAYOUT.read_text())
    panels = layout["configById"]
    assert {"Image", "Plot", "StateTransitions"} <= {key.split("!")[0] for key in panels}
    types = topic_types()
    paths = message_paths(panels)
    assert len(paths) >= 10
    for path in paths:
        topic = next((t for t in sorted(types, key=len, reverse=True) if path == t or path.startswith(t + ".")), None)
        assert topic is not None, f"the layout plots {path}, which is no topic dp_ros publishes or reads"
        fields = path[len(topic) + 1:].split(".") if path != topic else []
        resolve(types[topic], fields)
    # every panel the layout tree names is configured, and every configured panel is placed
    placed = set(re.findall(r'"([A-Za-z0-9]+![^"]+)"', json.dumps(layout["layout"])))
    assert placed == set(panels)


@pytest.mark.parametrize("path", ["/policy_node/chunks.no_such_field", "/policy_node/plan.points[:].position[0]"])
def test_a_wrong_path_is_caught(path):
    with pytest.raises(AssertionError):
        topic, fields = path.split(".", 1)
        resolve(topic_types()[topic], fields.split("."))
