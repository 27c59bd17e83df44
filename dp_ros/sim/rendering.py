"""MuJoCo offscreen rendering: pick the OpenGL backend, render cameras to RGB arrays.

MuJoCo reads ``MUJOCO_GL`` once, when ``mujoco`` is first imported, so
:func:`configure_gl` must run before that (``dp_ros.sim`` calls it on import).
The rule: keep the user's ``MUJOCO_GL``; otherwise ``egl`` when an NVIDIA GPU
and libEGL are present, else ``osmesa`` (software rendering, Debian/Ubuntu
package ``libosmesa6``).
"""
from __future__ import annotations

import ctypes.util
import glob
import os
import sys
from typing import Mapping

import numpy as np

SUPPORTED_BACKENDS = ("egl", "osmesa", "glfw", "glx")
OSMESA_HINT = ("install it with `sudo apt-get install libosmesa6` (or run `make setup`), "
               "or set MUJOCO_GL=egl on a machine with a GPU")


class RenderingUnavailable(RuntimeError):
    """Offscreen rendering cannot work on this machine (the message says what to install or set)."""


def _nvidia_gpu_present() -> bool:
    return os.path.exists("/dev/nvidiactl") or bool(glob.glob("/dev/nvidia[0-9]*"))


def _library_present(name: str) -> bool:
    return ctypes.util.find_library(name) is not None


def choose_gl_backend(environ: Mapping[str, str] | None = None) -> str:
    """The MUJOCO_GL value to use: the user's, else egl with an NVIDIA GPU, else osmesa."""
    environ = os.environ if environ is None else environ
    user_choice = environ.get("MUJOCO_GL", "").strip().lower()
    if user_choice:
        return user_choice
    if _nvidia_gpu_present() and _library_present("EGL"):
        return "egl"
    return "osmesa"


def active_backend() -> str | None:
    """The backend an already imported MuJoCo uses (None before ``import mujoco``)."""
    mujoco = sys.modules.get("mujoco")
    if mujoco is None:
        return None
    module = getattr(getattr(mujoco, "GLContext", None), "__module__", "") or ""
    for backend in ("osmesa", "egl", "glfw", "cgl"):
        if module.startswith(f"mujoco.{backend}"):
            return backend
    return "none"


def configure_gl() -> str:
    """Set MUJOCO_GL (and PYOPENGL_PLATFORM to match) unless the user set them; return the backend.

    Call before the first ``import mujoco``. If MuJoCo was already imported, the
    backend it chose stays in effect and is returned.
    """
    already = active_backend()
    if already is not None:
        return already
    backend = choose_gl_backend()
    os.environ.setdefault("MUJOCO_GL", backend)
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


def check_rendering_available() -> str:
    """Raise :class:`RenderingUnavailable` with a fix when offscreen rendering cannot work."""
    backend = active_backend() or os.environ.get("MUJOCO_GL", "").strip().lower() or choose_gl_backend()
    if backend in ("glfw", "none") and not os.environ.get("DISPLAY"):
        raise RenderingUnavailable(
            f"MuJoCo was imported before dp_ros.sim could choose a headless OpenGL backend and uses {backend!r}, "
            f"which needs a display; set MUJOCO_GL=osmesa (CPU) or MUJOCO_GL=egl (GPU) in the environment, "
            f"or import dp_ros.sim before mujoco")
    if backend == "osmesa" and not _library_present("OSMesa"):
        raise RenderingUnavailable(f"MuJoCo renders offscreen with OSMesa here (MUJOCO_GL=osmesa) but libOSMesa "
                                   f"is not installed: {OSMESA_HINT}")
    if backend == "egl" and not _library_present("EGL"):
        raise RenderingUnavailable("MUJOCO_GL=egl but libEGL is not installed: install your GPU driver's EGL "
                                   "library (libegl1), or set MUJOCO_GL=osmesa and install libosmesa6")
    return backend


class CameraRenderer:
    """Renders named cameras of one MuJoCo model to (height, width, 3) uint8 RGB.

    Holds its own ``MjData`` so it can render a copied state (joint positions and
    mocap bodies) while another thread steps the physics. OpenGL contexts belong
    to a thread: create, use and close a renderer in the same thread.
    """

    def __init__(self, model, cameras: Mapping[str, tuple[int, int]]):
        """``cameras``: camera name -> (width, height) in pixels."""
        backend = check_rendering_available()
        import mujoco

        self._mujoco = mujoco
        self.model = model
        self.data = mujoco.MjData(model)
        self._cameras = dict(cameras)
        self._renderers: dict[tuple[int, int], object] = {}
        for name, (width, height) in self._cameras.items():
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
                raise ValueError(f"the simulated model has no camera {name!r}")
            if (width, height) not in self._renderers:
                try:
                    self._renderers[(width, height)] = mujoco.Renderer(model, height=height, width=width)
                except ValueError as exc:  # larger than the model's offscreen buffer
                    raise ValueError(f"camera {name!r}: {exc}") from None
                except Exception as exc:  # noqa: BLE001 - GL libraries fail in many ways
                    self.close()
                    raise RenderingUnavailable(f"MuJoCo cannot create an offscreen OpenGL context with "
                                               f"MUJOCO_GL={backend}: {exc}. {OSMESA_HINT}") from exc

    @property
    def camera_names(self) -> list[str]:
        return list(self._cameras)

    def render(self, qpos: np.ndarray, mocap_pos: np.ndarray, camera: str) -> np.ndarray:
        """The image ``camera`` sees with the joints at ``qpos`` and mocap bodies at ``mocap_pos``."""
        mujoco = self._mujoco
        self.data.qpos[:] = qpos
        if self.model.nmocap:
            self.data.mocap_pos[:] = mocap_pos
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        renderer = self._renderers[self._cameras[camera]]
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> "CameraRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
