"""A node's parameters, declared once.

A :class:`NodeParameters` lists each parameter with its default (whose type is
the parameter's type), description, allowed choices and bounds. From it come:

- the ROS parameters the node declares (``nodes.node_tools.declare_parameters``),
  each value converted to the default's type or refused with a message naming it;
- the ``dp-ros`` options of the parameters marked ``option`` (:meth:`add_options`),
  turned into rclpy's own arguments (:meth:`ros_arguments`: ``--ros-args
  --params-file F -p name:=value``), so a file and ``-p`` pairs mean exactly what
  they mean to ``ros2 run``;
- the documented parameters YAML shipped in ``config/`` (:meth:`yaml`; the tests
  keep the files equal to it; ``dp-ros params <node>`` prints it).

ROS-free: nothing here imports rclpy.
"""
from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

Scalar = bool | int | float | str | tuple[str, ...]
EMPTY_STRING = '""'  # an empty value, as YAML (and so rcl) reads it


class ParameterError(ValueError):
    """A parameter value of the wrong type, outside its choices or bounds (the message names it)."""


@dataclass(frozen=True)
class Param:
    """One parameter of a node."""

    name: str
    default: Scalar
    """Value when none is given; its type (bool, int, float, str, or a tuple of str for a string array) is
    the parameter's type."""
    description: str
    """What it does, in words a user acts on (the ``--help`` text and the YAML comment)."""
    choices: tuple[str, ...] = ()
    """The allowed values of a string parameter (empty: any)."""
    minimum: float | None = None
    """The smallest allowed value of a number (inclusive)."""
    above: float | None = None
    """A number must be greater than this (exclusive)."""
    option: str | bool = False
    """Offer it as a ``dp-ros`` option: True = ``--name-with-dashes``, or the option's own spelling."""
    section: str = ""
    """The heading this parameter and the ones after it come under in the YAML (empty: the previous one's)."""

    def convert(self, value: Any) -> Scalar:
        """``value`` as this parameter's type (``15`` for a float is 15.0), checked; else a ParameterError."""
        value = _as_type(self.name, value, self.default)
        if self.choices and value not in self.choices:
            raise ParameterError(f"parameter {self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ParameterError(f"parameter {self.name} must be at least {self.minimum:g}; got {value!r}")
        if self.above is not None and not value > self.above:
            raise ParameterError(f"parameter {self.name} must be greater than {self.above:g}; got {value!r}")
        return value

    @property
    def flag(self) -> str:
        if isinstance(self.option, str):
            return self.option
        return "--" + self.name.replace("_", "-")


def _as_type(name: str, value: Any, default: Scalar) -> Scalar:
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ParameterError(f"parameter {name} must be a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ParameterError(f"parameter {name} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ParameterError(f"parameter {name} must be a whole number, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"parameter {name} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ParameterError(f"parameter {name} must be a string, got {value!r}")
    return value


class NodeParameters:
    """The parameters of the node ``node_name``, in the order they are documented."""

    def __init__(self, node_name: str, params: Sequence[Param]):
        self.node_name = node_name
        self._params = {p.name: p for p in params}

    def __iter__(self) -> Iterator[Param]:
        return iter(self._params.values())

    def __contains__(self, name: str) -> bool:
        return name in self._params

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def defaults(self) -> dict[str, Scalar]:
        return {p.name: p.default for p in self}

    def convert(self, values: dict[str, Any]) -> dict[str, Scalar]:
        """Every parameter's value (given or default), converted and checked."""
        return {p.name: p.convert(values.get(p.name, p.default)) for p in self}

    # --- dp-ros options ---------------------------------------------------------------
    def add_options(self, parser: argparse.ArgumentParser, group_title: str | None = None,
                    shared: Sequence[str] = (), required: Sequence[str] = ()) -> None:
        """An option for each parameter marked ``option``; absent options leave the parameter alone.

        ``shared``: parameters whose option another node's declaration already added (one option sets both).
        ``required``: options the command cannot run without.
        """
        target = parser.add_argument_group(group_title) if group_title else parser
        for p in self:
            if p.option is False or p.name in shared:
                continue
            help_text = f"{p.description} (= {p.name}; default {_shown(p.default)})"
            if isinstance(p.default, bool):
                action = "store_false" if p.default else "store_true"
                if p.default:
                    help_text = f"do not: {p.description} (= {p.name}: false)"
                target.add_argument(p.flag, dest=p.name, action=action, default=None, help=help_text)
            else:
                target.add_argument(p.flag, dest=p.name, type=type(p.default), default=None,
                                    choices=[c for c in p.choices if c] or None, help=help_text,
                                    required=p.name in required)

    def option_values(self, args: argparse.Namespace) -> dict[str, Scalar]:
        """The parameters set by options on the command line."""
        return {p.name: getattr(args, p.name) for p in self
                if p.option is not False and getattr(args, p.name, None) is not None}

    def command_line_arguments(self, args: argparse.Namespace) -> list[str]:
        """rclpy ``cli_args`` from a dp-ros command's ``--params-file``, options, ``--use-sim-time`` and ``--param``."""
        values = self.option_values(args)
        if getattr(args, "use_sim_time", False):
            values["use_sim_time"] = True
        return self.ros_arguments(args.params_file, values, args.param)

    def ros_arguments(self, params_file: str = "", values: dict[str, Any] | None = None,
                      assignments: Sequence[str] = ()) -> list[str]:
        """rclpy ``cli_args``: the file, then ``values``, then ``name=value`` pairs (later ones win, as in ROS)."""
        arguments = ["--ros-args"]
        if params_file:
            if not Path(params_file).expanduser().is_file():
                raise ParameterError(f"parameters file not found: {params_file}")
            arguments += ["--params-file", str(Path(params_file).expanduser())]
        for name, value in (values or {}).items():
            arguments += ["-p", f"{name}:={json.dumps(value)}"]
        for pair in assignments:
            name, sep, value = (part.strip() for part in pair.partition("="))
            if not sep or not name:
                raise ParameterError(f"expected NAME=VALUE, got {pair!r}")
            if name not in self and name != "use_sim_time":
                raise ParameterError(f"{self.node_name} has no parameter {name!r}; it has "
                                     + ", ".join(p.name for p in self))
            arguments += ["-p", f"{name}:={value or EMPTY_STRING}"]
        return arguments

    # --- the documented YAML ----------------------------------------------------------
    def yaml(self, width: int = 100) -> str:
        """This node's section of a parameters file: every parameter at its default, under its description."""
        lines = [f"{self.node_name}:", "  ros__parameters:"]
        for p in self:
            if p.section:
                lines.append(f"    # --- {p.section} " + "-" * max(3, width - 11 - len(p.section)))
            text = p.description + (f" (one of: {' | '.join(_shown(c) for c in p.choices)})" if p.choices else "")
            lines += textwrap.wrap(text, width, initial_indent="    # ", subsequent_indent="    # ")
            lines.append(f"    {p.name}: {_shown(p.default)}")
        return "\n".join(lines) + "\n"


def parameters_file(header: str, *declarations: NodeParameters) -> str:
    """A ROS 2 parameters YAML for ``declarations``, under the comment lines of ``header``."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    return "\n".join(lines) + "\n" + "\n".join(d.yaml() for d in declarations)


def _shown(value: Scalar) -> str:
    """``value`` as a YAML scalar that reads back as itself."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    if isinstance(value, str):
        plain = value and "#" not in value and ": " not in value and yaml.safe_load(value) == value
        return value if plain else json.dumps(value)
    return repr(value)
