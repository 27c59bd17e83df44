"""A distillation run managed like a training run (progress, clean stop, resume, exit states).

``make_launcher(config)`` is what ``dp-ros train``, ``dp-ros distill`` and
train_node use: a ``TrainingLauncher`` for plain training, a
``DistillationLauncher`` when the config has a ``distillation:`` section (or
resumes a distillation run). The latter runs ``distillation_entry`` instead of
``lerobot_entry``; everything else is the training launcher's.
"""
from __future__ import annotations

from dp_ros.training.accelerate_launch import ENTRY_MODULE as TRAIN_ENTRY_MODULE
from dp_ros.training.configuration_distillation import (
    ARGUMENT,
    ENTRY_MODULE,
    DistillationSettings,
    distillation_settings,
    student_training_config,
)
from dp_ros.training.configuration_training import TrainingConfig, TrainingConfigError
from dp_ros.training.launcher import TrainingLauncher


class DistillationLauncher(TrainingLauncher):
    """Start, watch and stop one consistency distillation (see ``configuration_distillation``)."""

    def __init__(self, config: TrainingConfig, settings: DistillationSettings, **kwargs) -> None:
        super().__init__(student_training_config(config, settings), **kwargs)
        self.settings = settings

    def lerobot_command(self) -> list[str]:
        command = super().lerobot_command()
        where = command.index(TRAIN_ENTRY_MODULE)
        return command[:where] + [ENTRY_MODULE, ARGUMENT + self.settings.to_json()] + command[where + 1:]

    def start(self):
        if not self.settings.resume:
            check_teacher(self.settings)
        return super().start()


def check_teacher(settings: DistillationSettings) -> None:
    """The teacher must be a Diffusion Policy checkpoint whose schedule the solver grid divides."""
    import json

    from dp_ros.core.policy_runtime import CheckpointError, resolve_checkpoint

    try:
        folder = resolve_checkpoint(settings.teacher)
    except CheckpointError as exc:
        raise TrainingConfigError(f"distillation.teacher: {exc}") from None
    config = json.loads((folder / "config.json").read_text())
    if config.get("type") != "diffusion":
        raise TrainingConfigError(f"distillation.teacher: {folder} holds a {config.get('type')!r} policy, not a "
                                  "Diffusion Policy")
    timesteps = int(config.get("num_train_timesteps", 100))
    for name in ("solver_intervals", "teacher_steps"):
        value = getattr(settings.loss, name)
        if timesteps % value:
            raise TrainingConfigError(f"distillation.{name} ({value}) must divide the teacher's num_train_timesteps "
                                      f"({timesteps})")
    if config.get("prediction_type") not in ("epsilon", "sample"):
        raise TrainingConfigError(f"distillation.teacher: prediction_type {config.get('prediction_type')!r} is not "
                                  "epsilon or sample")


def make_launcher(config: TrainingConfig, **kwargs) -> TrainingLauncher:
    """The launcher for ``config``: a distillation's when it has distillation settings, else training's."""
    settings = distillation_settings(config)
    if settings is None:
        return TrainingLauncher(config, **kwargs)
    return DistillationLauncher(config, settings, **kwargs)
