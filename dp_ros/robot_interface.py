"""The robot interface: one YAML description of the robot, read by every node and tool.

It names the joints (and their order in state and action vectors), the cameras,
the rates, the command topic and type, and the joint limits. The LeRobot feature
names derive from it: ``observation.state``, ``observation.images.<camera>`` and
``action``. ROS-free: plain dataclasses and PyYAML.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STATE_FEATURE = "observation.state"
ACTION_FEATURE = "action"
IMAGE_FEATURE_PREFIX = "observation.images."

CAMERA_TYPES = ("image", "compressed")
COMMAND_TYPES = ("joint_trajectory", "float64_multi_array", "joint_state")
TRAJECTORY_MODES = ("chunk", "single_point")
INTERPOLATE_FROM = ("measured", "desired")
ACTION_SOURCES = ("leader", "command", "next_state")


class RobotInterfaceError(ValueError):
    """The robot interface YAML is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Joint:
    """One actuated joint, in the order it takes in state and action vectors."""

    name: str
    lower: float
    """Lowest allowed position command (rad or m)."""
    upper: float
    """Highest allowed position command (rad or m)."""
    max_velocity: float
    """Largest allowed speed of the command (rad/s or m/s); bounds the change per command."""
    max_acceleration: float | None = None
    """Largest allowed acceleration of the command (rad/s^2 or m/s^2); None: not limited."""


@dataclass(frozen=True)
class Camera:
    """One camera the policy sees, as ``observation.images.<name>``."""

    name: str
    topic: str
    type: str = "image"
    """``image`` (sensor_msgs/Image) or ``compressed`` (sensor_msgs/CompressedImage)."""
    width: int = 96
    """Width in pixels of the frames the policy and the dataset use (input is resized)."""
    height: int = 96
    """Height in pixels of the frames the policy and the dataset use."""

    @property
    def feature(self) -> str:
        return IMAGE_FEATURE_PREFIX + self.name

    @property
    def shape(self) -> tuple[int, int, int]:
        """Channel-first shape, as LeRobot features record it."""
        return (3, self.height, self.width)


@dataclass(frozen=True)
class CommandInterface:
    """Where and how joint commands go (the ros2_control controller's input)."""

    topic: str
    type: str = "joint_trajectory"
    """``joint_trajectory`` (joint_trajectory_controller), ``float64_multi_array``
    (forward_command_controller) or ``joint_state``."""
    trajectory_mode: str = "chunk"
    """For joint_trajectory: ``chunk`` publishes the remaining planned actions as a
    time-parameterised multi-point trajectory; ``single_point`` one point per command."""
    interpolate_from: str = "measured"
    """For joint_trajectory: where the controller starts a new trajectory. ``measured``: the measured
    joint position (joint_trajectory_controller's default); ``desired``: the set-point of the trajectory
    it replaces (its ``interpolate_from_desired_state: true``)."""


@dataclass(frozen=True)
class ActionSource:
    """Where the recorder and the bag converter read the demonstrated action."""

    source: str = "leader"
    """``leader`` (a leader arm's JointState), ``command`` (the command topic) or
    ``next_state`` (the follower's next observed joint positions)."""
    topic: str = ""
    """Topic of the leader arm's JointState (for ``leader``); ignored otherwise."""


