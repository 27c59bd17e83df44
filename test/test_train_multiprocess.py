"""`dp-ros train --num-processes 2`: two real training processes through accelerate launch.

On this CPU-only machine accelerate's launcher (torchrun) starts two ranks and
LeRobot's trainer synchronises them with the gloo backend, exactly as it does
NCCL ranks on GPUs. The tests train a tiny policy to a checkpoint the policy
runtime loads, stop both ranks with Ctrl-C keeping the last checkpoint, resume
with two processes, report a rank killed mid-run by its rank, and run two
"machines" on localhost (accelerate's multi-machine launch, one of them
configured by an accelerate config file).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from lerobot_fixtures import make_dataset, tiny_robot
from ros_testing import python_process
from training_fixtures import (
    assert_checkpoints_complete,
    check_policy_runs,
    processes_mentioning,
    read_until,
    rank_processes,
    write_train_yaml,
)

pytestmark = [pytest.mark.slow, pytest.mark.training]


@pytest.fixture(scope="module")
def train_yaml(tmp_path_factory):
    dataset = make_dataset(tmp_path_factory.mktemp("data") / "tiny", tiny_robot(size=32), episodes=2, frames=16)
    return write_train_yaml(tmp_path_factory.mktemp("cfg") / "train.yaml", dataset)


def train_args(train_yaml: Path, out: Path, *args: str) -> list[str]:
    return ["-m", "dp_ros.cli.main", "train", "--config", str(train_yaml), "--output-dir", str(out),
            "--num-processes", "2", "--no-progress", *args]


def test_two_processes_stop_together_keep_the_checkpoint_and_resume(train_yaml, tmp_path):
    out = tmp_path / "run"
    proc = python_process(train_args(train_yaml, out, "--steps", "100"))   # a lost stop ends the run, not the disk
    lines: list[str] = []
    read_until(proc, "checkpoint of step", lines)
    ranks = rank_processes(str(out))
    assert sorted(ranks) == [0, 1], f"expected two ranks, found {ranks}"
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=180)
    output = "".join(lines) + rest
    assert proc.returncode == 130, output[-3000:]
    assert "2 training processes: each takes 4 samples per step" in output
    assert "stopped on request at step" in output and "last checkpoint kept" in output
    assert processes_mentioning(str(out)) == [], "a rank outlived dp-ros train"
    log = (out / "dp_ros_train.log").read_text()
    assert "Effective batch size: 4 x 2 = 8" in log  # LeRobot's own count of the processes
    stopped_at = int((out / "checkpoints" / "last").resolve().name)
    assert assert_checkpoints_complete(out)[-1] == f"{stopped_at:06d}"

    resumed = python_process(train_args(train_yaml, out, "--resume", "--steps", str(stopped_at + 2)),
                             stderr=subprocess.PIPE)
    resumed.stdout_text, resumed.stderr_text = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, resumed.stdout_text[-2000:] + resumed.stderr_text[-3000:]
    assert f"resuming {out} from step {stopped_at} to step {stopped_at + 2}" in resumed.stdout_text
    assert f"finished: step {stopped_at + 2} of {stopped_at + 2}" in resumed.stdout_text
    state = json.loads((out / "checkpoints/last/training_state/training_step.json").read_text())
    assert state["step"] == stopped_at + 2
    check_policy_runs(out / "checkpoints" / "last" / "pretrained_model")  # PolicyRuntime.load + check_robot


def test_a_killed_rank_is_named_in_the_failure(train_yaml, tmp_path):
    out = tmp_path / "crash"
    proc = python_process(train_args(train_yaml, out, "--steps", "1000"), stderr=subprocess.PIPE)
    lines: list[str] = []
    read_until(proc, "training: step", lines)
    ranks = rank_processes(str(out))
    assert sorted(ranks) == [0, 1], f"expected two ranks, found {ranks}"
    os.kill(ranks[1], signal.SIGKILL)  # as the out-of-memory killer would
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err[-3000:]
    assert f"rank 1 of 2 (pid {ranks[1]}) ended without reporting why" in err, err[-3000:]
    assert processes_mentioning(str(out)) == [], "a rank outlived dp-ros train"


def test_two_machines_on_localhost_one_through_a_config_file(train_yaml, tmp_path):
    """A multi-machine run as accelerate does it, both 'machines' here: machine 0 gets accelerate's options on
    the command line, machine 1 an accelerate config file; they share the output folder."""
    out, port = tmp_path / "shared_run", str(free_port())
    config_file = tmp_path / "machine1.yaml"
    config_file.write_text(yaml.safe_dump({
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU", "num_machines": 2,
        "num_processes": 2, "machine_rank": 1, "main_process_ip": "127.0.0.1", "main_process_port": int(port),
        "rdzv_backend": "static", "same_network": True, "mixed_precision": "no"}))
    main = python_process(train_args(train_yaml, out, "--steps", "2", *(
        f"--accelerate-arg=--{o}" for o in ("num_machines=2", "machine_rank=0", "main_process_ip=127.0.0.1",
                                            f"main_process_port={port}"))), stderr=subprocess.PIPE)
    other = python_process(["-m", "dp_ros.cli.main", "train", "--config", str(train_yaml), "--output-dir", str(out),
                            "--steps", "2", "--accelerate-config", str(config_file), "--no-progress"],
                           stderr=subprocess.PIPE)
    main_out, main_err = main.communicate(timeout=300)
    other_out, other_err = other.communicate(timeout=120)
    assert main.returncode == 0, main_out[-2000:] + main_err[-3000:]
    assert other.returncode == 0, other_out[-2000:] + other_err[-3000:]
    assert "finished: step 2 of 2" in main_out and "finished: step 2 of 2" in other_out
    assert "this is machine 1 of a multi-machine run" in other_out
    assert "Effective batch size: 4 x 2 = 8" in (out / "dp_ros_train.log").read_text()
    assert assert_checkpoints_complete(out) == ["000002"]
    check_policy_runs(out / "checkpoints" / "last" / "pretrained_model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
