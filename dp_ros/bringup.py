"""Bring nodes up without the launch system (the pip route): several nodes in one
process, clean exit on Ctrl-C or SIGTERM. (Their parameters come from
``dp_ros.node_params``, handed to each node as rclpy arguments.)"""
from __future__ import annotations

from typing import Any, Callable, Sequence


def run_node(factory: Callable[[], Any], name: str, startup_errors: tuple[type[BaseException], ...] = (),
             args: list[str] | None = None, needs_lerobot: bool = True) -> int:
    """The ``main()`` of a node executable: start it, spin until Ctrl-C / SIGTERM, exit code 1 if it cannot start
    (2, with one line, if it needs LeRobot and the installed one is not supported)."""
    if needs_lerobot:
        from dp_ros.lerobot_compat import exit_unless_supported

        exit_unless_supported(name)
    return spin_nodes([factory], startup_errors, args, logger_name=name)


def spin_nodes(factories: Sequence[Callable[[], Any]], startup_errors: tuple[type[BaseException], ...] = (),
               args: list[str] | None = None, logger_name: str = "dp_ros") -> int:
    """Create the nodes (in order) and spin them together until Ctrl-C / SIGTERM; returns an exit code.

    rclpy's own signal handlers (SIGINT and SIGTERM) end the spin. Every dp_ros node process gives up the
    GIL quickly (rate_loop.GIL_SWITCH_INTERVAL): command loops, physics, cameras and callbacks share it.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from dp_ros.core.rate_loop import prefer_short_gil_waits

    prefer_short_gil_waits()
    rclpy.init(args=args)
    nodes = []
    try:
        for factory in factories:
            nodes.append(factory())
    except startup_errors as exc:
        rclpy.logging.get_logger(logger_name).fatal(f"cannot start: {exc}")
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        return 1
    # One thread: rclpy's MultiThreadedExecutor spins a core while any callback runs; the nodes do
    # their heavy work (inference, physics, dataset writing) in threads of their own.
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
