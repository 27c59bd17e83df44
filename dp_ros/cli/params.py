"""Print a node's parameters as a documented ROS 2 parameters YAML, at their defaults.

The YAML comes from the node's declaration (dp_ros/node_params), the one place
a parameter's default, type, bounds and description are written; the files in
dp_ros's config/ are exactly this output. Start your own file from it:

Examples:
  dp-ros params recorder_node > my_recorder.yaml
  dp-ros params sim.yaml                 # a whole shipped file (sim_node and expert_node)
  dp-ros params                          # list the nodes and files
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NODE_OR_FILE",
                        help="node names (e.g. recorder_node) or shipped file names (e.g. sim.yaml); none = list them")


def run(args: argparse.Namespace) -> int:
    from dp_ros.node_params import CONFIG_FILES, NODES, parameters_file

    if not args.names:
        print("nodes: " + ", ".join(NODES) + "\nfiles: " + ", ".join(CONFIG_FILES))
        return 0
    for name in args.names:
        if name in CONFIG_FILES:
            header, declarations = CONFIG_FILES[name]
            print(parameters_file(header, *declarations), end="")
        elif name in NODES:
            print(NODES[name].yaml(), end="")
        else:
            print(f"dp-ros params: no node or file {name!r}; nodes: {', '.join(NODES)}; files: "
                  f"{', '.join(CONFIG_FILES)}", file=sys.stderr)
            return 2
    return 0
