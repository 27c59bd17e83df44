"""Datasets: durable LeRobot dataset writing (:mod:`.dataset_writer`), live recording sessions
(:mod:`.recording`), checks and plots (:mod:`.dataset_check`, :mod:`.dataset_plot`), and a dataset
written back as a rosbag2 MCAP file (:mod:`.dataset_to_bag`)."""
