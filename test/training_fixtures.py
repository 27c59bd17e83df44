"""Tiny training configurations for tests: LeRobot's real trainer, a few steps on a tiny dataset."""
from __future__ import annotations

import codecs
import os
import select
import subprocess
import time
from pathlib import Path

import numpy as np
import yaml

from lerobot_fixtures import synthetic_frame, tiny_robot

# Small enough to train a step in about a second on a CPU: a 32x32 camera, a small U-Net.
TINY_TRAINING = {
    "policy": {"device": "cpu", "down_dims": [32, 64, 128], "crop_shape": [28, 28], "spatial_softmax_num_keypoints": 16,
               "diffusion_step_embed_dim": 32, "scheduler_warmup_steps": 10},
    "batch_size": 4,
    "num_workers": 0,
    "log_freq": 1,
    "save_freq": 2,
    "steps": 4,
}


def write_train_yaml(path: Path, dataset_root: Path, **options) -> Path:
    train = {"dataset": {"repo_id": "local/tiny", "root": str(dataset_root)}, **TINY_TRAINING}
    train["policy"] = dict(TINY_TRAINING["policy"])
    for key, value in options.items():
        if key == "policy":
            train["policy"].update(value)
        else:
            train[key] = value
    path.write_text(yaml.safe_dump({"train": train}))
    return path


def check_policy_runs(model_dir: Path, robot=None) -> np.ndarray:
    """Load a checkpoint in dp_ros's policy runtime and predict one chunk from real-looking observations."""
    from dp_ros.core.policy_runtime import PolicyRuntime

    robot = robot or tiny_robot(size=32)
    runtime = PolicyRuntime.load(model_dir, device="cpu", noise_scheduler="ddim", num_inference_steps=4, seed=0)
    runtime.check_robot(robot)
    history = [synthetic_frame(robot, t * robot.control_period, 0) for t in range(runtime.n_obs_steps)]
    chunk = runtime.predict_chunk(history)
    assert chunk.shape == (runtime.n_action_steps, robot.num_joints)
    assert np.all(np.isfinite(chunk))
    return chunk


def assert_checkpoints_complete(run_dir: Path) -> list[str]:
    """Every checkpoint folder of a run holds a whole policy and training state; returns their names."""
    names = []
    for step_dir in sorted((run_dir / "checkpoints").iterdir()):
        if step_dir.is_symlink():
            continue
        model = step_dir / "pretrained_model"
        for name in ("config.json", "model.safetensors", "train_config.json", "policy_preprocessor.json",
                     "policy_postprocessor.json"):
            assert (model / name).is_file(), f"{model / name} missing: a checkpoint was cut in half"
        assert (step_dir / "training_state" / "training_step.json").is_file()
        names.append(step_dir.name)
    return names


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (to catch orphaned trainers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def rank_processes(text: str) -> dict[int, int]:
    """{global rank: pid} of the live training processes (accelerate's ranks) whose command line contains ``text``."""
    ranks = {}
    for pid in processes_mentioning(text):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        values = dict(item.decode(errors="replace").split("=", 1) for item in environ if b"=" in item)
        if "RANK" in values and "dp_ros.training.lerobot_entry" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            ranks[int(values["RANK"])] = pid
    return ranks


def read_until(proc: subprocess.Popen, prefix: str, lines: list[str], timeout: float = 240) -> None:
    """Read ``proc``'s output into ``lines`` until a line starts with ``prefix``; fails (killing ``proc``) if none
    has within ``timeout`` seconds, however quiet the process is. Reads the pipe's file descriptor, so
    ``proc.communicate()`` returns the rest afterwards (a partial last line stays in ``lines``)."""
    deadline, decoder, pending = time.monotonic() + timeout, codecs.getincrementaldecoder("utf-8")(), ""
    fd = proc.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            proc.kill()
            raise AssertionError(f"no line starting with {prefix!r} within {timeout} s:\n" + "".join(lines + [pending]))
        chunk = os.read(fd, 65536)
        assert chunk, "dp-ros train ended early:\n" + "".join(lines + [pending])
        *complete, pending = (pending + decoder.decode(chunk)).split("\n")
        lines.extend(line + "\n" for line in complete)
        if any(line.startswith(prefix) for line in complete):
            if pending:
                lines.append(pending)
            return
