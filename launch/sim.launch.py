"""The simulated arm (MuJoCo) with the ROS interface of a ros2_control robot, and optionally its expert.

    ros2 launch dp_ros sim.launch.py [expert:=false] [robot_config:=/path/to/robot.yaml]
        [params_file:=/path/to/sim.yaml] [use_sim_time:=false] [seed:=-1] [side:=random]

sim_node publishes the joint states and camera images of the robot interface,
follows its commands and offers /sim_node/reset and /task_status; with
expert:=true, expert_node demonstrates the task after every reset (leader
JointState on the robot interface's action topic, commands to the arm).
use_sim_time:=true makes sim_node publish /clock and the expert follow it.
Precedence: the nodes' declared defaults, then params_file, then the arguments you give here
(an argument you leave out never overrides params_file).
The pip route without the launch system: `dp-ros sim [--expert]`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

NODE_ARGUMENTS = {
    "robot_config": "robot interface YAML (joints, cameras, topics, limits)",
    "use_sim_time": "publish /clock and stamp in simulated time",
    "seed": "seed of the task instances (and of the expert's choices); -1 = random",
    "side": "expert: random, alternate, left or right around the pillar",
}


def _nodes(context):
    from dp_ros.node_params.launch_arguments import node_parameters
    from dp_ros.node_params.sim import EXPERT, SIM

    given = context.launch_configurations
    sim_node = Node(package="dp_ros", executable="sim_node", name="sim_node", output="screen", emulate_tty=True,
                    parameters=node_parameters(SIM, given, ["robot_config", "use_sim_time", "seed"],
                                               renamed={"use_sim_time": "publish_clock"}))
    expert_node = Node(package="dp_ros", executable="expert_node", name="expert_node", output="screen",
                       emulate_tty=True, condition=IfCondition(LaunchConfiguration("expert")),
                       parameters=node_parameters(EXPERT, given, list(NODE_ARGUMENTS)))
    return [sim_node, expert_node]


def generate_launch_description():
    from dp_ros.node_params.launch_arguments import NOT_GIVEN

    config_dir = PathJoinSubstitution([FindPackageShare("dp_ros"), "config"])
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config_dir, "sim.yaml"]),
                              description="sim_node and expert_node parameters"),
        DeclareLaunchArgument("expert", default_value="false", description="also run the scripted expert"),
        *(DeclareLaunchArgument(name, default_value=NOT_GIVEN, description=f"{text}; empty = as params_file says")
          for name, text in NODE_ARGUMENTS.items()),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
