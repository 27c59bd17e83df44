"""The parameters files shipped in config/, each made from node declarations (tests keep them equal)."""
from dp_ros.node_params import policy, recorder, sim, train
from dp_ros.node_params.declaration import NodeParameters

# config/<file> -> (header, the nodes it configures): the file is parameters_file(header, *nodes).
CONFIG_FILES: dict[str, tuple[str, tuple[NodeParameters, ...]]] = {
    "policy.yaml": (policy.HEADER, (policy.POLICY,)),
    "recorder.yaml": (recorder.HEADER, (recorder.RECORDER,)),
    "sim.yaml": (sim.HEADER, (sim.SIM, sim.EXPERT)),
}
NODES: dict[str, NodeParameters] = {d.node_name: d for _, nodes in CONFIG_FILES.values() for d in nodes}
NODES[train.TRAIN.node_name] = train.TRAIN   # its training is configured by the training YAML instead
