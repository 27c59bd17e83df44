"""Shared set-up for dp_ros tests: offline hubs, an isolated ROS domain, offscreen GL."""
import os
import random
import signal

# Nothing may be downloaded at test time; keep DDS traffic on this machine and
# away from other test runs; render MuJoCo without a display.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("MUJOCO_GL", "osmesa")
if not os.environ.get("ROS_DOMAIN_ID"):
    os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

# A suite started in the background (`make test &`, nohup) ignores SIGINT, and every process it starts would
# inherit that: the tests that stop a trainer or a node with Ctrl-C need the processes to take it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Markers (dds, training, slow) are declared by the tests themselves (`pytestmark` in their modules);
# `make test-fast` leaves them out (`-m "not dds and not training and not slow"`).
