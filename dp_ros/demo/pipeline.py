"""The end-to-end demo, stage by stage, over real ROS topics and services.

1. record: the simulator and its scripted expert run in one process, the
   recorder node in another; this process resets the task, starts an episode,
   waits for the expert's success and saves it (or discards a failure).
2. train: LeRobot's trainer, through dp_ros's training launcher, on that dataset.
3. evaluate (dp_ros.demo.evaluation): the simulator (without the expert) and the
   policy node run as processes; each episode resets the task and the policy,
   starts the policy and waits for success, a collision or the time limit.
Stages whose outputs exist are reused unless asked to redo them.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dp_ros.core.checkpoint_sampler import DEFAULT_CHOICE
from dp_ros.demo.client import RECORDER, SIM_RESET, DemoClient, ServiceRefused
from dp_ros.demo.processes import ProcessGroup
from dp_ros.node_params.policy import POLICY as POLICY_PARAMETERS
from dp_ros.robot_interface import RobotInterface

TASK_DESCRIPTION = "reach the red target, going around the blue pillar"


@dataclass
class DemoSettings:
    """Everything the demo can be told (the options of `dp-ros demo`)."""

    output: Path = Path("outputs/demo")
    """Folder of the dataset, training run, logs and report."""
    robot_config: str = ""
    """Robot interface YAML; empty = dp_ros's config/robot.yaml (the simulated arm)."""
    episodes: int = 60
    """Demonstrations to record."""
    eval_episodes: int = 20
    """Closed-loop episodes of the trained policy."""
    train_steps: int = 1500
    """Optimisation steps of the training."""
    batch_size: int = 32
    """Samples per optimisation step."""
    down_dims: tuple[int, ...] = (64, 128, 256)
    """U-Net channels per stage (small enough for a CPU)."""
    backbone_size: int = 64
    """The policy resizes camera frames to this size for its ResNet (then crops 7/8 of it): the
    encoder is most of a training step's cost on a CPU."""
    learning_rate: float = 3e-4
    """AdamW learning rate."""
    warmup_steps: int = 200
    """Learning-rate warm-up steps."""
    ema: bool = False
    """Keep an exponential moving average of the weights and deploy it (``dp-ros train``'s ema.*). Off in the demo:
    the configuration measured at 90-100% closed-loop success trained without it, and in 500-step runs the average
    was no better than the raw weights (README, quality per minute of training)."""
    processes: int = 1
    """Training processes (accelerate); each takes batch_size / processes samples per step."""
    cpu_threads: int | None = None
    """Threads per training process on a CPU; None = torch's default (all cores). On the quiet 2-core
    machine two threads trained 1.2x faster than one; on one busy with other work, one thread was
    faster (benchmarks/bench_demo_training.py)."""
    sampler: str = DEFAULT_CHOICE.text
    """Sampler and steps of the policy node in closed loop (sampler:steps; default: the node's own default)."""
    seed: int = 1
    """Seed of the recorded task instances and of the training; evaluation uses other seeds."""
    redo: tuple[str, ...] = ()
    """Stages to redo even when their outputs exist: record, train, evaluate."""
    device: str = POLICY_PARAMETERS["device"].default
    """Training and inference device: auto (CUDA when available, else CPU), cpu or cuda."""
    distill_steps: int = 0
    """Distil the trained policy into a consistency student (``dp-ros distill``) with this many steps and close
    the loop with the student and its own sampler; 0 (the default): the teacher. Off by default: on this task
    a student that keeps the teacher's success costs 23% of the teacher's training compute and misses the
    issue's speed goals on a 2-core CPU (README, "Which sampler to use")."""
    policy_params: tuple[str, ...] = ()
    """policy_node parameters for the closed loop over the node's defaults, as name=value (none: the
    closed loop measures what a user gets)."""

    @property
    def dataset(self) -> Path:
        return self.output / "dataset"

    @property
    def train_dir(self) -> Path:
        return self.output / "train"

    @property
    def checkpoint(self) -> Path:
        return self.train_dir / "checkpoints" / "last" / "pretrained_model"

    @property
    def distill_dir(self) -> Path:
        return self.output / "distill"

    @property
    def student(self) -> Path:
        return self.distill_dir / "checkpoints" / "last" / "pretrained_model"

    @property
    def logs(self) -> Path:
        return self.output / "logs"


@dataclass
class RecordingResult:
    episodes: int
    """Episodes in the dataset, as the recorder counts them: a demonstration split where frames dropped
    is saved as several episodes."""
    attempts: int
    solutions: list[str] = field(default_factory=list)
    """The expert's side in each kept demonstration."""
    seconds: float = 0.0
    reused: bool = False
    splits: int = 0
    """Times a demonstration was split at unusable frames (RecorderStatus.splits, summed)."""


Progress = Callable[[str], None]


def dataset_episodes(root: Path) -> int:
    info = root / "meta" / "info.json"
    if not info.is_file():
        return 0
    return int(json.loads(info.read_text()).get("total_episodes", 0))


def robot_args(settings: DemoSettings) -> list[str]:
    return ["--robot-config", settings.robot_config] if settings.robot_config else []


