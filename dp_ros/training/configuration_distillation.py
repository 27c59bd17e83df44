"""Consistency distillation as a training run: the ``distillation:`` options of a training YAML.

A distillation is a fine-tuning run of LeRobot's trainer (same dataset,
output folder, steps, batch size, device, checkpoints, resume, progress and
stop as ``dp-ros train``) whose policy starts from the teacher and whose loss
is the consistency-distillation loss (``dp_ros.training.distillation``)::

    train:
      dataset: {root: data/pick}
      output_dir: outputs/distill/pick
      steps: 3000
      distillation:
        teacher: outputs/train/pick      # the trained checkpoint to distil
        student_steps: 3                 # the sampler steps the student records

``dp-ros distill`` writes exactly this. A resumed run reads the settings it was
started with from ``<output_dir>/dp_ros_distillation.json``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from dp_ros.core.checkpoint_sampler import CONSISTENCY_STEPS
from dp_ros.core.consistency import MAX_STEPS
from dp_ros.training.configuration_training import TrainingConfig, TrainingConfigError
from dp_ros.training.distillation import LOSSES, TARGETS, DistillationLoss

SECTION = "distillation"
SETTINGS_FILE = "dp_ros_distillation.json"
ENTRY_MODULE = "dp_ros.training.distillation_entry"
ARGUMENT = "--dp_ros.distillation="

RUN_DEFAULTS = {"steps": 500, "batch_size": 32, "save_freq": 250, "log_freq": 50, "policy.scheduler_warmup_steps": 20}
"""Distillation's defaults where training's differ (a distillation is a short fine-tuning run). On the demo's
teacher (1500 training steps) 500 steps gave a 3-step student with the teacher's closed-loop success, for 23% of
the teacher's training compute (a distillation step costs 0.68x a training step: benchmarks/bench_train_step.py);
1000 steps were no better on the tuning instances (README, "Distillation, measured")."""


@dataclass
class DistillationSettings:
    """What to distil and how (the ``distillation:`` section)."""

    teacher: str = ""
    """The trained checkpoint to distil (pretrained_model/, a checkpoint or a training run's folder)."""
    student_steps: int = CONSISTENCY_STEPS
    """Consistency sampler steps the student records as its default (1-4; one step is the least reliable)."""
    loss: DistillationLoss = field(default_factory=DistillationLoss)
    """The distillation loss and its target (target, teacher_steps, train_encoder, solver_intervals, ema_decay,
    loss, huber_c)."""
    resume: bool = False
    """Set by dp_ros: the run continues; the target network is read from the last checkpoint."""
    output_dir: str = ""
    """Set by dp_ros: the run folder (where the settings and the target network are kept)."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict) -> "DistillationSettings":
        loss_names = {f.name for f in dataclasses.fields(DistillationLoss)}
        data = dict(data)
        loss = dict(data.pop("loss")) if isinstance(data.get("loss"), dict) else {}  # the saved form
        loss.update({k: v for k, v in data.items() if k in loss_names})
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)} - loss_names)
        if unknown:
            raise TrainingConfigError(f"{SECTION}: unknown options {unknown}; known: teacher, student_steps, "
                                      f"{', '.join(sorted(loss_names))}")
        values = {k: v for k, v in data.items() if k in ("teacher", "student_steps", "resume", "output_dir")}
        settings = cls(loss=DistillationLoss(**loss), **values)
        settings.check()
        return settings

    def check(self) -> None:
        problems = []
        if not self.teacher:
            problems.append(f"{SECTION}.teacher: the checkpoint to distil is required")
        if not 1 <= int(self.student_steps) <= MAX_STEPS:
            problems.append(f"{SECTION}.student_steps: must be 1 to {MAX_STEPS}, got {self.student_steps}")
        if self.loss.target not in TARGETS:
            problems.append(f"{SECTION}.target: {self.loss.target!r} is not one of {', '.join(TARGETS)}")
        if self.loss.teacher_steps < 1:
            problems.append(f"{SECTION}.teacher_steps: must be at least 1, got {self.loss.teacher_steps}")
        if self.loss.loss not in LOSSES:
            problems.append(f"{SECTION}.loss: {self.loss.loss!r} is not one of {', '.join(LOSSES)}")
        if not 0.0 <= self.loss.ema_decay < 1.0:
            problems.append(f"{SECTION}.ema_decay: must be in [0, 1), got {self.loss.ema_decay}")
        if self.loss.solver_intervals < 1:
            problems.append(f"{SECTION}.solver_intervals: must be at least 1, got {self.loss.solver_intervals}")
        if problems:
            raise TrainingConfigError("invalid distillation settings:\n  - " + "\n  - ".join(problems))


def distillation_settings(config: TrainingConfig) -> DistillationSettings | None:
    """The run's distillation settings: from the YAML's section, or (resuming) the run's saved ones; else None."""
    given = {k.split(".", 1)[1]: v for k, v in config.extra.items() if k.startswith(SECTION + ".")}
    saved = config.output_path / SETTINGS_FILE
    if config.resume and saved.is_file():
        data = json.loads(saved.read_text())
        data.update({k: v for k, v in given.items() if k != "teacher"})
        settings = DistillationSettings.from_dict(data)
        return dataclasses.replace(settings, resume=True, output_dir=str(config.output_path))
    if not given:
        return None
    if config.resume:
        raise TrainingConfigError(f"resume: {saved} is missing, so {config.output_path} is not a distillation run "
                                  "dp_ros can continue")
    settings = DistillationSettings.from_dict(given)
    return dataclasses.replace(settings, output_dir=str(config.output_path))


def student_training_config(config: TrainingConfig, settings: DistillationSettings) -> TrainingConfig:
    """The fine-tuning run LeRobot's trainer makes: from the teacher, the student's sampler recorded in config.json.

    The student is saved with LeRobot's DDIM and ``student_steps`` so that LeRobot's own ``select_action`` runs
    it sensibly too (DDIM's update is multistep consistency sampling without fresh noise); the crop is centred,
    so the student, its target and the teacher see the same image.
    """
    extra = {k: v for k, v in config.extra.items() if not k.startswith(SECTION + ".")}
    if settings.resume:
        return dataclasses.replace(config, extra=extra)
    teacher = str(Path(settings.teacher).expanduser().resolve())
    given_path = config.policy.pretrained_path
    if given_path and Path(given_path).expanduser().resolve() != Path(teacher):
        raise TrainingConfigError(f"policy.pretrained_path ({given_path}) and {SECTION}.teacher ({settings.teacher}) "
                                  "differ: a distillation starts from its teacher")
    policy = dataclasses.replace(config.policy, pretrained_path=teacher, noise_scheduler_type="DDIM",
                                 num_inference_steps=int(settings.student_steps), crop_is_random=False)
    return dataclasses.replace(config, policy=policy, extra=extra)
