"""Ask the robot's joint_trajectory_controller where it starts new trajectories, and compare with the robot interface.

The safety filter shapes each trajectory from where the controller starts it (the robot interface's
``command.interpolate_from``); a controller configured otherwise would execute a different first segment.
When the controller is reachable (its node is the command topic's namespace, as joint_trajectory_controller
names it), its ``interpolate_from_desired_state`` (and the deprecated ``open_loop_control``) parameters are
read once at start-up; a mismatch is an error in the log, saying what to change.
"""
from __future__ import annotations

from typing import Callable

PARAMETERS = ("interpolate_from_desired_state", "open_loop_control")
BOOL = 1  # rcl_interfaces/ParameterType.PARAMETER_BOOL


def controller_node(command_topic: str) -> str | None:
    """The controller node behind a joint_trajectory_controller command topic (``/arm_controller/joint_trajectory``)."""
    namespace, _, name = command_topic.rstrip("/").rpartition("/")
    return namespace if name == "joint_trajectory" and namespace else None


def interpolate_from(values: dict[str, bool | None]) -> str | None:
    """The start the controller uses, from its parameter values (None: unknown)."""
    if values.get("interpolate_from_desired_state") or values.get("open_loop_control"):
        return "desired"
    if values.get("interpolate_from_desired_state") is False:
        return "measured"
    return None


def check_controller_mode(node, command_topic: str, expected: str, report: Callable[[str, str], None],
                          timeout: float = 10.0) -> None:
    """Start the check (non-blocking); ``report(level, text)`` hears the outcome."""
    from rcl_interfaces.srv import GetParameters

    target = controller_node(command_topic)
    if target is None:
        return
    client = node.create_client(GetParameters, f"{target}/get_parameters")
    state = {"done": False}

    def finish(level: str, text: str) -> None:
        if not state["done"]:
            state["done"] = True
            report(level, text)
            timer.cancel()

    values: dict[str, bool | None] = {}

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
        value = reply.values[0] if reply.values else None
        values[PARAMETERS[index]] = value.bool_value if value is not None and value.type == BOOL else None
        if index + 1 < len(PARAMETERS):
            ask(index + 1)
        else:
            conclude()

    def conclude() -> None:
        actual = interpolate_from(values)
        if actual is None:
            finish("info", f"{target} does not say where it starts trajectories; assuming the robot interface's "
                           f"interpolate_from: {expected}")
        elif actual != expected:
            finish("error", f"{target} starts new trajectories from the {actual} state but the robot interface says "
                            f"interpolate_from: {expected}: the safety filter checks trajectories from the wrong "
                            f"start. Set command.interpolate_from: {actual} in the robot interface (or "
                            f"interpolate_from_desired_state: {str(expected == 'desired').lower()} on the controller)")
        else:
            finish("info", f"{target} starts new trajectories from the {actual} state, as the robot interface says")

    def poll() -> None:
        if client.service_is_ready():
            timer.cancel()
            ask(0)
        elif node.get_clock().now().nanoseconds * 1e-9 > deadline:
            finish("info", f"no controller node {target} answered within {timeout:g} s; the safety filter assumes "
                           f"the robot interface's interpolate_from: {expected}")

    deadline = node.get_clock().now().nanoseconds * 1e-9 + timeout
    timer = node.create_timer(0.5, poll)
