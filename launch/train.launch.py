"""Train or fine-tune a Diffusion Policy with LeRobot, watched from ROS 2.

    ros2 launch dp_ros train.launch.py config:=/path/to/train.yaml
        [dataset_root:=/path/to/dataset] [output_dir:=/path/to/run] [pretrained_path:=/path/to/checkpoint]
        [steps:=0] [device:=auto] [resume:=false] [shutdown_when_done:=true]
        [num_processes:=0] [accelerate_config:=/path/to/accelerate.yaml] [params_file:=/path/to/train_node.yaml]

num_processes > 1 trains with that many processes (one per GPU) through accelerate launch;
accelerate_config (from `accelerate config`) sets up several machines.
Precedence: the node's declared defaults, then this launch file's (config: dp_ros's config/train.yaml,
shutdown_when_done: true), then params_file (train_node's ROS parameters), then the arguments you give here
(an argument you leave out never overrides params_file).

Progress: ros2 topic echo /train_node/status. Stop keeping the last checkpoint:
ros2 service call /train_node/stop std_srvs/srv/Trigger. Continue later with resume:=true.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

NODE_ARGUMENTS = {
    "config": "training YAML: every LeRobot option by its name (see config/train.yaml)",
    "dataset_root": "dataset folder",
    "output_dir": "run folder",
    "pretrained_path": "fine-tune from this checkpoint",
    "steps": "optimisation steps",
    "device": "auto, cpu, cuda",
    "resume": "continue the run in output_dir",
    "num_processes": "training processes, one per GPU, through accelerate",
    "accelerate_config": "accelerate config file (e.g. several machines)",
    "shutdown_when_done": "end the launch once training has finished, stopped or failed",
}


def _train_node(context):
    from pathlib import Path

    from dp_ros.node_params.launch_arguments import node_parameters
    from dp_ros.node_params.train import TRAIN

    share = FindPackageShare("dp_ros").perform(context)
    launch_defaults = {"config": str(Path(share) / "config" / "train.yaml"), "shutdown_when_done": True}
    return [Node(package="dp_ros", executable="train_node", name="train_node", output="screen", emulate_tty=True,
                 parameters=node_parameters(TRAIN, context.launch_configurations, list(NODE_ARGUMENTS),
                                            launch_defaults=launch_defaults))]


def generate_launch_description():
    from dp_ros.node_params.launch_arguments import NOT_GIVEN

    arguments = [
        DeclareLaunchArgument("params_file", default_value=NOT_GIVEN,
                              description="train_node's ROS parameters file; empty = none"),
        *(DeclareLaunchArgument(name, default_value=NOT_GIVEN,
                                description=f"{text}; empty = as params_file (or else the training YAML) says")
          for name, text in NODE_ARGUMENTS.items()),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_train_node)])
