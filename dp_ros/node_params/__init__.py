"""Every node's parameters, declared once (see declaration.py), and the parameters files made from them."""
from dp_ros.node_params import recorder, sim
from dp_ros.node_params.declaration import NodeParameters, Param, ParameterError, parameters_file

# config/<file> -> (header, the nodes it configures); the shipped files equal parameters_file(...) of these.
CONFIG_FILES: dict[str, tuple[str, tuple[NodeParameters, ...]]] = {
    "recorder.yaml": (recorder.HEADER, (recorder.RECORDER,)),
    "sim.yaml": (sim.HEADER, (sim.SIM, sim.EXPERT)),
}
NODES: dict[str, NodeParameters] = {d.node_name: d for _, nodes in CONFIG_FILES.values() for d in nodes}

__all__ = ["CONFIG_FILES", "NODES", "NodeParameters", "Param", "ParameterError", "parameters_file"]
