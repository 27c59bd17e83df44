"""A stand-in for the ROS 2 launch system (``launch``, ``launch_ros``), to run dp_ros's launch files here.

``launch`` and ``launch_ros`` come with a ROS 2 install and from no package registry reachable here, so
launch files cannot be executed for real in this suite. This stand-in implements the small part of their
API that dp_ros's launch files use, with the semantics that matter for which value a node gets:

- ``DeclareLaunchArgument``: a given argument wins, else the default (substitutions performed);
- ``OpaqueFunction``: called with the context, its actions are executed in turn;
- ``Node(parameters=[...])``: a path is a parameters YAML (its ``<node name>`` and ``/**`` sections), a dict
  sets names; entries apply in order, later ones win; plain Python values keep their type, strings
  stay strings, and substitutions are performed and read as YAML unless a ``ParameterValue`` gives a type
  (launch_ros's ``normalize_parameters`` / ``evaluate_parameters``);
- ``IfCondition``: "true" or "1" (any case) runs the action.

What it does not do: start processes, include other packages' launch files, run xacro.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent  # laid out like share/dp_ros (config/, launch/, urdf/, worlds/)


class Substitution:
    def perform(self, context) -> str:
        raise NotImplementedError


def perform(value, context) -> str:
    if isinstance(value, Substitution):
        return value.perform(context)
    if isinstance(value, (list, tuple)):
        return "".join(perform(v, context) for v in value)
    return str(value)


class LaunchConfiguration(Substitution):
    def __init__(self, name: str):
        self.name = name

    def perform(self, context) -> str:
        return context.launch_configurations[self.name]


class PathJoinSubstitution(Substitution):
    def __init__(self, parts):
        self.parts = parts

    def perform(self, context) -> str:
        return os.path.join(*(perform(p, context) for p in self.parts))


class FindPackageShare(Substitution):
    def __init__(self, package: str):
        self.package = package

    def perform(self, context) -> str:
        if self.package != "dp_ros":
            raise LookupError(f"stand-in: package {self.package} is not installed here")
        return str(ROOT)


class Unavailable(Substitution):
    """Command (xacro) and PythonExpression: kept, never needed to decide a dp_ros node's parameters."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def perform(self, context) -> str:
        raise NotImplementedError("stand-in: not available without a ROS 2 install")


class ParameterValue:
    def __init__(self, value, value_type=None):
        self.value, self.value_type = value, value_type

    def evaluate(self, context) -> Any:
        text = perform(self.value, context)
        if self.value_type is str:
            return text
        value = yaml.safe_load(text)
        return self.value_type(value) if self.value_type else value


class DeclareLaunchArgument:
    def __init__(self, name: str, default_value=None, description: str = "", **_):
        self.name, self.default_value, self.description = name, default_value, description

    def execute(self, context) -> list:
        if self.name not in context.launch_configurations:
            if self.default_value is None:
                raise RuntimeError(f"launch argument {self.name} is required")
            context.launch_configurations[self.name] = perform(self.default_value, context)
        return []


class OpaqueFunction:
    def __init__(self, function, **_):
        self.function = function

    def execute(self, context) -> list:
        return list(self.function(context) or [])


class IfCondition:
    def __init__(self, expression):
        self.expression = expression

    def evaluate(self, context) -> bool:
        return perform(self.expression, context).strip().lower() in ("true", "1")


class Node:
    def __init__(self, package: str, executable: str, name: str | None = None, parameters=(), condition=None,
                 **kwargs):
        self.package, self.executable, self.name = package, executable, name or executable
        self.parameters, self.condition, self.kwargs = list(parameters or []), condition, kwargs

    def execute(self, context) -> list:
        if self.condition is None or self.condition.evaluate(context):
            context.nodes.append(self)
        return []

    def parameter_values(self, context) -> dict[str, Any]:
        """The parameters this node starts with (before its own declared defaults fill in the rest)."""
        values: dict[str, Any] = {}
        for entry in self.parameters:
            if isinstance(entry, dict):
                values.update({name: _evaluate(value, context) for name, value in entry.items()})
            else:
                sections = yaml.safe_load(Path(perform(entry, context)).read_text()) or {}
                for key in ("/**", self.name, "/" + self.name):
                    values.update((sections.get(key) or {}).get("ros__parameters", {}))
        return values


def _evaluate(value, context) -> Any:
    if isinstance(value, ParameterValue):
        return value.evaluate(context)
    if isinstance(value, Substitution) or (isinstance(value, list) and any(isinstance(v, Substitution) for v in value)):
        return yaml.safe_load(perform(value, context))
    return value


class Action:
    """Actions kept but not executed here (IncludeLaunchDescription of another package's launch file)."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def execute(self, context) -> list:
        context.skipped.append(self)
        return []


class LaunchDescription:
    def __init__(self, entities):
        self.entities = list(entities)


class Context:
    def __init__(self, arguments: dict[str, str]):
        self.launch_configurations = dict(arguments)
        self.nodes: list[Node] = []
        self.skipped: list = []


def _modules() -> dict[str, types.ModuleType]:
    contents = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument, "OpaqueFunction": OpaqueFunction,
                           "IncludeLaunchDescription": Action},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                                 "PathJoinSubstitution": PathJoinSubstitution,
                                 "Command": Unavailable, "PythonExpression": Unavailable},
        "launch.conditions": {"IfCondition": IfCondition},
        "launch.launch_description_sources": {"PythonLaunchDescriptionSource": Action},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
        "launch_ros.parameter_descriptions": {"ParameterValue": ParameterValue},
    }
    modules = {}
    for name, attributes in contents.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        modules[name] = module
    return modules


@contextlib.contextmanager
def launch_modules():
    """``launch`` and ``launch_ros`` importable as this stand-in, for the duration."""
    saved = {name: sys.modules.get(name) for name in _modules()}
    sys.modules.update(_modules())
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def launch(launch_file: Path, arguments: dict[str, str]) -> Context:
    """Run ``launch_file``'s description with the user's ``arguments`` (``name:=value`` pairs); the nodes it starts
    are in ``context.nodes``."""
    with launch_modules():
        spec = importlib.util.spec_from_file_location(launch_file.stem.replace(".", "_"), launch_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        context = Context(arguments)
        pending = list(description.entities)
        while pending:
            pending = pending[0].execute(context) + pending[1:]
    return context