def wait_episode_end(client: DemoClient, episode: int, slack: float, check) -> object:
    """Wait until the task episode ``episode`` succeeds, collides or runs out of time; returns its last status."""
    def ended() -> bool:
        status = client.task_status
        return status is not None and status.episode == episode and (
            status.success or status.collided or status.episode_time > status.time_limit)

    status = client.task_status
    client.wait_for(ended, timeout=(status.time_limit if status else 10.0) + slack,
                    what=f"the end of task episode {episode}", check=check)
    return client.task_status


def reset_task(client: DemoClient, check) -> int:
    before = client.task_status.episode if client.task_status else 0
    client.call(SIM_RESET)
    client.wait_for(lambda: client.task_status is not None and client.task_status.episode > before
                    and client.task_status.episode_time < 0.5, 10.0, "the task to reset", check=check)
    return client.task_status.episode


# --- 1. record ---------------------------------------------------------------------------------
def record(settings: DemoSettings, robot: RobotInterface, bar_factory) -> RecordingResult:
    """Record demonstrations until the dataset holds ``settings.episodes`` episodes (the recorder's count)."""
    summary_path = settings.output / "recording.json"
    if "record" in settings.redo and settings.dataset.exists():
        shutil.rmtree(settings.dataset)
        summary_path.unlink(missing_ok=True)
    existing = dataset_episodes(settings.dataset)
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if existing >= settings.episodes and previous:
        return RecordingResult(existing, previous.get("attempts", existing), previous.get("solutions", []),
                               previous.get("seconds", 0.0), reused=True, splits=previous.get("splits", 0))
    started = time.monotonic()
    solutions: list[str] = list(previous.get("solutions", []))
    attempts = int(previous.get("attempts", existing))
    splits = int(previous.get("splits", 0))
    with ProcessGroup(settings.logs) as processes:
        processes.start("record_sim", ["sim", "--expert", "--seed", str(settings.seed), *robot_args(settings)])
        processes.start("recorder", ["record", "--root", str(settings.dataset), "--task", TASK_DESCRIPTION,
                                     "--repo-id", "local/dp_ros_demo", "--no-keyboard",
                                     "--max-episode-seconds", "30", *robot_args(settings)])
        client = DemoClient(robot)
        try:
            client.wait_for(lambda: client.task_status is not None and client.recorder_status is not None, 180,
                            "the simulator and the recorder to start", check=processes.check_alive)
            episodes = existing
            with bar_factory(total=settings.episodes, initial=episodes, desc="1/3 recording", unit="episode") as bar:
                while episodes < settings.episodes:
                    attempts += 1
                    episode = reset_task(client, processes.check_alive)
                    _call_when_ready(client, f"{RECORDER}/start_episode", processes.check_alive)
                    status = wait_episode_end(client, episode, 5.0, processes.check_alive)
                    if status.success:
                        time.sleep(0.6)  # a few frames holding at the target end the demonstration
                        recorder = _stop_recording(client, processes.check_alive)
                        episodes = int(recorder.episode_index)  # saved and being saved
                        if episodes > bar.n:
                            solutions.append(status.solution)
                            splits += int(recorder.splits)
                            bar.update(episodes - bar.n)
                        bar.set_postfix(left=solutions.count("left"), right=solutions.count("right"),
                                        failed=attempts - len(solutions), splits=splits)
                    else:
                        client.call(f"{RECORDER}/discard_episode", timeout=60)
                episodes = int(_wait_recorder_idle(client, processes.check_alive).episodes_saved)
        finally:
            client.close()
    seconds = time.monotonic() - started + float(previous.get("seconds", 0.0))
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps({"episodes": episodes, "attempts": attempts, "solutions": solutions,
                                        "splits": splits, "seconds": seconds}, indent=2))
    return RecordingResult(episodes, attempts, solutions, seconds, splits=splits)


def _stop_recording(client: DemoClient, check):
    """Stop the recording and return the recorder's first status after it (episode_index: the dataset's
    episodes once the queued saves are written; splits: parts this recording was cut into, minus one)."""
    stopped = time.monotonic()
    try:
        client.call(f"{RECORDER}/stop_episode", timeout=120)
    except ServiceRefused:
        pass  # nothing usable was recorded: an attempt that failed
    client.wait_for(lambda: client.recorder_status_time > stopped, 10.0, "the recorder's status", check=check)
    return client.recorder_status


