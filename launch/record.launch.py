"""Record demonstrations into a LeRobot dataset.

    ros2 launch dp_ros record.launch.py dataset_root:=~/data/pick task:="pick the cube"
        [robot_config:=/path/to/robot.yaml] [params_file:=/path/to/recorder.yaml] [use_sim_time:=false]

Precedence: the node's declared defaults, then params_file, then the arguments you give here
(an argument you leave out never overrides params_file).

Then drive episodes with the node's services:
    ros2 service call /recorder_node/start_episode std_srvs/srv/Trigger
    ros2 service call /recorder_node/stop_episode std_srvs/srv/Trigger      # saves it
    ros2 service call /recorder_node/discard_episode std_srvs/srv/Trigger
    ros2 topic echo /recorder_node/status
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

NODE_ARGUMENTS = {
    "robot_config": "robot interface YAML (joints, cameras, topics, fps, action source)",
    "dataset_root": "LeRobot dataset folder; an existing dataset is continued",
    "task": "task description of the episodes",
    "use_sim_time": "use /clock (simulation)",
}


def _recorder_node(context):
    from dp_ros.node_params.launch_arguments import node_parameters
    from dp_ros.node_params.recorder import RECORDER

    return [Node(package="dp_ros", executable="recorder_node", name="recorder_node", output="screen",
                 emulate_tty=True,
                 parameters=node_parameters(RECORDER, context.launch_configurations, list(NODE_ARGUMENTS)))]


def generate_launch_description():
    from dp_ros.node_params.launch_arguments import NOT_GIVEN

    config_dir = PathJoinSubstitution([FindPackageShare("dp_ros"), "config"])
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config_dir, "recorder.yaml"]),
                              description="recorder node parameters"),
        *(DeclareLaunchArgument(name, default_value=NOT_GIVEN, description=f"{text}; empty = as params_file says")
          for name, text in NODE_ARGUMENTS.items()),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_recorder_node)])
