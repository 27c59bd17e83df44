"""Run a LeRobot Diffusion Policy checkpoint as a controller.

    ros2 launch dp_ros policy.launch.py checkpoint:=/path/to/pretrained_model
        [robot_config:=/path/to/robot.yaml] [params_file:=/path/to/policy.yaml]
        [device:=auto|cpu|cuda] [use_sim_time:=false] [autostart:=true]
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config_dir = PathJoinSubstitution([FindPackageShare("dp_ros"), "config"])
    arguments = [
        DeclareLaunchArgument("checkpoint", description="LeRobot checkpoint folder (pretrained_model/ with config.json and model.safetensors)"),
        DeclareLaunchArgument("robot_config", default_value=PathJoinSubstitution([config_dir, "robot.yaml"]),
                              description="robot interface YAML (joints, cameras, topics, limits)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config_dir, "policy.yaml"]),
                              description="policy node parameters (sampler, steps, safety, QoS)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto (CUDA when present), cpu or cuda"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (simulation)"),
        DeclareLaunchArgument("autostart", default_value="true", description="command the robot as soon as ready"),
    ]
    policy_node = Node(
        package="dp_ros",
        executable="policy_node",
        name="policy_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "robot_config": LaunchConfiguration("robot_config"),
                "device": LaunchConfiguration("device"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
                "autostart": LaunchConfiguration("autostart"),
            },
        ],
    )
    return LaunchDescription([*arguments, policy_node])
