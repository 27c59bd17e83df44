"""The training YAML, its lerobot-train argument list, the checks made before a trainer
starts, the trainer's command line, the reading of its events and the stop guard (no trainer launched here)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import types
from pathlib import Path

import pytest
import yaml

from dp_ros.robot_interface import save_robot_interface
from dp_ros.training.accelerate_launch import ENTRY_MODULE, accelerate_arguments, machine_rank, trainer_command
from dp_ros.training.config_loading import load_training_config
from dp_ros.training.configuration_training import (
    FINETUNE_POLICY_OPTIONS,
    POLICY_OPTIONS,
    RECIPE,
    TrainingConfig,
    TrainingConfigError,
)
from dp_ros.training.lerobot_entry import EVENT_PREFIX, CheckpointGuard, StepReporter, install_hooks
from dp_ros.training.preflight import FeatureMismatchError, PreflightError, run_preflight
from dp_ros.training.progress import ProgressTracker, StepLines, TrainingProgress, parse_event
from lerobot_fixtures import make_checkpoint, make_dataset, tiny_robot

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds") / "tiny", tiny_robot(size=32), episodes=2, frames=12)


def args_of(config: TrainingConfig, **kwargs) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in config.lerobot_arguments(**kwargs))


# --- the YAML ---------------------------------------------------------------------
def test_shipped_yaml_holds_every_option_with_the_defaults():
    text = (REPO / "config" / "train.yaml").read_text()
    config = load_training_config(REPO / "config" / "train.yaml")
    assert config.to_dict() == TrainingConfig().to_dict()
    section = yaml.safe_load(text)["train"]
    for sub in ("dataset", "policy", "ema", "wandb", "accelerate"):
        fields = {f.name for f in dataclasses.fields(type(getattr(config, sub)))}
        assert set(section[sub]) == fields, f"config/train.yaml {sub}: section differs from the dataclass"
    top = {f.name for f in dataclasses.fields(TrainingConfig)} - {"given"}
    assert set(section) == top


def test_policy_defaults_are_lerobots_but_for_the_recipe_that_works_offline():
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    lerobot = DiffusionConfig()
    p = TrainingConfig().policy
    for name in POLICY_OPTIONS:
        ours = getattr(p, name)
        if name not in RECIPE:
            theirs = getattr(lerobot, name)
            assert ours == (list(theirs) if isinstance(theirs, tuple) else theirs), name
    assert (p.horizon, p.n_action_steps, p.n_obs_steps) == (16, 8, 2)
    assert p.pretrained_backbone_weights is None and p.use_group_norm is True
    assert (p.num_train_timesteps, p.beta_schedule, p.prediction_type) == (100, "squaredcos_cap_v2", "epsilon")
    assert p.optimizer_lr == 1e-4 and p.scheduler_warmup_steps == 500


def test_fresh_run_arguments_in_lerobot_syntax(tmp_path):
    config = load_training_config(None, {"dataset.root": str(tmp_path / "data"), "output_dir": str(tmp_path / "run"),
                                         "policy.down_dims": [32, 64, 128], "policy.crop_shape": None,
                                         "wandb.enable": True, "wandb.mode": "offline"})
    args = args_of(config, device="cpu")
    assert args["policy.type"] == "diffusion" and "policy.path" not in args
    assert args["policy.down_dims"] == "[32,64,128]"
    assert args["policy.crop_shape"] == "null"
    assert args["policy.use_group_norm"] == "true" and args["policy.push_to_hub"] == "false"
    assert args["policy.pretrained_backbone_weights"] == "null"
    assert args["policy.optimizer_betas"] == "[0.95,0.999]"
    assert args["policy.device"] == "cpu"
    assert args["dataset.root"] == str(tmp_path / "data") and args["output_dir"] == str(tmp_path / "run")
    assert args["wandb.enable"] == "true" and args["wandb.mode"] == "offline"
    assert all(a.startswith("--") and "=" in a for a in config.lerobot_arguments(device="cpu"))


def test_unknown_options_pass_through_unchanged_and_extras_win(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"train": {
        "policy": {"drop_n_last_frames": 5, "horizon": 32},
        "eval_steps": 0,
        "extra": {"policy.use_separate_rgb_encoder_per_camera": False, "log_freq": 7},
    }}))
    config = load_training_config(path)
    args = args_of(config, device="cpu")
    assert args["policy.drop_n_last_frames"] == "5"
    assert args["eval_steps"] == "0"
    assert args["policy.use_separate_rgb_encoder_per_camera"] == "false"
    assert args["log_freq"] == "7"  # the extra option wins over the known one
    assert args["policy.horizon"] == "32"


def test_overrides_as_text_are_yaml_values():
    config = load_training_config(None, ["steps=500", "policy.down_dims=[64, 128, 256]", "policy.optimizer_lr=3e-5",
                                         "dataset.episodes=[0, 2]", "seed=null"])
    assert config.steps == 500 and config.policy.down_dims == [64, 128, 256]
    assert config.policy.optimizer_lr == pytest.approx(3e-5) and config.dataset.episodes == [0, 2]
    assert config.seed is None
    with pytest.raises(TrainingConfigError, match="name=value"):
        load_training_config(None, ["steps"])


@pytest.mark.parametrize("override, message", [
    ({"policy.horizon": 20}, "LeRobot refuses it: The horizon should be an integer multiple of the downsampling"),
    ({"policy.prediction_type": "velocity"}, "LeRobot refuses it: `prediction_type` must be one of"),
    ({"policy.crop_shape": [84]}, "policy.crop_shape: expected 2 values"),
    ({"policy.down_dims": [64, "wide"]}, r"policy.down_dims\[1\]: expected a whole number"),
    ({"policy.n_action_steps": 16}, "n_action_steps: 16 must be between 1 and"),
    ({"policy.device": "gpu"}, "policy.device: 'gpu'"),
    ({"steps": "many"}, "steps: expected a whole number"),
    ({"policy.use_group_norm": "yes"}, "use_group_norm: expected true or false"),
    ({"batch_size": 0}, "batch_size: must be at least 1"),
    ({"wandb.mode": "cloud"}, "wandb.mode"),
    ({"policy": [1, 2]}, "policy: expected a mapping"),
    ({"policy.pretrained_path": "/nonexistent/ckpt"}, "does not exist"),
])
def test_invalid_options_are_named(override, message):
    with pytest.raises(TrainingConfigError, match=message):
        load_training_config(None, override)


def test_bad_yaml_files_are_explained(tmp_path):
    with pytest.raises(TrainingConfigError, match="does not exist"):
        load_training_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(TrainingConfigError, match="not valid YAML"):
        load_training_config(bad)


def test_finetune_arguments_keep_the_checkpoint_architecture(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "ckpt", tiny_robot(size=32))
    config = load_training_config(None, {"policy.pretrained_path": str(checkpoint), "policy.optimizer_lr": 3e-5})
    args = args_of(config, device="cpu", pretrained_model_dir=checkpoint)
    assert args["policy.path"] == str(checkpoint) and "policy.type" not in args
    assert args["policy.optimizer_lr"] == "3e-05"
    passed = {k.split(".", 1)[1] for k in args if k.startswith("policy.")} - {"path", "push_to_hub"}
    assert passed == set(FINETUNE_POLICY_OPTIONS)


def test_resume_arguments_apply_only_given_options(tmp_path):
    config = load_training_config(None, {"output_dir": str(tmp_path / "run"), "resume": True, "steps": 900})
    args = args_of(config, device="cpu")
    assert args["config_path"] == str(tmp_path / "run/checkpoints/last/pretrained_model/train_config.json")
    assert args["resume"] == "true" and args["steps"] == "900"
    assert "batch_size" not in args and "dataset.repo_id" not in args and "policy.type" not in args
    assert "wandb.enable" not in args and args["output_dir"] == str(tmp_path / "run")


# --- checks before training ------------------------------------------------------------
def test_preflight_accepts_a_matching_fresh_run(tmp_path, dataset):
    config = load_training_config(None, {"dataset.root": str(dataset), "output_dir": str(tmp_path / "run"),
                                         "policy.crop_shape": [28, 28]})
    report = run_preflight(config)
    assert report.dataset_root == dataset and report.resume_step == 0 and report.total_steps == config.steps


def test_preflight_rejects_a_missing_dataset(tmp_path):
    config = load_training_config(None, {"dataset.root": str(tmp_path / "nothing"), "output_dir": str(tmp_path / "o")})
    with pytest.raises(PreflightError, match="no LeRobot dataset at .*meta/info.json is missing"):
        run_preflight(config)


def test_preflight_rejects_a_crop_larger_than_the_images(tmp_path, dataset):
    config = load_training_config(None, {"dataset.root": str(dataset), "output_dir": str(tmp_path / "run")})
    with pytest.raises(PreflightError, match=r"crop_shape \[84, 84\] does not fit the images .*32x32"):
        run_preflight(config)


def test_preflight_rejects_a_checkpoint_of_another_robot(tmp_path, dataset):
    other = make_checkpoint(tmp_path / "ckpt", tiny_robot(joints=("a", "b", "c", "d"), size=32))
    config = load_training_config(None, {"dataset.root": str(dataset), "output_dir": str(tmp_path / "run"),
                                         "policy.pretrained_path": str(other)})
    with pytest.raises(FeatureMismatchError) as err:
        run_preflight(config)
    text = str(err.value)
    assert "observation.state: shape [4] in the checkpoint" in text and "[3] in the dataset" in text
    assert "action: shape [4]" in text
    assert not (tmp_path / "run").exists()


def test_preflight_rejects_a_checkpoint_with_other_cameras(tmp_path, dataset):
    other = make_checkpoint(tmp_path / "ckpt", tiny_robot(cameras=("wrist",), size=32))
    config = load_training_config(None, {"dataset.root": str(dataset), "output_dir": str(tmp_path / "run"),
                                         "policy.pretrained_path": str(other)})
    with pytest.raises(FeatureMismatchError, match="observation.images.wrist: the checkpoint needs it"):
        run_preflight(config)


def test_preflight_notes_architecture_options_it_cannot_apply(tmp_path, dataset):
    checkpoint = make_checkpoint(tmp_path / "ckpt", tiny_robot(size=32))
    config = load_training_config(None, {"dataset.root": str(dataset), "output_dir": str(tmp_path / "run"),
                                         "policy.pretrained_path": str(tmp_path / "ckpt"),
                                         "policy.down_dims": [64, 128, 256]})
    report = run_preflight(config)
    assert report.pretrained_model_dir == checkpoint.resolve()
    assert any("policy.down_dims: the checkpoint's [32, 64, 128] is kept" in n for n in report.notes)


def test_preflight_checks_the_dataset_against_the_robot_interface(tmp_path, dataset):
    robot_yaml = save_robot_interface(tiny_robot(joints=("x", "y", "z"), size=32), tmp_path / "robot.yaml")
    config = load_training_config(None, {"dataset.root": str(dataset), "output_dir": str(tmp_path / "run"),
                                         "policy.crop_shape": [28, 28], "robot_config": str(robot_yaml)})
    with pytest.raises(FeatureMismatchError, match=r"action joints \['j1', 'j2', 'j3'\] in the dataset, "
                                                    r"\['x', 'y', 'z'\] in the robot interface"):
        run_preflight(config)


def test_preflight_guards_the_output_folder(tmp_path, dataset):
    base = {"dataset.root": str(dataset), "policy.crop_shape": [28, 28]}
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    with pytest.raises(PreflightError, match="already holds a training run; set resume: true"):
        run_preflight(load_training_config(None, {**base, "output_dir": str(run_dir)}))
    with pytest.raises(PreflightError, match="nothing to resume"):
        run_preflight(load_training_config(None, {**base, "output_dir": str(run_dir), "resume": True}))
    (tmp_path / "empty").mkdir()
    run_preflight(load_training_config(None, {**base, "output_dir": str(tmp_path / "empty")}))
    with pytest.raises(PreflightError, match="episodes: \\[5\\] do not exist"):
        run_preflight(load_training_config(None, {**base, "output_dir": str(tmp_path / "o"),
                                                  "dataset.episodes": [0, 5]}))


# --- the trainer's events ------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def event_line(event: str, **fields) -> str:
    return EVENT_PREFIX + json.dumps({"event": event, **fields})


def test_events_are_read_and_other_lines_ignored():
    assert parse_event(event_line("step", step=3, loss=0.5)) == {"event": "step", "step": 3, "loss": 0.5}
    assert parse_event("INFO 2026-11-25 18:47:50 ot_train.py:641 step:2 loss:1.205") is None
    assert parse_event(EVENT_PREFIX + "{not json") is None
    assert parse_event("Training:  33%|███▎      | 2/6 [00:01<00:02,  1.64step/s]" + event_line("step", step=2)) is None


def test_tracker_follows_a_run_with_its_eta_from_the_step_rate():
    clock = FakeClock()
    tracker = ProgressTracker(total_steps=10, clock=clock)
    assert tracker.progress.state == "starting" and math.isnan(tracker.progress.loss)
    tracker.feed(parse_event(event_line("started", rank=0, world_size=1, pid=42)))
    assert tracker.progress.state == "starting" and tracker.ranks.pid(0) == 42
    tracker.feed({"event": "step", "step": 1, "loss": 1.2, "lr": 1e-5, "grad_norm": 7.5, "samples_per_second": 8.0})
    p = tracker.progress
    assert (p.state, p.step, p.loss, p.learning_rate, p.grad_norm, p.samples_per_second) == \
        ("training", 1, 1.2, 1e-5, 7.5, 8.0)
    assert math.isnan(p.eta_seconds)  # no rate from a single step
    clock.now += 2.0
    tracker.feed({"event": "step", "step": 5, "loss": 1.0, "lr": 2e-5, "grad_norm": 7.0, "samples_per_second": None})
    assert tracker.progress.eta_seconds == pytest.approx(5 / 2.0)  # 4 steps in 2 s, 5 to go
    assert math.isnan(tracker.progress.samples_per_second)
    assert tracker.feed({"event": "checkpoint", "step": 5, "path": "/runs/a/checkpoints/000005/pretrained_model"})
    assert tracker.progress.checkpoint_step == 5 and tracker.progress.checkpoint_path.endswith("000005/pretrained_model")
    tracker.feed({"event": "step", "step": 10, "loss": 0.9, "lr": 1e-5, "grad_norm": 6.0, "samples_per_second": 9.0})
    assert tracker.progress.eta_seconds == 0.0
    assert tracker.finish("finished", "done").state == "finished"


def test_tracker_counts_from_the_resumed_step():
    tracker = ProgressTracker(total_steps=10, initial_step=6)
    assert tracker.progress.step == 6 and tracker.progress.total_steps == 10


def test_a_failure_names_the_rank():
    tracker = ProgressTracker(total_steps=4)
    for rank, pid in ((0, 10), (1, 11)):
        tracker.feed({"event": "started", "rank": rank, "world_size": 2, "pid": pid})
    ranks = tracker.ranks
    assert sorted(ranks.running_pids()) == [10, 11]
    tracker.feed({"event": "ended", "rank": 1, "state": "failed", "error": "ValueError: bad frame"})
    tracker.feed({"event": "ended", "rank": 0, "state": "stopped", "error": ""})
    assert ranks.failure() == "rank 1 of 2 failed: ValueError: bad frame" and ranks.any_stopped()

    killed = ProgressTracker(total_steps=4)
    for rank, pid in ((0, 10), (1, 11)):
        killed.feed({"event": "started", "rank": rank, "world_size": 2, "pid": pid})
    killed.feed({"event": "ended", "rank": 0, "state": "failed", "error": "RuntimeError: Connection closed by peer"})
    assert killed.ranks.failure().startswith("rank 1 of 2 (pid 11) ended without reporting why")
    assert killed.ranks.failure().endswith("; rank 0 of 2 failed: RuntimeError: Connection closed by peer")


def test_step_lines_are_spaced_and_the_last_step_always_written():
    clock = FakeClock()
    lines = StepLines(interval=10.0, clock=clock)
    progress = TrainingProgress(state="training", step=1, total_steps=20)
    assert lines.due(progress) and not lines.due(progress)
    clock.now += 5
    assert not lines.due(dataclasses.replace(progress, step=2))
    clock.now += 5
    assert lines.due(dataclasses.replace(progress, step=3))
    assert lines.due(dataclasses.replace(progress, step=20))  # the end, however soon
    assert not lines.due(dataclasses.replace(progress, state="finished", step=20))


# --- the entry point's reports and stop guard -----------------------------------------
def test_step_reporter_averages_the_loss_and_counts_samples_of_all_ranks(capfd):
    clock = FakeClock()
    reporter = StepReporter(world_size=2, enabled=True, period=1.0, clock=clock)
    reporter.on_step(1, loss=2.0, lr=1e-4, grad_norm=3.0, batch_size=8)  # first step: reported at once
    clock.now += 0.5
    reporter.on_step(2, loss=1.0, lr=2e-4, grad_norm=2.0, batch_size=8)
    clock.now += 0.5
    reporter.on_step(3, loss=3.0, lr=3e-4, grad_norm=1.0, batch_size=8)
    clock.now += 0.2
    reporter.on_step(4, loss=float("nan"), lr=4e-4, grad_norm=1.0, batch_size=8)
    reporter.flush()
    events = [parse_event(line) for line in capfd.readouterr().out.splitlines()]
    assert [e["step"] for e in events] == [1, 3, 4]
    assert events[1]["loss"] == pytest.approx(2.0) and events[1]["lr"] == 3e-4
    assert events[1]["samples_per_second"] == pytest.approx(2 * 8 * 2 / 1.0)
    assert events[2]["loss"] is None  # NaN is reported as null, never as invalid JSON
    StepReporter(world_size=2, enabled=False).on_step(1, 1.0, 1e-4, 1.0, 8)
    assert capfd.readouterr().out == ""


def test_a_stop_waits_for_the_checkpoint_being_written(tmp_path, capfd):
    events = []
    trainer = types.SimpleNamespace(
        update_policy=lambda metrics, policy, batch, *a, **k: events.append("update"),
        save_checkpoint=lambda **kwargs: (guard.on_signal(signal.SIGINT, None), events.append("saved")),
        update_last_checkpoint=lambda checkpoint_dir: events.append("linked"))
    guard = CheckpointGuard()
    install_hooks(trainer, guard, StepReporter(world_size=1, enabled=True))
    trainer.save_checkpoint(checkpoint_dir=tmp_path / "000004")  # the stop request arrives mid-save
    assert events == ["saved"]
    with pytest.raises(KeyboardInterrupt):
        trainer.update_last_checkpoint(tmp_path / "000004")
    assert events == ["saved", "linked"]
    checkpoint = parse_event(capfd.readouterr().out.strip())
    assert checkpoint == {"event": "checkpoint", "step": 4, "path": str(tmp_path / "000004" / "pretrained_model")}
    with pytest.raises(KeyboardInterrupt):  # outside a checkpoint a stop is immediate
        guard.on_signal(signal.SIGINT, None)


# --- the trainer's command line ---------------------------------------------------------
def test_one_process_runs_the_entry_directly_and_several_through_accelerate(tmp_path):
    base = {"output_dir": str(tmp_path / "run")}
    single = trainer_command(load_training_config(None, base), "py", "cpu", None)
    assert single[:3] == ["py", "-m", ENTRY_MODULE] and "accelerate" not in " ".join(single)

    config = load_training_config(None, {**base, "accelerate.num_processes": 2})
    command = trainer_command(config, "py", "cpu", None)
    entry = command.index(ENTRY_MODULE)
    launch = command[3:entry - 1]
    assert command[:3] == ["py", "-m", "accelerate.commands.launch"] and command[entry - 1] == "-m"
    assert launch[:3] == ["--multi_gpu", "--num_processes", "2"]
    assert dict(zip(launch[3::2], launch[4::2])) == {
        "--num_machines": "1", "--mixed_precision": "no", "--dynamo_backend": "no",
        "--num_cpu_threads_per_process": str(max(1, (os.cpu_count() or 1) // 2))}
    assert command[entry + 1:] == config.lerobot_arguments("cpu")


def test_accelerate_options_pass_through_and_a_config_file_decides(tmp_path):
    config = load_training_config(None, {"accelerate.num_processes": 16, "accelerate.launch_args": [
        "--num_machines=2", "--machine_rank=1", "--main_process_ip=10.0.0.1", "--mixed_precision=bf16"]})
    launch = accelerate_arguments(config.accelerate, "cuda")
    assert launch == ["--multi_gpu", "--num_processes", "16", "--dynamo_backend", "no", "--num_machines=2",
                      "--machine_rank=1", "--main_process_ip=10.0.0.1", "--mixed_precision=bf16"]
    assert machine_rank(config.accelerate) == 1

    config_file = tmp_path / "accelerate.yaml"
    config_file.write_text("distributed_type: MULTI_GPU\nnum_machines: 2\nmachine_rank: 1\nnum_processes: 8\n")
    config = load_training_config(None, {"accelerate.config_file": str(config_file)})
    assert accelerate_arguments(config.accelerate, "cuda") == ["--config_file", str(config_file)]
    assert machine_rank(config.accelerate) == 1
    with pytest.raises(TrainingConfigError, match="--machine_rank must be a whole number"):
        machine_rank(load_training_config(None, {"accelerate.launch_args": ["--machine_rank", "x"]}).accelerate)


@pytest.mark.parametrize("override, message", [
    ({"accelerate.num_processes": 0}, "accelerate.num_processes: must be at least 1"),
    ({"accelerate.num_processes": 2, "policy.device": "cuda:1"}, "with 2 processes: use auto, cpu or cuda"),
    ({"accelerate.launch_args": "--machine_rank=1"}, "accelerate.launch_args: expected a list"),
])
def test_invalid_process_options_are_named(override, message):
    with pytest.raises(TrainingConfigError, match=message):
        load_training_config(None, override)


def test_preflight_explains_the_effective_batch_and_leaves_output_dir_to_the_main_machine(tmp_path, dataset):
    base = {"dataset.root": str(dataset), "policy.crop_shape": [28, 28], "batch_size": 8}
    report = run_preflight(load_training_config(None, {**base, "output_dir": str(tmp_path / "a"),
                                                       "accelerate.num_processes": 2}))
    assert any(n.startswith("2 training processes: each takes 8 samples per step") for n in report.notes)
    run_dir = tmp_path / "shared"
    (run_dir / "checkpoints").mkdir(parents=True)  # machine 0 has started the run already
    other = load_training_config(None, {**base, "output_dir": str(run_dir), "accelerate.num_processes": 2,
                                        "accelerate.launch_args": ["--num_machines=2", "--machine_rank=1"]})
    report = run_preflight(other)
    assert not report.owns_output_dir and any("this is machine 1" in n for n in report.notes)
