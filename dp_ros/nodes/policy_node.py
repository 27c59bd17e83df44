"""policy_node: a LeRobot Diffusion Policy checkpoint as a ROS 2 controller, a lifecycle (managed) node.

- *configure*: load the checkpoint and check it against the robot interface, warm up, subscribe to the cameras
  and joint states, start the command loop (sending nothing), and check the trajectory controller (a
  controller that contradicts dp_ros's model faults the node: it refuses to activate);
- *activate*: command the robot (safe joint commands at the command rate, chunks computed off the control
  thread);
- *deactivate*: a bounded stop through the controller's own stop path (the arm is brought to rest within the
  limits, for every command form), then nothing more is sent;
- *cleanup* / *shutdown*: release the checkpoint, the topics and the command loop.

Ctrl-C or SIGTERM while commanding sends the same bounded stop as deactivate before the process exits.

``autostart`` (default true) configures and activates the node as soon as it is up, so ``ros2 launch`` and
``dp-ros run-policy`` command in one step; false: configure only, then ``activate``. ``~/reset`` clears the
observation history and the plan. Parameters of node_params.policy_live.LIVE change at any time
(``ros2 param set``) and take effect at the next chunk; any other change while configured is refused with the
reason. Status on ``~/status`` and /diagnostics. The node's state lives in dp_ros.nodes.policy_session.
"""
from __future__ import annotations

import sys

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import Trigger

from dp_ros.bringup import run_node
from dp_ros.conversions.status import policy_diagnostics_msg, policy_status_msg
from dp_ros.core.policy_runtime import CheckpointError
from dp_ros.node_params import ParameterError
from dp_ros.node_params.policy import POLICY
from dp_ros.node_params.policy_live import checked_changes
from dp_ros.nodes.node_tools import declare_parameters, trigger_service
from dp_ros.nodes.policy_session import PolicySession
from dp_ros.robot_interface import RobotInterfaceError

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PolicyStartError(RuntimeError):
    """autostart: the node could not be configured or activated (the message says why)."""


STARTUP_ERRORS = (CheckpointError, RobotInterfaceError, ParameterError, ValueError, FileNotFoundError,
                  PolicyStartError)


class PolicyNode(LifecycleNode):
    """The lifecycle of the module's docstring; the constructor only declares and wires (nothing is loaded)."""

    def __init__(self, **node_kwargs):
        super().__init__("policy_node", **node_kwargs)
        p = declare_parameters(self, POLICY)
        self.session: PolicySession | None = None
        self.stage = "unconfigured"
        self.transition_error = ""
        """Why the last transition failed."""
        from diagnostic_msgs.msg import DiagnosticArray

        from dp_ros_msgs.msg import PolicyStatus

        self.status_pub = self.create_publisher(PolicyStatus, "~/status", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", trigger_service(self._reset))
        self.create_timer(1.0 / p["status_rate"], self._publish_status)
        self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def settings(self) -> dict:
        """The parameters' current values, converted and checked."""
        return POLICY.convert({param.name: self.get_parameter(param.name).value for param in POLICY})

    def autostart(self) -> None:
        """Configure, then activate if ``autostart``; raises PolicyStartError (with the reason) if either fails."""
        if self.trigger_configure() != SUCCESS:
            raise PolicyStartError(self.transition_error)
        if not self.settings()["autostart"]:
            self.get_logger().info("autostart is false: configured; activate to command the robot "
                                   "(ros2 lifecycle set /policy_node activate)")
        elif self.trigger_activate() != SUCCESS:
            raise PolicyStartError(self.transition_error)

    # --- lifecycle transitions --------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.session = PolicySession(self, self.settings(), self._log)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it: say why, stay unconfigured
            return self._failed("configure", str(exc) if isinstance(exc, STARTUP_ERRORS)
                                else f"{type(exc).__name__}: {exc}")
        self._publish_status()
        return self._entered("inactive")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.session.activate()
        except RuntimeError as exc:
            return self._failed("activate", str(exc))
        return self._entered("active")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.session.deactivate("deactivated: the arm was brought to rest; activate to command again")
        return self._entered("inactive")

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close_session()
        return self._entered("unconfigured")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.session is not None and self.stage == "active":
            self.session.deactivate("shutting down")
        self._close_session()
        return self._entered("finalized")

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"a lifecycle transition from {state.label} failed; releasing the policy")
        self._close_session()
        return self._entered("unconfigured")

    def _entered(self, stage: str) -> TransitionCallbackReturn:
        self.stage = stage
        return SUCCESS

    def _failed(self, transition: str, reason: str) -> TransitionCallbackReturn:
        self.transition_error = reason
        self.get_logger().error(f"cannot {transition}: {reason}")
        return FAILURE

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    # --- services and parameters ------------------------------------------------------------------
    def _reset(self) -> str | tuple[bool, str]:
        if self.session is None:
            return False, "not configured: configure the node first (ros2 lifecycle set /policy_node configure)"
        return self.session.controller.reset()

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """The change is checked as a whole (each value, whether it may change now, whether the policy can sample
        so); only then are the live ones applied, from the next chunk on."""
        try:
            changes = checked_changes({parameter.name: parameter.value for parameter in parameters}, self.stage)
            apply = self.session.prepare_live(changes) if self.session is not None else None
        except (ValueError, CheckpointError) as exc:  # ParameterError is a ValueError
            self.get_logger().warning(f"parameter change refused: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        if apply is not None:
            apply()
        if changes:
            self.get_logger().info("parameters set: " + ", ".join(f"{k} = {v}" for k, v in changes.items()))
        return SetParametersResult(successful=True)

    # --- logs and status --------------------------------------------------------------------------
    def _log(self, level: str, text: str) -> None:
        # rclpy ties a severity to the line that logs: one call per severity
        logger = self.get_logger()
        if level == "error":
            logger.error(text)
        elif level == "warn":
            logger.warning(text)
        else:
            logger.info(text)

    def _publish_status(self) -> None:
        if self.session is not None:
            self.status_pub.publish(policy_status_msg(self.session.snapshot(), self.get_clock().now().to_msg()))

    def _publish_diagnostics(self) -> None:
        session = self.session
        if session is None:
            return
        if session.controller.stats.chunks_produced >= 3:  # judged again on the chunks measured in operation
            session.check_speed(session.controller.stats.mean_inference_time)
        self.diagnostics_pub.publish(policy_diagnostics_msg(self.get_name(), session.snapshot(),
                                                            self.get_clock().now().to_msg()))

    def on_interrupt(self) -> None:
        """Ctrl-C or SIGTERM (dp_ros.bringup): while commanding, the same bounded stop as deactivate, sent
        before ROS shuts down."""
        if self.session is not None and self.stage == "active":
            self.get_logger().warning("interrupted: bringing the arm to rest before exiting")
            self.session.deactivate("interrupted: the arm was brought to rest")
            self.stage = "inactive"

    def destroy_node(self) -> bool:
        self._close_session()
        return super().destroy_node()


def started_node(**node_kwargs) -> PolicyNode:
    """A policy node taken through ``autostart`` (configure, and activate if the parameter says so); on failure
    the node is destroyed and PolicyStartError says why."""
    node = PolicyNode(**node_kwargs)
    try:
        node.autostart()
    except BaseException:
        node.destroy_node()
        raise
    return node


def main(args=None) -> int:
    return run_node(started_node, "policy_node", STARTUP_ERRORS, args)


if __name__ == "__main__":
    sys.exit(main())
