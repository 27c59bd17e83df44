"""Demonstration data, ROS-free, in two flows that meet at :mod:`dp_ros.data.frame_sync` (as-of sampling):

- :mod:`dp_ros.data.bags`: bags in. Reading rosbag2 bags (sqlite3, MCAP), putting their
  messages in time order, sampling frames at the dataset fps, converting bags into a dataset
  (serially, in worker processes, or one shard per cluster job).
- :mod:`dp_ros.data.datasets`: datasets. Writing LeRobot datasets durably, live recording
  sessions, dataset checks and plots, and a dataset written back as a bag.

Imports go one way: ``bags`` uses ``datasets`` (a conversion writes a dataset), never the reverse.
"""
