"""The simulated cameras at a fixed rate: a thread renders the newest physics state and hands each frame on.

The renderer is created in the thread that uses it (an OpenGL context belongs to one thread). Frames are
paced on the monotonic clock; when rendering cannot keep up, the stream skips ahead instead of bursting.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from dp_ros.sim.realtime import RealTimeSimulation
from dp_ros.sim.environment import SimState
from dp_ros.sim.rendering import CameraRenderer, RenderingUnavailable

FrameSink = Callable[[str, np.ndarray, SimState], None]
"""Receives (camera name, RGB frame, the state it shows)."""


class CameraStream:
    def __init__(self, sim: RealTimeSimulation, sizes: Mapping[str, tuple[int, int]], cameras: Sequence[str],
                 rate: float, on_frame: FrameSink, on_error: Callable[[str], None]):
        if rate <= 0:
            raise ValueError(f"camera rate must be positive, got {rate}")
        self.sim, self.sizes, self.cameras = sim, dict(sizes), list(cameras)
        self.period = 1.0 / rate
        self.on_frame, self.on_error = on_frame, on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start rendering; raises RenderingUnavailable when the renderer cannot start."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="dp_ros_cameras", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RenderingUnavailable(f"the camera renderer did not start within {timeout:g} s")
        if failure:
            raise failure[0]

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, ready: threading.Event, failure: list) -> None:
        try:
            renderer = CameraRenderer(self.sim.env.model, self.sizes)
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            failure.append(exc)
            ready.set()
            return
        ready.set()
        next_frame = time.monotonic()
        try:
            while not self._stop.is_set():
                state = self.sim.latest()
                for camera in self.cameras:
                    self.on_frame(camera, renderer.render(state.qpos, state.mocap_pos, camera), state)
                next_frame += self.period
                now = time.monotonic()
                if next_frame < now - self.period:  # rendering could not keep up: do not burst to catch up
                    next_frame = now
                self._stop.wait(max(0.0, next_frame - now))
        except Exception as exc:  # noqa: BLE001 - the node stays up and says why the cameras stopped
            if not self._stop.is_set():
                self.on_error(f"cameras stopped: {exc}")
        finally:
            renderer.close()
