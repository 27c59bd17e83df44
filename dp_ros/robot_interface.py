"""The robot interface: one YAML description of the robot, read by every node and tool.

It names the joints (and their order in state and action vectors), the cameras,
the rates, the command topic and type, and the joint limits. The LeRobot feature
names derive from it: ``observation.state``, ``observation.images.<camera>`` and
``action``. ROS-free: a pydantic schema, each field's type, default, bounds and
meaning declared once; config/robot.yaml is the commented example.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dp_ros.core import choices

STATE_FEATURE = "observation.state"
ACTION_FEATURE = "action"
IMAGE_FEATURE_PREFIX = "observation.images."

CameraType = Literal["image", "compressed"]
CommandType = Literal["joint_trajectory", "float64_multi_array", "joint_state"]
TrajectoryMode = Literal["chunk", "single_point"]
InterpolateFrom = Literal[tuple(s.value for s in choices.InterpolateFrom)]
ActionSourceKind = Literal["leader", "command", "next_state"]
CAMERA_TYPES, COMMAND_TYPES, TRAJECTORY_MODES, INTERPOLATE_FROM, ACTION_SOURCES = (
    get_args(kind) for kind in (CameraType, CommandType, TrajectoryMode, InterpolateFrom, ActionSourceKind))



def _topic(value: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"must be a topic name such as /joint_states, got {value!r}")
    return value


Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Topic = Annotated[str, AfterValidator(_topic)]


class RobotInterfaceError(ValueError):
    """The robot interface YAML is missing, malformed or inconsistent."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Joint(_Section):
    """One actuated joint, in the order it takes in state and action vectors."""

    name: str = Field(min_length=1, description="The joint's name in sensor_msgs/JointState and the controller.")
    position_limits: tuple[Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]] \
        | None = Field(None, description="[lower, upper] allowed position command (rad or m); required unless "
                                         "the joint is continuous.")
    continuous: bool = Field(False, description="A joint that turns without end (a URDF continuous joint): no "
                             "position limits, it moves the shortest way round and its states may wrap at +-pi.")
    velocity_limit: Positive = Field(description="Largest allowed speed of the command (rad/s or m/s).")
    acceleration_limit: Positive | None = Field(None, description="Largest allowed acceleration of the command "
                                                                  "(rad/s^2 or m/s^2); none: not limited.")

    @model_validator(mode="after")
    def _ordered_limits(self) -> "Joint":
        if self.continuous:
            if self.position_limits is not None:
                raise ValueError("a continuous joint has no position_limits: remove them (or continuous: true)")
            return self
        if self.position_limits is None:
            raise ValueError("position_limits: missing required key (or mark the joint continuous: true)")
        if self.position_limits[0] >= self.position_limits[1]:
            raise ValueError(f"position_limits must be [lower, upper] with lower < upper, got {list(self.position_limits)}")
        return self

    @property
    def lower(self) -> float:
        return float("-inf") if self.continuous else self.position_limits[0]

    @property
    def upper(self) -> float:
        return float("inf") if self.continuous else self.position_limits[1]

    @property
    def max_velocity(self) -> float:
        return self.velocity_limit

    @property
    def max_acceleration(self) -> float | None:
        return self.acceleration_limit


