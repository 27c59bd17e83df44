"""The simulated robot: a MuJoCo arm, its reach-around-the-pillar task and a scripted expert.

ROS-free (numpy and MuJoCo only). Importing this package chooses MuJoCo's
OpenGL backend (see :mod:`dp_ros.sim.rendering`) before MuJoCo is imported.

Entry points:

- :class:`dp_ros.sim.environment.SimEnvironment`: the physics, position targets,
  cameras, ``reset(seed)``, privileged state and the success test;
- :class:`dp_ros.sim.expert.ScriptedExpert` and :func:`dp_ros.sim.expert.evaluate_expert`:
  demonstrations that go around the pillar on the left or the right;
- :class:`dp_ros.sim.realtime.RealTimeSimulation`: the environment paced on the
  wall clock in its own thread (what ``sim_node`` runs).
"""
from dp_ros.sim.rendering import configure_gl

configure_gl()
