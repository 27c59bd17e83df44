"""The simulated arm in Gazebo (Harmonic) under ros2_control, for users who have Gazebo.

    ros2 launch dp_ros sim_gazebo.launch.py [gui:=true]
    ros2 launch dp_ros policy.launch.py checkpoint:=/path/to/pretrained_model use_sim_time:=true

Starts Gazebo on worlds/reach_around.sdf, spawns the arm of
urdf/dp_sim_arm.urdf.xacro with a gz_ros2_control system, loads
joint_state_broadcaster (/joint_states) and arm_controller, a
joint_trajectory_controller (/arm_controller/joint_trajectory), and bridges
/clock and the front camera (/camera/front/image_raw) with ros_gz_bridge
(config/gz_bridge.yaml): the topics of config/robot.yaml, so the policy node
runs unchanged. Randomised tasks, ~/reset and /task_status are the MuJoCo
simulator's (sim.launch.py); here the target is fixed.

Needs (not installed by dp_ros's set-up; untested in its CI, which has no Gazebo):
    sudo apt install ros-$ROS_DISTRO-ros-gz ros-$ROS_DISTRO-gz-ros2-control \\
        ros-$ROS_DISTRO-ros2-controllers ros-$ROS_DISTRO-xacro ros-$ROS_DISTRO-robot-state-publisher
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("dp_ros")
    gui = LaunchConfiguration("gui")
    arguments = [
        DeclareLaunchArgument("gui", default_value="true", description="show Gazebo's window (false: server only)"),
        DeclareLaunchArgument("world", default_value=PathJoinSubstitution([share, "worlds", "reach_around.sdf"]),
                              description="Gazebo world"),
        DeclareLaunchArgument("controllers_file",
                              default_value=PathJoinSubstitution([share, "config", "gz_controllers.yaml"]),
                              description="ros2_control controllers"),
    ]
    robot_description = ParameterValue(
        Command(["xacro ", PathJoinSubstitution([share, "urdf", "dp_sim_arm.urdf.xacro"]),
                 " controllers_file:=", LaunchConfiguration("controllers_file")]),
        value_type=str)
    server_only = PythonExpression(["'' if '", gui, "' == 'true' else ' -s --headless-rendering'"])
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("ros_gz_sim"), "launch", "gz_sim.launch.py"])),
        launch_arguments={"gz_args": [LaunchConfiguration("world"), " -r", server_only]}.items(),
    )
    robot_state_publisher = Node(
        package="robot_state_publisher",
        executable="robot_state_publisher",
        output="screen",
        parameters=[{"robot_description": robot_description, "use_sim_time": True}],
    )
    spawn = Node(
        package="ros_gz_sim",
        executable="create",
        output="screen",
        arguments=["-topic", "robot_description", "-name", "dp_sim_arm"],
    )
    bridge = Node(
        package="ros_gz_bridge",
        executable="parameter_bridge",
        output="screen",
        parameters=[{"config_file": PathJoinSubstitution([share, "config", "gz_bridge.yaml"]), "use_sim_time": True}],
    )
    controllers = Node(
        package="controller_manager",
        executable="spawner",
        output="screen",
        arguments=["joint_state_broadcaster", "arm_controller", "--controller-manager", "/controller_manager"],
    )
    return LaunchDescription([*arguments, gazebo, robot_state_publisher, spawn, bridge, controllers])
