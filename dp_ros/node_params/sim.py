"""sim_node's and expert_node's parameters (config/sim.yaml, `dp-ros sim` options)."""
from dp_ros.node_params.declaration import NodeParameters, Param

HEADER = """\
Parameters of dp_ros's simulated arm (sim_node) and its scripted expert (expert_node),
with their defaults (`dp-ros params sim_node expert_node` prints this file).
  ros2 launch dp_ros sim.launch.py [expert:=true] [params_file:=<this file>]
  dp-ros sim [--expert] [--params-file <this file>]
Both nodes read the robot interface (joints, camera topics and sizes, command topic and
type, rates) from robot_config."""

ROBOT_CONFIG = Param("robot_config", "", "robot interface YAML; empty = dp_ros's config/robot.yaml", option=True)
TASK_STATUS_TOPIC = "/task_status"
SIDES = ("random", "alternate", "left", "right")

SIM = NodeParameters("sim_node", [
    ROBOT_CONFIG,
    Param("seed", -1, "seed of the sequence of task instances (one per reset); -1 = random", minimum=-1, option=True),
    Param("joint_state_rate", 100.0, "JointState messages per second (of simulated time, so exactly spaced)",
          above=0.0, option=True),
    Param("camera_rate", 15.0, "frames per second of each camera (a 96x96 frame costs ~15-25 ms to render on a "
          "CPU); 0 = no cameras", minimum=0.0, option=True),
    Param("status_rate", 10.0, "dp_ros_msgs/TaskStatus messages per second", above=0.0),
    Param("task_status_topic", TASK_STATUS_TOPIC, "topic of dp_ros_msgs/TaskStatus"),
    Param("publish_clock", False, "publish /clock and stamp everything in simulated time (for use_sim_time users)",
          option=True),
    Param("time_limit", 8.0, "seconds after a reset within which reaching the target counts as success",
          above=0.0, option=True),
    Param("auto_reset", False, "start a new episode by itself after success or the time limit", option=True),
    Param("auto_reset_delay", 1.0, "seconds to wait after success or the time limit before an automatic reset",
          minimum=0.0),
    Param("max_lag", 0.1, "seconds the physics may fall behind the wall clock before it skips ahead", above=0.0),
])

EXPERT = NodeParameters("expert_node", [
    ROBOT_CONFIG,
    Param("seed", -1, "seed of the random left/right choices; -1 = random", minimum=-1, option=True),
    Param("side", "random", "which way around the pillar: random (per episode), alternate, left or right",
          choices=SIDES, option=True),
    Param("start_on_reset", True, "start a demonstration by itself after each reset of the simulator, start_delay "
          "seconds later; otherwise only on the ~/start service"),
    Param("start_delay", 0.3, "seconds between the reset and the start of the motion", minimum=0.0, option=True),
    Param("duration", 2.5, "seconds the motion from the start pose to the target takes", above=0.0),
    Param("forward_commands", True, "also send the targets as commands on the robot's command topic (a "
          "teleoperation bridge)", option="--no-forward"),
    Param("publish_rate", 0.0, "leader JointState messages per second; 0 = the robot interface's command_rate",
          minimum=0.0),
    Param("leader_topic", "", "topic of the leader JointState; empty = the robot interface's action.topic"),
    Param("task_status_topic", TASK_STATUS_TOPIC, "the simulator's dp_ros_msgs/TaskStatus topic"),
])