class Camera(_Section):
    """One camera the policy sees, as ``observation.images.<name>``."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                      description="A simple identifier: it becomes observation.images.<name>.")
    topic: Topic = Field(description="sensor_msgs/Image or CompressedImage topic.")
    type: CameraType = Field("image", description="image (sensor_msgs/Image) or compressed (CompressedImage).")
    width: Annotated[int, Field(gt=0)] = Field(96, description="Width in pixels of the frames the policy and the "
                                                               "dataset use (input is resized).")
    height: Annotated[int, Field(gt=0)] = Field(96, description="Height in pixels of the frames the policy and the "
                                                                "dataset use.")

    @property
    def feature(self) -> str:
        return IMAGE_FEATURE_PREFIX + self.name

    @property
    def shape(self) -> tuple[int, int, int]:
        """Channel-first shape, as LeRobot features record it."""
        return (3, self.height, self.width)


class CommandInterface(_Section):
    """Where and how joint commands go (the ros2_control controller's input)."""

    topic: Topic = Field(description="The controller's command topic.")
    type: CommandType = Field("joint_trajectory", description="joint_trajectory (joint_trajectory_controller), "
                              "float64_multi_array (forward_command_controller) or joint_state.")
    trajectory_mode: TrajectoryMode = Field("chunk", description="joint_trajectory: chunk publishes the remaining "
                                            "plan as one time-parameterised trajectory; single_point one point.")
    interpolate_from: InterpolateFrom = Field(choices.InterpolateFrom.MEASURED.value,
                                              description="joint_trajectory: where the controller starts a new "
                                              "trajectory. measured: the measured joint position (the "
                                              "controller's default); desired: the set-point of the trajectory it "
                                              "replaces (its interpolate_from_desired_state: true).")
    update_rate: Positive | None = Field(None, description="The controller manager's update rate (Hz, its "
                                         "update_rate): step commands are judged per update, so two commands taken "
                                         "in one update are a double step. Default: the command rate.")


class ActionSource(_Section):
    """Where the recorder and the bag converter read the demonstrated action."""

    source: ActionSourceKind = Field("leader", description="leader (a leader arm's JointState on topic), command "
                                     "(the command topic) or next_state (the next observed joint positions).")
    topic: str = Field("", description="Topic of the leader arm's JointState (for source: leader).")

    @model_validator(mode="after")
    def _leader_needs_a_topic(self) -> "ActionSource":
        if self.source == "leader" and (not self.topic or any(ch.isspace() for ch in self.topic)):
            raise ValueError("topic must name the leader arm's JointState topic (such as /leader/joint_states) "
                             "for source: leader")
        return self


class RobotInterface(_Section):
    """Everything dp_ros needs to know about one robot."""

    name: str = Field("robot", description="The robot's name (the dataset's robot_type).")
    control_rate: Positive = Field(description="Policy steps per second: observation and action spacing and the "
                                   "dataset fps (a whole number).")
    command_rate: Positive = Field(description="Commands per second sent to the controller (>= control_rate); "
                                   "actions are interpolated between policy steps. Default: control_rate.")
    joint_state_topic: Topic = Field(description="sensor_msgs/JointState of the robot; joints matched by name.")
    joints: tuple[Joint, ...] = Field(min_length=1, description="The joints, in the order of state and action.")
    cameras: tuple[Camera, ...] = Field((), description="The cameras, each an observation.images.<name>.")
    command: CommandInterface = Field(description="Where commands go.")
    action: ActionSource = Field(default_factory=lambda: ActionSource(topic="/leader/joint_states"),
                                 description="The demonstrated action, for the recorder and the bag converter.")
    source_path: str = Field("", exclude=True, description="The file this interface was read from (not in the YAML).")

    @model_validator(mode="before")
    @classmethod
    def _command_rate_defaults_to_control_rate(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("command_rate") is None and "control_rate" in data:
            data = {**data, "command_rate": data["control_rate"]}
        return data

    @field_validator("control_rate")
    @classmethod
    def _whole_hz(cls, value: float) -> float:
        if abs(value - round(value)) > 1e-9:
            raise ValueError(f"control_rate must be a whole number of Hz (it is the dataset fps), got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "RobotInterface":
        if self.command.update_rate is not None and self.command.update_rate < self.command_rate:
            raise ValueError(f"command.update_rate ({self.command.update_rate} Hz) must be at least command_rate "
                             f"({self.command_rate} Hz): a controller updating less often drops commands")
        if self.command_rate < self.control_rate:
            raise ValueError(f"command_rate ({self.command_rate} Hz) must be at least control_rate "
                             f"({self.control_rate} Hz)")
        for what, names in (("joint", [j.name for j in self.joints]), ("camera", [c.name for c in self.cameras])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {what} names {duplicates}")
        return self

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
    def update_period(self) -> float:
        """Seconds between the controller's updates (command.update_rate, default command_rate)."""
        return 1.0 / (self.command.update_rate or self.command_rate)

    @property
    def continuous_joints(self) -> list[bool]:
        return [j.continuous for j in self.joints]

    @property
    def lower_limits(self) -> list[float]:
        return [j.lower for j in self.joints]

    @property
    def upper_limits(self) -> list[float]:
        return [j.upper for j in self.joints]

    @property
    def velocity_limits(self) -> list[float]:
        return [j.velocity_limit for j in self.joints]

    @property
    def acceleration_limits(self) -> list[float] | None:
        """Per-joint acceleration limits, or None when no joint has one (a joint without one: unlimited)."""
        if all(j.acceleration_limit is None for j in self.joints):
            return None
        return [float("inf") if j.acceleration_limit is None else j.acceleration_limit for j in self.joints]

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


def _where(data: Any, location: tuple) -> str:
    """``joints[0] (shoulder_pan).velocity_limit`` for a pydantic error location."""
    parts, node = [], data
    for key in location:
        if isinstance(key, int):
            parts[-1] += f"[{key}]"
            node = node[key] if isinstance(node, (list, tuple)) and key < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                parts[-1] += f" ({node['name']})"
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts) or "the robot interface"


def _explain(exc: ValidationError, data: Any, source: str) -> RobotInterfaceError:
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "missing required key"
        elif error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against config/robot.yaml)"
        elif "input" in error and error["type"] not in ("model_type", "value_error"):
            message += f", got {error['input']!r}"
        lines.append(f"{_where(data, error['loc'])}: {message}")
    return RobotInterfaceError(f"{source}: " + ("; ".join(lines) if len(lines) == 1 else "\n  - " + "\n  - ".join(lines)))


def parse_robot_interface(data: Any, source: str = "<dict>") -> RobotInterface:
    """Validate a robot interface given as a mapping (the YAML's content)."""
    if not isinstance(data, dict):
        raise RobotInterfaceError(f"{source}: the robot interface must be a YAML mapping")
    if "robot" in data and isinstance(data["robot"], dict):
        data = data["robot"]
    try:
        return RobotInterface.model_validate({**data, "source_path": source})
    except ValidationError as exc:
        raise _explain(exc, data, source) from None


def robot_interface_to_dict(robot: RobotInterface) -> dict[str, Any]:
    """The YAML mapping that ``parse_robot_interface`` reads back into ``robot``."""
    return {"robot": robot.model_dump(mode="json", exclude_none=True)}


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
