"""Run a LeRobot Diffusion Policy checkpoint as a controller.

    ros2 launch dp_ros policy.launch.py checkpoint:=/path/to/pretrained_model
        [robot_config:=/path/to/robot.yaml] [params_file:=/path/to/policy.yaml]
        [device:=auto|cpu|cuda] [use_sim_time:=false] [autostart:=true]

Precedence: the node's declared defaults, then params_file, then the arguments you give here
(an argument you leave out never overrides params_file).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

NODE_ARGUMENTS = {
    "checkpoint": "LeRobot checkpoint folder (pretrained_model/ with config.json and model.safetensors)",
    "robot_config": "robot interface YAML (joints, cameras, topics, limits)",
    "device": "auto (CUDA when present), cpu or cuda",
    "use_sim_time": "use /clock (simulation)",
    "autostart": "configure and activate the node (command the robot) as soon as it is up",
}


def _policy_node(context):
    from dp_ros.node_params.launch_arguments import node_parameters
    from dp_ros.node_params.policy import POLICY

    return [Node(package="dp_ros", executable="policy_node", name="policy_node", output="screen", emulate_tty=True,
                 parameters=node_parameters(POLICY, context.launch_configurations, list(NODE_ARGUMENTS)))]


def generate_launch_description():
    from dp_ros.node_params.launch_arguments import NOT_GIVEN

    config_dir = PathJoinSubstitution([FindPackageShare("dp_ros"), "config"])
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config_dir, "policy.yaml"]),
                              description="policy node parameters (sampler, steps, safety, QoS)"),
        *(DeclareLaunchArgument(name, default_value=NOT_GIVEN, description=f"{text}; empty = as params_file says")
          for name, text in NODE_ARGUMENTS.items()),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_policy_node)])
