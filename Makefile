# dp_ros: one-command set-up, tests, demo and benchmarks (pip route, no ROS install needed).
# The set-up is idempotent: every target below runs it first, and a second run is quick.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo bench doctor msgs clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

setup:  ## create .venv (Python 3.12), install pinned deps, build dp_ros_msgs, install dp_ros
	@DP_ROS_VENV=$(VENV) PYTHON=$(PYTHON) tools/setup.sh

test: setup  ## run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup  ## unit tests only: no DDS between processes, no training, no end-to-end runs
	$(PY) -m pytest -m "not dds and not training and not slow" $(PYTEST_ARGS)

demo: setup  ## the main job: the simulated end-to-end demo (record, train, run in closed loop, report)
	$(VENV)/bin/dp-ros demo

bench: setup  ## benchmarks: inference vs stock LeRobot and command jitter (needs `make demo` first), bags, training, sim
	$(VENV)/bin/dp-ros bench
	$(PY) benchmarks/bench_bag2lerobot.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_sim.py

doctor: setup  ## check the installation
	$(VENV)/bin/dp-ros doctor

msgs: setup  ## rebuild dp_ros_msgs from msg/
	tools/build_msgs.sh $(VENV)

clean:  ## remove build products (keeps .venv)
	rm -rf build install log .pytest_cache
