"""Small helpers shared by the simulator's nodes.

:func:`declare_parameters`: launch files and YAML often give ``15`` where a
node expects ``15.0``, which rclpy refuses with a type error; here parameters
are declared with dynamic typing and each value is converted to its default's
type, or refused with a message naming the parameter.

:func:`publish_while_up`: publishing from a thread or timer while Ctrl-C shuts
ROS down raises; once the context is closing, a message is dropped quietly.
"""
from __future__ import annotations

from typing import Any, Mapping

from rcl_interfaces.msg import ParameterDescriptor


def _convert(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"parameter {name} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ValueError(f"parameter {name} must be a whole number, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter {name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"parameter {name} must be a string, got {value!r}")
        return value
    return value


def declare_parameters(node, table: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare ``name -> (default, description)`` on ``node``; returns the values, converted to the defaults' types."""
    values = {}
    for name, (default, description) in table.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description, dynamic_typing=True))
        values[name] = _convert(name, node.get_parameter(name).value, default)
    return values


def publish_while_up(node, publisher, msg) -> None:
    """``publisher.publish(msg)``, dropped quietly once ``node``'s context is shutting down."""
    if not node.context.ok():
        return
    try:
        publisher.publish(msg)
    except Exception:  # noqa: BLE001 - the context may close between the check and the call
        if node.context.ok():
            raise
