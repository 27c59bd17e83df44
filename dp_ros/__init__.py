"""dp_ros: LeRobot Diffusion Policy for ROS 2 robots."""
__version__ = "0.1.0"
