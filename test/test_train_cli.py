"""`dp-ros train` runs LeRobot's real trainer on a tiny dataset made here: train, resume,
fine-tune, refuse mismatches before starting, report a failing trainer, stop on Ctrl-C."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess

import pytest
from safetensors.torch import load_file

from lerobot_fixtures import make_dataset, tiny_robot
from ros_testing import python_process
from training_fixtures import (
    assert_checkpoints_complete,
    check_policy_runs,
    processes_mentioning,
    read_until,
    write_train_yaml,
)

pytestmark = pytest.mark.training


def dp_ros_train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = python_process(["-m", "dp_ros.cli.main", "train", *map(str, args)], stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", tiny_robot(size=32), episodes=2, frames=16)


@pytest.fixture(scope="module")
def train_yaml(tmp_path_factory, dataset):
    return write_train_yaml(tmp_path_factory.mktemp("cfg") / "train.yaml", dataset)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_yaml):
    """One real training run of 4 steps with a checkpoint every 2."""
    run_dir = tmp_path_factory.mktemp("runs") / "first"
    result = dp_ros_train("--config", train_yaml, "--output-dir", run_dir)
    return run_dir, result


def test_train_writes_a_checkpoint_the_policy_runtime_runs(trained):
    run_dir, result = trained
    assert result.returncode == 0, result.stderr[-3000:]
    assert "finished: step 4 of 4" in result.stdout
    assert assert_checkpoints_complete(run_dir) == ["000002", "000004"]
    last = run_dir / "checkpoints" / "last"
    assert last.is_symlink() and last.resolve().name == "000004"
    assert f"policy: {run_dir / 'checkpoints/last/pretrained_model'}" in result.stdout
    check_policy_runs(run_dir / "checkpoints" / "last" / "pretrained_model")
    assert re.search(r"4/4 \[.*loss \d+\.\d{4}, lr \d\.\de-\d\d, ETA 0:00\]", result.stderr), result.stderr[-2000:]
    log = (run_dir / "dp_ros_train.log").read_text()
    assert "Checkpoint policy after step 4" in log and "End of training" in log


def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    run_dir, _ = trained
    moved = tmp_path / "moved_run"
    shutil.copytree(run_dir, moved, symlinks=True)
    result = dp_ros_train("--output-dir", moved, "--resume", "--steps", 6, "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {moved} from step 4 to step 6" in result.stdout
    assert "step 5/6" in result.stdout and "step 1/6" not in result.stdout
    assert assert_checkpoints_complete(moved) == ["000002", "000004", "000006"]
    assert json.loads((moved / "checkpoints/last/training_state/training_step.json").read_text())["step"] == 6
    assert not (run_dir / "checkpoints" / "000006").exists()  # the copy, not the original, went on
    check_policy_runs(moved / "checkpoints" / "last" / "pretrained_model")


def test_finetune_from_the_trained_checkpoint(trained, train_yaml, tmp_path):
    run_dir, _ = trained
    source = (run_dir / "checkpoints" / "last" / "pretrained_model").resolve()
    out = tmp_path / "finetuned"
    result = dp_ros_train("--config", train_yaml, "--pretrained-path", run_dir, "--output-dir", out, "--steps", 2,
                          "--set", "policy.optimizer_lr=1e-3", "--set", "policy.down_dims=[64,128,256]")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "policy.down_dims: the checkpoint's [32, 64, 128] is kept" in result.stdout
    model = out / "checkpoints" / "last" / "pretrained_model"
    config = json.loads((model / "config.json").read_text())
    assert config["down_dims"] == [32, 64, 128] and config["optimizer_lr"] == 1e-3
    train_config = json.loads((model / "train_config.json").read_text())
    assert train_config["policy"]["pretrained_path"] == str(source)
    before, after = load_file(source / "model.safetensors"), load_file(model / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not (before[k] == after[k]).all() for k in before), "fine-tuning changed no weight"
    check_policy_runs(model)


def test_a_dataset_of_another_robot_is_refused_before_training(trained, tmp_path):
    run_dir, _ = trained
    four_joints = make_dataset(tmp_path / "four", tiny_robot(joints=("j1", "j2", "j3", "j4"), size=32), episodes=1,
                               frames=10)
    out = tmp_path / "never"
    result = dp_ros_train("--dataset-root", four_joints, "--pretrained-path", run_dir, "--output-dir", out)
    assert result.returncode == 2
    assert "observation.state: shape [3] in the checkpoint, [4] in the dataset" in result.stderr
    assert "action: shape [3] in the checkpoint, [4] in the dataset" in result.stderr
    assert not out.exists()

    renamed = make_dataset(tmp_path / "renamed", tiny_robot(joints=("a", "b", "c"), size=32), episodes=1, frames=10)
    result = dp_ros_train("--dataset-root", renamed, "--pretrained-path", run_dir, "--output-dir", out)
    assert result.returncode == 2
    assert "the checkpoint was trained on ['j1', 'j2', 'j3'], the dataset has ['a', 'b', 'c']" in result.stderr
    assert not out.exists()


def test_an_existing_run_is_not_overwritten(trained, train_yaml):
    run_dir, _ = trained
    result = dp_ros_train("--config", train_yaml, "--output-dir", run_dir)
    assert result.returncode == 2
    assert "already holds a training run; set resume: true" in result.stderr


def test_dry_run_prints_the_lerobot_command(train_yaml, tmp_path):
    result = dp_ros_train("--config", train_yaml, "--output-dir", tmp_path / "dry", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "-m dp_ros.training.lerobot_entry --dataset.repo_id=local/tiny" in result.stdout
    assert "--policy.type=diffusion" in result.stdout and "--policy.down_dims=[32,64,128]" in result.stdout
    assert not (tmp_path / "dry").exists()


def test_a_failing_trainer_is_reported_with_its_exit_code_and_last_lines(train_yaml, tmp_path):
    result = dp_ros_train("--config", train_yaml, "--output-dir", tmp_path / "fails", "--set",
                          "policy.no_such_option=3")
    assert result.returncode == 1
    assert "training failed: the trainer exited with code 2. Its last lines:" in result.stderr
    assert "unrecognized arguments: --policy.no_such_option=3" in result.stderr


def test_ctrl_c_stops_cleanly_and_keeps_the_last_checkpoint(train_yaml, tmp_path):
    out = tmp_path / "interrupted"
    # 60 steps (a checkpoint every 2, ~190 MB each): a stop that never arrives ends the run, not the disk
    proc = python_process(["-m", "dp_ros.cli.main", "train", "--config", str(train_yaml), "--output-dir", str(out),
                           "--steps", "60", "--no-progress"])
    lines: list[str] = []
    read_until(proc, "checkpoint of step", lines)
    ignored = int(next(line for line in open(f"/proc/{proc.pid}/status") if line.startswith("SigIgn:")).split()[1], 16)
    if ignored & (1 << (signal.SIGINT - 1)):
        proc.kill()
        pytest.fail("dp-ros train was started ignoring SIGINT (inherited from the test process)")
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=180)
    output = "".join(lines) + rest
    assert proc.returncode == 130, output[-3000:]
    assert "stopped on request at step" in output and "last checkpoint kept" in output
    names = assert_checkpoints_complete(out)
    assert names and (out / "checkpoints" / "last").resolve().name == names[-1]
    check_policy_runs(out / "checkpoints" / "last" / "pretrained_model")
    assert processes_mentioning(str(out)) == [], "the trainer outlived dp-ros train"