@dataclass(frozen=True)
class RobotInterface:
    """Everything dp_ros needs to know about one robot."""

    name: str
    joints: tuple[Joint, ...]
    joint_state_topic: str
    cameras: tuple[Camera, ...]
    command: CommandInterface
    control_rate: float
    """Policy steps per second: observation spacing, action spacing and dataset fps."""
    command_rate: float
    """Commands published per second; actions are interpolated between policy steps."""
    action: ActionSource = field(default_factory=ActionSource)
    source_path: str = ""

    # --- derived names --------------------------------------------------------
    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def fps(self) -> int:
        """Frames per second of a LeRobot dataset recorded for this robot."""
        return int(round(self.control_rate))

    @property
    def control_period(self) -> float:
        return 1.0 / self.control_rate

    @property
    def lower_limits(self) -> list[float]:
        return [j.lower for j in self.joints]

    @property
    def upper_limits(self) -> list[float]:
        return [j.upper for j in self.joints]

    @property
    def velocity_limits(self) -> list[float]:
        return [j.max_velocity for j in self.joints]

    @property
    def acceleration_limits(self) -> list[float] | None:
        """Per-joint acceleration limits, or None when no joint has one (a joint without one: unlimited)."""
        if all(j.max_acceleration is None for j in self.joints):
            return None
        return [math.inf if j.max_acceleration is None else j.max_acceleration for j in self.joints]

    def camera(self, name: str) -> Camera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"robot interface {self.name!r} has no camera {name!r}; it has {[c.name for c in self.cameras]}")

    def lerobot_features(self, image_dtype: str = "video") -> dict[str, dict[str, Any]]:
        """The dataset features (LeRobotDataset.create's ``features``) for this robot."""
        features: dict[str, dict[str, Any]] = {}
        for cam in self.cameras:
            features[cam.feature] = {
                "dtype": image_dtype,
                "shape": (cam.height, cam.width, 3),
                "names": ["height", "width", "channels"],
            }
        features[STATE_FEATURE] = {"dtype": "float32", "shape": (self.num_joints,), "names": self.joint_names}
        features[ACTION_FEATURE] = {"dtype": "float32", "shape": (self.num_joints,), "names": self.joint_names}
        return features

    def policy_input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the policy inputs, as a LeRobot policy config lists them."""
        shapes: dict[str, tuple[int, ...]] = {STATE_FEATURE: (self.num_joints,)}
        for cam in self.cameras:
            shapes[cam.feature] = cam.shape
        return shapes


def _require(mapping: dict, key: str, where: str) -> Any:
    if key not in mapping:
        raise RobotInterfaceError(f"{where}: missing required key {key!r}")
    return mapping[key]


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RobotInterfaceError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise RobotInterfaceError(f"{what} must be a positive finite number, got {value!r}")
    return number


def _topic(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or any(ch.isspace() for ch in value):
        raise RobotInterfaceError(f"{what} must be a topic name such as /joint_states, got {value!r}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise RobotInterfaceError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _parse_joint(entry: Any, index: int) -> Joint:
    where = f"joints[{index}]"
    if not isinstance(entry, dict):
        raise RobotInterfaceError(f"{where} must be a mapping with name, position_limits and velocity_limit")
    name = _require(entry, "name", where)
    if not isinstance(name, str) or not name:
        raise RobotInterfaceError(f"{where}.name must be a non-empty string")
    limits = _require(entry, "position_limits", f"{where} ({name})")
    if not isinstance(limits, (list, tuple)) or len(limits) != 2:
        raise RobotInterfaceError(f"{where} ({name}).position_limits must be [lower, upper]")
    try:
        lower, upper = float(limits[0]), float(limits[1])
    except (TypeError, ValueError):
        raise RobotInterfaceError(f"{where} ({name}).position_limits must be numbers, got {limits!r}") from None
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower >= upper:
        raise RobotInterfaceError(f"{where} ({name}).position_limits must be finite with lower < upper, got {limits!r}")
    velocity = _positive(_require(entry, "velocity_limit", f"{where} ({name})"), f"{where} ({name}).velocity_limit")
    acceleration = entry.get("acceleration_limit")
    if acceleration is not None:
        acceleration = _positive(acceleration, f"{where} ({name}).acceleration_limit")
    return Joint(name=name, lower=lower, upper=upper, max_velocity=velocity, max_acceleration=acceleration)


def _parse_camera(entry: Any, index: int) -> Camera:
    where = f"cameras[{index}]"
    if not isinstance(entry, dict):
        raise RobotInterfaceError(f"{where} must be a mapping with name, topic, type, width and height")
    name = _require(entry, "name", where)
    if not isinstance(name, str) or not name.isidentifier():
        raise RobotInterfaceError(f"{where}.name must be a simple identifier (it becomes observation.images.<name>), got {name!r}")
    return Camera(
        name=name,
        topic=_topic(_require(entry, "topic", f"{where} ({name})"), f"{where} ({name}).topic"),
        type=_choice(entry.get("type", "image"), CAMERA_TYPES, f"{where} ({name}).type"),
        width=int(_positive(entry.get("width", 96), f"{where} ({name}).width")),
        height=int(_positive(entry.get("height", 96), f"{where} ({name}).height")),
    )


def parse_robot_interface(data: Any, source: str = "<dict>") -> RobotInterface:
    """Validate a robot interface given as a mapping (the YAML's content)."""
    if not isinstance(data, dict):
        raise RobotInterfaceError(f"{source}: the robot interface must be a YAML mapping")
    if "robot" in data and isinstance(data["robot"], dict):
        data = data["robot"]
    joints_raw = _require(data, "joints", source)
    if not isinstance(joints_raw, list) or not joints_raw:
        raise RobotInterfaceError(f"{source}: joints must be a non-empty list")
    joints = tuple(_parse_joint(j, i) for i, j in enumerate(joints_raw))
    names = [j.name for j in joints]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RobotInterfaceError(f"{source}: duplicate joint names {duplicates}")

    cameras_raw = data.get("cameras", []) or []
    if not isinstance(cameras_raw, list):
        raise RobotInterfaceError(f"{source}: cameras must be a list")
    cameras = tuple(_parse_camera(c, i) for i, c in enumerate(cameras_raw))
    camera_names = [c.name for c in cameras]
    if len(set(camera_names)) != len(camera_names):
        raise RobotInterfaceError(f"{source}: duplicate camera names {camera_names}")

    command_raw = _require(data, "command", source)
    if not isinstance(command_raw, dict):
        raise RobotInterfaceError(f"{source}: command must be a mapping with topic and type")
    command = CommandInterface(
        topic=_topic(_require(command_raw, "topic", f"{source} command"), "command.topic"),
        type=_choice(command_raw.get("type", "joint_trajectory"), COMMAND_TYPES, "command.type"),
        trajectory_mode=_choice(command_raw.get("trajectory_mode", "chunk"), TRAJECTORY_MODES, "command.trajectory_mode"),
        interpolate_from=_choice(command_raw.get("interpolate_from", "measured"), INTERPOLATE_FROM,
                                 "command.interpolate_from"),
    )

    action_raw = data.get("action", {}) or {}
    if not isinstance(action_raw, dict):
        raise RobotInterfaceError(f"{source}: action must be a mapping with source and topic")
    action = ActionSource(
        source=_choice(action_raw.get("source", "leader"), ACTION_SOURCES, "action.source"),
        topic=str(action_raw.get("topic", "")),
    )
    if action.source == "leader":
        _topic(action.topic, "action.topic (the leader arm's JointState topic, needed for source: leader)")

    control_rate = _positive(_require(data, "control_rate", source), "control_rate")
    command_rate = _positive(data.get("command_rate", control_rate), "command_rate")
    if command_rate < control_rate:
        raise RobotInterfaceError(f"command_rate ({command_rate} Hz) must be at least control_rate ({control_rate} Hz)")
    if abs(control_rate - round(control_rate)) > 1e-9:
        raise RobotInterfaceError(f"control_rate must be a whole number of Hz (it is the dataset fps), got {control_rate}")

    return RobotInterface(
        name=str(data.get("name", "robot")),
        joints=joints,
        joint_state_topic=_topic(_require(data, "joint_state_topic", source), "joint_state_topic"),
        cameras=cameras,
        command=command,
        control_rate=control_rate,
        command_rate=command_rate,
        action=action,
        source_path=source,
    )


def robot_interface_to_dict(robot: RobotInterface) -> dict[str, Any]:
    """The YAML mapping that ``parse_robot_interface`` reads back into ``robot``."""
    return {"robot": {
        "name": robot.name,
        "control_rate": robot.control_rate,
        "command_rate": robot.command_rate,
        "joint_state_topic": robot.joint_state_topic,
        "joints": [{"name": j.name, "position_limits": [j.lower, j.upper], "velocity_limit": j.max_velocity,
                    **({} if j.max_acceleration is None else {"acceleration_limit": j.max_acceleration})}
                   for j in robot.joints],
        "cameras": [{"name": c.name, "topic": c.topic, "type": c.type, "width": c.width, "height": c.height}
                    for c in robot.cameras],
        "command": {"topic": robot.command.topic, "type": robot.command.type,
                    "trajectory_mode": robot.command.trajectory_mode,
                    "interpolate_from": robot.command.interpolate_from},
        "action": {"source": robot.action.source, "topic": robot.action.topic},
    }}


def save_robot_interface(robot: RobotInterface, path: str | Path) -> Path:
    """Write ``robot`` as a robot interface YAML file."""
    path = Path(path)
    path.write_text(yaml.safe_dump(robot_interface_to_dict(robot), sort_keys=False))
    return path


def load_robot_interface(path: str | Path) -> RobotInterface:
    """Read and validate a robot interface YAML file."""
    path = Path(path)
    if not path.is_file():
        raise RobotInterfaceError(f"robot interface file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RobotInterfaceError(f"{path}: not valid YAML: {exc}") from None
    return parse_robot_interface(data, source=str(path))


def default_robot_config_path() -> Path:
    """The example robot interface shipped with dp_ros (the simulated arm)."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "config" / "robot.yaml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("dp_ros")) / "config" / "robot.yaml")
    except Exception:  # noqa: BLE001 - ament index absent or package not installed there
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RobotInterfaceError("cannot find dp_ros's config/robot.yaml; pass --robot-config explicitly")
