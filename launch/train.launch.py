"""Train or fine-tune a Diffusion Policy with LeRobot, watched from ROS 2.

    ros2 launch dp_ros train.launch.py config:=/path/to/train.yaml
        [dataset_root:=/path/to/dataset] [output_dir:=/path/to/run] [pretrained_path:=/path/to/checkpoint]
        [steps:=0] [device:=auto] [resume:=false] [shutdown_when_done:=true]
        [num_processes:=0] [accelerate_config:=/path/to/accelerate.yaml]

num_processes > 1 trains with that many processes (one per GPU) through accelerate launch;
accelerate_config (from `accelerate config`) sets up several machines.

Progress: ros2 topic echo /train_node/status. Stop keeping the last checkpoint:
ros2 service call /train_node/stop std_srvs/srv/Trigger. Continue later with resume:=true.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config_dir = PathJoinSubstitution([FindPackageShare("dp_ros"), "config"])
    arguments = [
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([config_dir, "train.yaml"]),
                              description="training YAML: every LeRobot option by its name (see config/train.yaml)"),
        DeclareLaunchArgument("dataset_root", default_value="", description="dataset folder; empty = as the YAML says"),
        DeclareLaunchArgument("output_dir", default_value="", description="run folder; empty = as the YAML says"),
        DeclareLaunchArgument("pretrained_path", default_value="",
                              description="fine-tune from this checkpoint; empty = as the YAML says"),
        DeclareLaunchArgument("steps", default_value="0", description="optimisation steps; 0 = as the YAML says"),
        DeclareLaunchArgument("device", default_value="", description="auto, cpu, cuda; empty = as the YAML says"),
        DeclareLaunchArgument("resume", default_value="false", description="continue the run in output_dir"),
        DeclareLaunchArgument("num_processes", default_value="0",
                              description="training processes, one per GPU, through accelerate; 0 = as the YAML says"),
        DeclareLaunchArgument("accelerate_config", default_value="",
                              description="accelerate config file (e.g. several machines); empty = as the YAML says"),
        DeclareLaunchArgument("shutdown_when_done", default_value="true",
                              description="end the launch once training has finished, stopped or failed"),
    ]
    train_node = Node(
        package="dp_ros",
        executable="train_node",
        name="train_node",
        output="screen",
        emulate_tty=True,
        parameters=[{
            # Text parameters stay text even when empty (an empty string would otherwise read as null).
            **{name: ParameterValue(LaunchConfiguration(name), value_type=str)
               for name in ("config", "dataset_root", "output_dir", "pretrained_path", "device", "accelerate_config")},
            **{name: ParameterValue(LaunchConfiguration(name), value_type=int) for name in ("steps", "num_processes")},
            "resume": ParameterValue(LaunchConfiguration("resume"), value_type=bool),
            "shutdown_when_done": ParameterValue(LaunchConfiguration("shutdown_when_done"), value_type=bool),
        }],
    )
    return LaunchDescription([*arguments, train_node])
