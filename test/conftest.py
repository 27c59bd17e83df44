"""Shared set-up for dp_ros tests: offline hubs, an isolated ROS domain, offscreen GL."""
import os
import random

# Nothing may be downloaded at test time; keep DDS traffic on this machine and
# away from other test runs; render MuJoCo without a display.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("MUJOCO_GL", "osmesa")
if not os.environ.get("ROS_DOMAIN_ID"):
    os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

# `make test-fast` leaves these out (`-m "not dds and not training and not slow"`).
DDS_MODULES = {"test_messages_dds", "test_policy_node", "test_recorder_node", "test_sim_node", "test_train_node"}
"""Modules whose tests start nodes that talk over real DDS between processes."""
TRAINING_MODULES = {"test_train_cli", "test_train_multiprocess", "test_demo"}
"""Modules whose tests run LeRobot training."""


def pytest_collection_modifyitems(items):
    import pytest

    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in DDS_MODULES:
            item.add_marker(pytest.mark.dds)
        if module in TRAINING_MODULES:
            item.add_marker(pytest.mark.training)
