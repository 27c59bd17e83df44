"""Demonstration data, ROS-free: durable LeRobot dataset writing, rosbag2 reading and
conversion, frame synchronisation, live recording sessions and dataset checks."""
