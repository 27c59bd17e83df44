"""Bags in: rosbag2 reading (:mod:`.bag_reader`, :mod:`.mcap_chunks`, :mod:`.bag_types`), which topic feeds
which feature (:mod:`.topic_plan`), frames from one bag (:mod:`.bag_sync`), and conversion into a LeRobot
dataset (:mod:`.bag_conversion`, in worker processes :mod:`.parallel_conversion`, one shard per cluster job
:mod:`.shards`)."""
