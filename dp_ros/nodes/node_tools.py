"""Small helpers shared by dp_ros's nodes.

:func:`declare_parameters`: a node's parameters as its declaration
(``dp_ros.node_params``) lists them. Launch files and YAML often give ``15``
where a node expects ``15.0``, which rclpy refuses with a type error; here
parameters are declared with dynamic typing and each value is converted to its
default's type and checked, or refused with a message naming the parameter.

:func:`publish_while_up`: publishing from a thread or timer while Ctrl-C shuts
ROS down raises; once the context is closing, a message is dropped quietly.
"""
from __future__ import annotations

from typing import Any, Callable

from rcl_interfaces.msg import ParameterDescriptor

from dp_ros.node_params import NodeParameters


def declare_parameters(node, declaration: NodeParameters) -> dict[str, Any]:
    """Declare ``declaration``'s parameters on ``node``; returns their values, converted and checked."""
    for param in declaration:
        default = list(param.default) if isinstance(param.default, tuple) else param.default
        node.declare_parameter(param.name, default,
                               ParameterDescriptor(description=param.description, dynamic_typing=True))
    return declaration.convert({param.name: node.get_parameter(param.name).value for param in declaration})


def trigger_service(action: Callable[[], str | tuple[bool, str]], failure: str = ""):
    """A std_srvs/Trigger callback running ``action``: a message (success), ``(success, message)``, or an
    exception (answered as a failure, ``failure`` before its text) - a service never crashes its node."""
    def answer(request, response):
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - answered to the caller
            response.success, response.message = False, f"{failure}{exc}"
            return response
        response.success, response.message = result if isinstance(result, tuple) else (True, result)
        return response
    return answer


def publish_while_up(node, publisher, msg) -> None:
    """``publisher.publish(msg)``, dropped quietly once ``node``'s context is shutting down."""
    if not node.context.ok():
        return
    try:
        publisher.publish(msg)
    except Exception:  # noqa: BLE001 - the context may close between the check and the call
        if node.context.ok():
            raise
