"""Bring nodes up without the launch system (the pip route): several nodes in one
process, clean exit on Ctrl-C or SIGTERM. (Their parameters come from
``dp_ros.node_params``, handed to each node as rclpy arguments.)"""
from __future__ import annotations

import signal
import threading
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

    The signal ends the spin, and each node that has ``on_interrupt()`` runs it while ROS is still up (the
    policy node brings the arm to rest with a last bounded stop); then the nodes are destroyed. A second
    Ctrl-C interrupts that at once. (rclpy's own signal handlers shut ROS down first, so nothing could be
    published after the signal.) Every dp_ros node process gives up the GIL quickly
    (rate_loop.GIL_SWITCH_INTERVAL): command loops, physics, cameras and callbacks share it.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from dp_ros.core.rate_loop import prefer_short_gil_waits

    prefer_short_gil_waits()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
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
        with _StopSignals() as stop:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=SIGNAL_POLL_SECONDS)
            for node in nodes:
                interrupted = getattr(node, "on_interrupt", None)
                if interrupted is not None and rclpy.ok():
                    interrupted()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


SIGNAL_POLL_SECONDS = 0.1
"""The longest the spin takes to notice Ctrl-C / SIGTERM."""


class _StopSignals:
    """While entered (in the main thread): the first SIGINT or SIGTERM sets the event (the spin ends cleanly); a
    second SIGINT raises KeyboardInterrupt as usual. The previous handlers come back on exit."""

    def __enter__(self) -> threading.Event:
        self._event = threading.Event()
        self._previous = {}
        if threading.current_thread() is threading.main_thread():   # Python takes signals in the main thread only
            self._previous = {number: signal.signal(number, self._on_signal)
                              for number in (signal.SIGINT, signal.SIGTERM)}
        return self._event

    def _on_signal(self, number, frame) -> None:
        if self._event.is_set() and number == signal.SIGINT:
            raise KeyboardInterrupt
        self._event.set()

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
