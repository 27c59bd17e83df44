"""Geometry of the simulated scene, read from the MJCF, and the arm's kinematics.

The arm is a yaw joint (``shoulder_pan``) under two pitch joints
(``shoulder_lift``, ``elbow``); all three angles are zero with the arm pointing
straight up, and positive pitch leans it forward. Joint vectors here are in
:data:`ARM_JOINTS` order.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

import dp_ros.sim  # noqa: F401 - chooses the OpenGL backend before mujoco is imported

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow")
MODEL_PATH = Path(__file__).resolve().parent / "assets" / "arm.xml"


class UnreachableError(ValueError):
    """A tip position outside the arm's reach."""


def load_model(path: str | Path = MODEL_PATH):
    """The MuJoCo model of the arm and its scene."""
    import mujoco

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MuJoCo model not found: {path}")
    return mujoco.MjModel.from_xml_path(str(path))


@dataclass(frozen=True)
class SceneGeometry:
    """Lengths and positions the task and the expert need (metres, world frame, z up)."""

    shoulder_height: float
    """Height of the shoulder_lift axis above the table."""
    upper_arm: float
    """Distance from the shoulder_lift axis to the elbow axis."""
    forearm: float
    """Distance from the elbow axis to the tip."""
    tip_radius: float
    obstacle_xy: tuple[float, float]
    obstacle_radius: float
    obstacle_height: float
    target_radius: float
    lower_limits: tuple[float, ...]
    """Joint range of the model, in ARM_JOINTS order."""
    upper_limits: tuple[float, ...]

    @classmethod
    def from_model(cls, model) -> "SceneGeometry":
        import mujoco

        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)  # all joints at zero: the arm points straight up
        shoulder = data.body("upper_arm").xpos.copy()
        elbow = data.body("forearm").xpos.copy()
        tip = data.site("tip").xpos.copy()
        obstacle = model.geom("obstacle")
        ranges = np.array([model.joint(name).range for name in ARM_JOINTS])
        return cls(
            shoulder_height=float(shoulder[2]),
            upper_arm=float(np.linalg.norm(elbow - shoulder)),
            forearm=float(np.linalg.norm(tip - elbow)),
            tip_radius=float(model.geom("tip").size[0]),
            obstacle_xy=(float(obstacle.pos[0]), float(obstacle.pos[1])),
            obstacle_radius=float(obstacle.size[0]),
            obstacle_height=float(obstacle.pos[2] + obstacle.size[1]),
            target_radius=float(model.geom("target").size[0]),
            lower_limits=tuple(float(r[0]) for r in ranges),
            upper_limits=tuple(float(r[1]) for r in ranges),
        )

    @property
    def reach(self) -> float:
        return self.upper_arm + self.forearm

    def forward(self, joints: np.ndarray) -> np.ndarray:
        """Tip position(s) (..., 3) for joint vector(s) (..., 3)."""
        joints = np.asarray(joints, dtype=np.float64)
        pan, lift, elbow = joints[..., 0], joints[..., 1], joints[..., 2]
        radius = self.upper_arm * np.sin(lift) + self.forearm * np.sin(lift + elbow)
        height = self.shoulder_height + self.upper_arm * np.cos(lift) + self.forearm * np.cos(lift + elbow)
        return np.stack([radius * np.cos(pan), radius * np.sin(pan), height], axis=-1)

    def inverse(self, tips: np.ndarray) -> np.ndarray:
        """Joint vector(s) (..., 3) that put the tip at ``tips`` (..., 3), elbow up.

        Raises :class:`UnreachableError` for positions out of reach or outside the joint ranges.
        """
        tips = np.asarray(tips, dtype=np.float64)
        x, y, z = tips[..., 0], tips[..., 1], tips[..., 2]
        radius, rise = np.hypot(x, y), z - self.shoulder_height
        cos_elbow = (radius ** 2 + rise ** 2 - self.upper_arm ** 2 - self.forearm ** 2) / (2 * self.upper_arm * self.forearm)
        if np.any(np.abs(cos_elbow) > 1.0):
            raise UnreachableError(f"tip position out of the arm's reach ({self.reach:.3f} m from the shoulder)")
        elbow = np.arccos(cos_elbow)
        lift = np.arctan2(radius, rise) - np.arctan2(self.forearm * np.sin(elbow), self.upper_arm + self.forearm * np.cos(elbow))
        joints = np.stack([np.arctan2(y, x), lift, elbow], axis=-1)
        if np.any(joints < np.array(self.lower_limits)) or np.any(joints > np.array(self.upper_limits)):
            raise UnreachableError("tip position needs joint angles outside the joint ranges")
        return joints


@lru_cache(maxsize=4)
def scene_geometry(path: str | Path = MODEL_PATH) -> SceneGeometry:
    """The geometry of the shipped scene (cached; loading the model takes a few ms)."""
    return SceneGeometry.from_model(load_model(path))
