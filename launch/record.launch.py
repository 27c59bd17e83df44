"""Record demonstrations into a LeRobot dataset.

    ros2 launch dp_ros record.launch.py dataset_root:=~/data/pick task:="pick the cube"
        [robot_config:=/path/to/robot.yaml] [params_file:=/path/to/recorder.yaml] [use_sim_time:=false]

Then drive episodes with the node's services:
    ros2 service call /recorder_node/start_episode std_srvs/srv/Trigger
    ros2 service call /recorder_node/stop_episode std_srvs/srv/Trigger      # saves it
    ros2 service call /recorder_node/discard_episode std_srvs/srv/Trigger
    ros2 topic echo /recorder_node/status
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config_dir = PathJoinSubstitution([FindPackageShare("dp_ros"), "config"])
    arguments = [
        DeclareLaunchArgument("robot_config", default_value=PathJoinSubstitution([config_dir, "robot.yaml"]),
                              description="robot interface YAML (joints, cameras, topics, fps, action source)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config_dir, "recorder.yaml"]),
                              description="recorder node parameters"),
        DeclareLaunchArgument("dataset_root", default_value="~/dp_ros_data/demonstrations",
                              description="LeRobot dataset folder; an existing dataset is continued"),
        DeclareLaunchArgument("task", default_value="demonstration", description="task description of the episodes"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (simulation)"),
    ]
    recorder_node = Node(
        package="dp_ros",
        executable="recorder_node",
        name="recorder_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "robot_config": LaunchConfiguration("robot_config"),
                "dataset_root": LaunchConfiguration("dataset_root"),
                "task": LaunchConfiguration("task"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
    )
    return LaunchDescription([*arguments, recorder_node])
