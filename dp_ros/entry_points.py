"""The console scripts (``ros2 run dp_ros <name>``, ``dp-ros``): each checks the installed LeRobot
(one line and exit code 2 when it is not a supported release) before it imports anything that loads it."""
from __future__ import annotations

import importlib
import sys
from functools import partial

from dp_ros.lerobot_compat import exit_unless_supported

# console script -> (module whose main() it runs, whether it needs LeRobot)
SCRIPTS: dict[str, tuple[str, bool]] = {
    "dp-ros": ("dp_ros.cli.main", False),  # checks per subcommand (dp-ros doctor reports instead)
    "policy_node": ("dp_ros.nodes.policy_node", True),
    "train_node": ("dp_ros.nodes.train_node", True),
    "recorder_node": ("dp_ros.nodes.recorder_node", True),
    "bag2lerobot": ("dp_ros.cli.bag2lerobot", True),
    "sim_node": ("dp_ros.nodes.sim_node", False),
    "expert_node": ("dp_ros.nodes.expert_node", False),
}


def run_script(name: str) -> int:
    module, needs_lerobot = SCRIPTS[name]
    if needs_lerobot:
        exit_unless_supported(name)
    return importlib.import_module(module).main()


# one callable per console script (setup.py names them)
dp_ros = partial(run_script, "dp-ros")
policy_node = partial(run_script, "policy_node")
train_node = partial(run_script, "train_node")
recorder_node = partial(run_script, "recorder_node")
bag2lerobot = partial(run_script, "bag2lerobot")
sim_node = partial(run_script, "sim_node")
expert_node = partial(run_script, "expert_node")


if __name__ == "__main__":
    sys.exit(run_script(sys.argv.pop(1)))
