"""Ask the robot's joint_trajectory_controller how it executes trajectories, and compare with dp_ros's model.

The safety filter shapes each trajectory as the controller will execute it (core/command_execution): linear
interpolation between positions (``interpolation_method: splines`` with positions only), started from the
robot interface's ``command.interpolate_from``, on the robot interface's joints, commanding positions. When
the controller is reachable (its node is the command topic's namespace, as joint_trajectory_controller names
it), its ``interpolate_from_desired_state`` (and the deprecated ``open_loop_control``),
``interpolation_method``, ``joints`` and ``command_interfaces`` are read once at each configure. A contradiction
is an error: the node is put in FAULT (it sends no commands, and refuses to activate until it is configured
again), with a message that says what to change.
"""
from __future__ import annotations

from typing import Callable

from dp_ros.core.choices import InterpolateFrom

PARAMETERS = ("interpolate_from_desired_state", "open_loop_control", "interpolation_method", "joints",
              "command_interfaces")
BOOL, STRING, STRING_ARRAY = 1, 4, 9  # rcl_interfaces/ParameterType


def controller_node(command_topic: str) -> str | None:
    """The controller node behind a joint_trajectory_controller command topic (``/arm_controller/joint_trajectory``)."""
    namespace, _, name = command_topic.rstrip("/").rpartition("/")
    return namespace if name == "joint_trajectory" and namespace else None


def interpolate_from(values: dict[str, bool | None]) -> str | None:
    """The start the controller uses, from its parameter values (None: unknown)."""
    if values.get("interpolate_from_desired_state") or values.get("open_loop_control"):
        return InterpolateFrom.DESIRED.value
    if values.get("interpolate_from_desired_state") is False:
        return InterpolateFrom.MEASURED.value
    return None


def contradictions(values: dict, robot) -> list[str]:
    """What in the controller's parameter ``values`` (None: not declared) contradicts the model of ``robot``."""
    problems = []
    expected, actual = robot.command.interpolate_from, interpolate_from(values)
    if actual is not None and actual != expected:
        problems.append(f"it starts new trajectories from the {actual} state but the robot interface says "
                        f"interpolate_from: {expected}: the safety filter would check trajectories from the wrong "
                        f"start. Set command.interpolate_from: {actual} in the robot interface (or "
                        f"interpolate_from_desired_state: {str(expected == InterpolateFrom.DESIRED).lower()} on the "
                        "controller)")
    method = values.get("interpolation_method")
    if method is not None and method != "splines":
        problems.append(f"its interpolation_method is {method!r}, but dp_ros's model interpolates linearly between "
                        "positions (the controller's 'splines' with positions only): set interpolation_method: "
                        "splines")
    joints = values.get("joints")
    if joints is not None and sorted(joints) != sorted(robot.joint_names):
        problems.append(f"its joints {list(joints)} are not the robot interface's {robot.joint_names}: name the same "
                        "joints in both")
    interfaces = values.get("command_interfaces")
    if interfaces is not None and list(interfaces) != ["position"]:
        problems.append(f"its command_interfaces are {list(interfaces)}; dp_ros sends positions only and models a "
                        "position-commanded joint: set command_interfaces: [position]")
    return problems


def _value(parameter):
    """A parameter's value as Python (None where it is not set or of another type)."""
    if parameter is None:
        return None
    return {BOOL: lambda: parameter.bool_value, STRING: lambda: parameter.string_value,
            STRING_ARRAY: lambda: list(parameter.string_array_value)}.get(parameter.type, lambda: None)()


def verdict(values: dict[str, bool | str | list | None], robot, target: str) -> tuple[str, str]:
    """(level, text) of the check once ``target``'s parameters are read: an error where they contradict the
    robot interface (no command is sent), else what the safety filter assumes."""
    problems = contradictions(values, robot)
    actual = interpolate_from(values)
    if problems:
        return "error", (f"{target} does not execute trajectories as dp_ros's safety model assumes, so no command "
                         "is sent: " + "; ".join(problems) + ". After the change, clean up and configure the policy node again "
                         "(ros2 lifecycle set), or restart it")
    if actual is None:
        return "info", (f"{target} does not say where it starts trajectories; assuming the robot interface's "
                        f"interpolate_from: {robot.command.interpolate_from}")
    return "info", (f"{target} starts new trajectories from the {actual} state, as the robot interface says, "
                    "and interpolates them as dp_ros's model does")


def check_controller_mode(node, robot, report: Callable[[str, str], None], fail: Callable[[str], None] | None = None,
                          timeout: float = 10.0) -> None:
    """Start the check (non-blocking); ``report(level, text)`` hears the outcome and ``fail(text)`` a
    contradiction (the node faults: it must not command a controller its model does not describe)."""
    from rcl_interfaces.srv import GetParameters

    expected = robot.command.interpolate_from
    target = controller_node(robot.command.topic)
    if target is None:
        return
    client = node.create_client(GetParameters, f"{target}/get_parameters")
    state = {"done": False}

    def finish(level: str, text: str) -> None:
        if not state["done"]:
            state["done"] = True
            report(level, text)
            timer.cancel()
            if level == "error" and fail is not None:
                fail(text)

    values: dict = {}

    def ask(index: int) -> None:
        # one name per request: a node answers nothing at all when any requested name is not declared
        request = GetParameters.Request(names=[PARAMETERS[index]])
        client.call_async(request).add_done_callback(lambda future: on_reply(index, future))

    def on_reply(index: int, future) -> None:
        try:
            reply = future.result()
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            finish("warn", f"could not read {target}'s parameters: {exc}")
            return
        values[PARAMETERS[index]] = _value(reply.values[0] if reply.values else None)
        if index + 1 < len(PARAMETERS):
            ask(index + 1)
        else:
            conclude()

    def conclude() -> None:
        finish(*verdict(values, robot, target))

    def poll() -> None:
        if client.service_is_ready():
            timer.cancel()
            ask(0)
        elif node.get_clock().now().nanoseconds * 1e-9 > deadline:
            finish("warn" if expected == InterpolateFrom.DESIRED else "info",
                   f"no controller node {target} answered within {timeout:g} s; the safety filter assumes the "
                   f"robot interface's interpolate_from: {expected}, linear interpolation and its joints, unchecked")

    deadline = node.get_clock().now().nanoseconds * 1e-9 + timeout
    timer = node.create_timer(0.5, poll)
