"""What a launch file passes to a node: the parameters file, then only the launch arguments the user gave.

Each node parameter a launch file offers as an argument is declared there with an empty default, meaning
"not given": the node then keeps the value of ``params_file`` (or its declared default). A given argument
is converted to the parameter's type (``steps:=500`` is an int) and checked, and comes after the file, so
it wins, as ``-p`` does after ``--params-file`` with ``ros2 run``. ROS-free: launch files call
:func:`node_parameters` from an ``OpaqueFunction`` with ``context.launch_configurations``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import yaml

from dp_ros.node_params.declaration import NodeParameters, ParameterError, Scalar

NOT_GIVEN = ""
"""The default of every node-parameter launch argument: the parameters file's value stands."""
USE_SIM_TIME = "use_sim_time"


def given_value(declaration: NodeParameters, name: str, text: str) -> Scalar:
    """A launch argument's text as the value of parameter ``name`` (its declared type), checked."""
    if name == USE_SIM_TIME:
        value = yaml.safe_load(text)
        if not isinstance(value, bool):
            raise ParameterError(f"use_sim_time must be true or false, got {text!r}")
        return value
    param = declaration[name]
    if isinstance(param.default, str):
        return param.convert(text)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParameterError(f"launch argument {name}:={text} is not a value: {exc}") from None
    return param.convert(value)


def given_overrides(declaration: NodeParameters, configurations: Mapping[str, str], names: Sequence[str],
                    renamed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The parameters set by the launch arguments ``names`` that the user gave (non-empty).

    ``renamed``: launch argument -> the parameter it sets, where they differ (e.g. sim_node's publish_clock
    from use_sim_time)."""
    renamed = renamed or {}
    overrides: dict[str, Any] = {}
    for argument in names:
        text = configurations.get(argument, NOT_GIVEN)
        if text == NOT_GIVEN:
            continue
        parameter = renamed.get(argument, argument)
        value = given_value(declaration, argument if argument == USE_SIM_TIME else parameter, text)
        overrides[parameter] = list(value) if isinstance(value, tuple) else value
    return overrides


def node_parameters(declaration: NodeParameters, configurations: Mapping[str, str], names: Sequence[str],
                    renamed: Mapping[str, str] | None = None, launch_defaults: Mapping[str, Any] | None = None) -> list:
    """A launch_ros ``Node``'s ``parameters``: ``launch_defaults`` (values a launch file prefers to the node's own
    defaults), then the ``params_file`` (if any), then the given arguments; later ones win."""
    parameters: list = [dict(launch_defaults)] if launch_defaults else []
    if configurations.get("params_file", NOT_GIVEN) != NOT_GIVEN:
        parameters.append(configurations["params_file"])
    overrides = given_overrides(declaration, configurations, names, renamed)
    if overrides:
        parameters.append(overrides)
    return parameters
