"""Every node's parameters, declared once (declaration.py); one module per node (recorder, sim, policy, train).

``config_files``: the shipped parameters files made from the declarations.
"""
from dp_ros.node_params.declaration import NodeParameters, Param, ParameterError, parameters_file

__all__ = ["NodeParameters", "Param", "ParameterError", "parameters_file"]
