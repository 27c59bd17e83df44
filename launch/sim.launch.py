"""The simulated arm (MuJoCo) with the ROS interface of a ros2_control robot, and optionally its expert.

    ros2 launch dp_ros sim.launch.py [expert:=false] [robot_config:=/path/to/robot.yaml]
        [params_file:=/path/to/sim.yaml] [use_sim_time:=false] [seed:=-1] [side:=random]

sim_node publishes the joint states and camera images of the robot interface,
follows its commands and offers /sim_node/reset and /task_status; with
expert:=true, expert_node demonstrates the task after every reset (leader
JointState on the robot interface's action topic, commands to the arm).
use_sim_time:=true makes sim_node publish /clock and the expert follow it.
The pip route without the launch system: `dp-ros sim [--expert]`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config_dir = PathJoinSubstitution([FindPackageShare("dp_ros"), "config"])
    arguments = [
        DeclareLaunchArgument("robot_config", default_value=PathJoinSubstitution([config_dir, "robot.yaml"]),
                              description="robot interface YAML (joints, cameras, topics, limits)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config_dir, "sim.yaml"]),
                              description="sim_node and expert_node parameters"),
        DeclareLaunchArgument("expert", default_value="false", description="also run the scripted expert"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="publish /clock and stamp in simulated time"),
        DeclareLaunchArgument("seed", default_value="-1", description="seed of the task instances; -1 = random"),
        DeclareLaunchArgument("side", default_value="random",
                              description="expert: random, alternate, left or right around the pillar"),
    ]
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    seed = ParameterValue(LaunchConfiguration("seed"), value_type=int)
    sim_node = Node(
        package="dp_ros",
        executable="sim_node",
        name="sim_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {"robot_config": LaunchConfiguration("robot_config"), "publish_clock": use_sim_time, "seed": seed},
        ],
    )
    expert_node = Node(
        package="dp_ros",
        executable="expert_node",
        name="expert_node",
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration("expert")),
        parameters=[
            LaunchConfiguration("params_file"),
            {"robot_config": LaunchConfiguration("robot_config"), "use_sim_time": use_sim_time, "seed": seed,
             "side": LaunchConfiguration("side")},
        ],
    )
    return LaunchDescription([*arguments, sim_node, expert_node])