def _call_when_ready(client: DemoClient, service: str, check, timeout: float = 120.0) -> None:
    """Call a recorder service, retrying while the recorder is still saving the previous episode."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.call(service)
            return
        except ServiceRefused:
            if time.monotonic() > deadline:
                raise
            check()
            time.sleep(0.1)


def _wait_recorder_idle(client: DemoClient, check):
    """Wait until the recorder has written every queued episode; returns its status then."""
    from dp_ros_msgs.msg import RecorderStatus

    asked = time.monotonic()
    client.wait_for(lambda: client.recorder_status_time > asked
                    and client.recorder_status.state == RecorderStatus.STATE_IDLE, 300,
                    "the recorder to finish saving", check=check)
    return client.recorder_status


# --- 2. train ----------------------------------------------------------------------------------
def training_overrides(settings: DemoSettings, robot_config: str) -> dict:
    """The CPU-sized training configuration of the demo, as dotted training-config overrides."""
    return {
        "dataset.root": str(settings.dataset.resolve()),
        "dataset.repo_id": "local/dp_ros_demo",
        "output_dir": str(settings.train_dir.resolve()),
        "job_name": "dp_ros_demo",
        "steps": settings.train_steps,
        "batch_size": settings.batch_size // settings.processes,
        "accelerate.num_processes": settings.processes,
        "cpu_threads": settings.cpu_threads,
        "num_workers": 1,
        "save_freq": max(1, settings.train_steps // 2),
        "log_freq": max(1, min(50, settings.train_steps // 10)),
        "seed": settings.seed,
        "robot_config": robot_config,
        "policy.device": settings.device,
        "policy.down_dims": list(settings.down_dims),
        "policy.horizon": 16,
        "policy.n_action_steps": 8,
        "policy.n_obs_steps": 2,
        "policy.optimizer_lr": settings.learning_rate,
        "policy.scheduler_warmup_steps": settings.warmup_steps,
        "ema.enable": settings.ema,
        "policy.resize_shape": [settings.backbone_size, settings.backbone_size],
        "policy.crop_ratio": 0.875,
    }


def train(settings: DemoSettings, robot_config: str, bar_factory) -> tuple[Path, float, bool]:
    """Train (or reuse) the demo's policy; returns the checkpoint, the training's seconds and whether it was reused."""
    from dp_ros.training.launcher import run_training

    summary = settings.train_dir / "dp_ros_demo_training.json"
    if "train" in settings.redo and settings.train_dir.exists():
        shutil.rmtree(settings.train_dir)
    if (settings.checkpoint / "model.safetensors").is_file():
        seconds = json.loads(summary.read_text()).get("seconds", 0.0) if summary.is_file() else 0.0
        return settings.checkpoint, seconds, True
    started = time.monotonic()
    if settings.train_dir.exists():
        shutil.rmtree(settings.train_dir)  # an unfinished earlier run: start over
    with bar_factory(total=settings.train_steps, desc="2/3 training", unit="step") as bar:
        def on_progress(progress) -> None:
            if progress.step > bar.n:
                bar.update(progress.step - bar.n)
            if progress.loss == progress.loss:  # not NaN
                bar.set_postfix(loss=f"{progress.loss:.4f}", lr=f"{progress.learning_rate:.1e}")

        checkpoint = run_training(_default_train_config(), overrides=training_overrides(settings, robot_config),
                                  on_progress=on_progress)
    seconds = time.monotonic() - started
    summary.write_text(json.dumps({"seconds": seconds, "steps": settings.train_steps,
                                   "batch_size": settings.batch_size}, indent=2))
    return Path(checkpoint), seconds, False


def distill(settings: DemoSettings, teacher: Path, bar_factory) -> tuple[Path, float, bool]:
    """Distil (or reuse) the demo's student of ``teacher``; returns it, the distillation's seconds and whether it
    was reused."""
    from dp_ros.training.launcher import run_training

    summary = settings.distill_dir / "dp_ros_demo_distillation.json"
    if "train" in settings.redo and settings.distill_dir.exists():
        shutil.rmtree(settings.distill_dir)
    if (settings.student / "model.safetensors").is_file() and summary.is_file():
        return settings.student, json.loads(summary.read_text()).get("seconds", 0.0), True
    if settings.distill_dir.exists():
        shutil.rmtree(settings.distill_dir)  # an unfinished earlier run: start over
    from dp_ros.training.configuration_distillation import RUN_DEFAULTS
    from dp_ros.training.distillation_launcher import make_launcher

    overrides = {**RUN_DEFAULTS, "dataset.root": str(settings.dataset.resolve()), "dataset.repo_id": "local/dp_ros_demo",
                 "output_dir": str(settings.distill_dir.resolve()), "job_name": "dp_ros_demo_distill",
                 "steps": settings.distill_steps, "save_freq": settings.distill_steps,
                 "log_freq": max(1, min(50, settings.distill_steps // 10)), "cpu_threads": settings.cpu_threads,
                 "num_workers": 1, "seed": settings.seed, "policy.device": settings.device,
                 "distillation.teacher": str(teacher.resolve())}
    started = time.monotonic()
    with bar_factory(total=settings.distill_steps, desc="2/3 distillation", unit="step") as bar:
        def on_progress(progress) -> None:
            if progress.step > bar.n:
                bar.update(progress.step - bar.n)

        student = run_training(_default_train_config(), overrides=overrides, on_progress=on_progress,
                               launcher_for=make_launcher)
    seconds = time.monotonic() - started
    summary.write_text(json.dumps({"seconds": seconds, "steps": settings.distill_steps}, indent=2))
    return Path(student), seconds, False


def _default_train_config() -> str:
    from dp_ros.robot_interface import default_robot_config_path

    return str(default_robot_config_path().parent / "train.yaml")
