"""The weight average inside LeRobot's training loop (``dp_ros.training.lerobot_entry`` installs it).

The launcher passes the average's settings as ``--dp_ros.ema.<name>=<value>``
arguments, which the entry takes out of the argument list before LeRobot's
parser sees it (:func:`take_ema_arguments`). How the run starts decides the rest:

- fresh or fine-tuning: the average starts from the policy's weights before the
  first step (random, or the checkpoint's);
- resume (``--resume=true --config_path=<checkpoint>/pretrained_model/train_config.json``):
  LeRobot loads the checkpoint's weights, which are the average; before the first
  step every rank puts the saved raw weights back into the policy and the main
  rank continues the average (its settings and count are the run's saved ones,
  whatever the arguments say). A checkpoint saved without an average resumes without one.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import yaml

from dp_ros.training.weight_average import EmaSettings, SavedAverage, WeightAverage, saved_average

ARGUMENT_PREFIX = "--dp_ros.ema."


def take_ema_arguments(argv: list[str]) -> tuple[list[str], EmaSettings | None]:
    """``argv`` without the ``--dp_ros.ema.*`` arguments, and the settings they give (None: none given)."""
    rest, values = [], {}
    for arg in argv:
        if arg.startswith(ARGUMENT_PREFIX):
            name, _, text = arg[len(ARGUMENT_PREFIX):].partition("=")
            values[name] = yaml.safe_load(text)
        else:
            rest.append(arg)
    return rest, (EmaSettings.from_dict(values) if values else None)


def resumed_checkpoint(argv: list[str]) -> Path | None:
    """The checkpoint folder a ``lerobot-train --resume=true --config_path=...`` command continues; else None."""
    options = dict(arg[2:].partition("=")[::2] for arg in argv if arg.startswith("--"))
    if str(options.get("resume", "false")).lower() != "true" or not options.get("config_path"):
        return None
    return Path(options["config_path"]).parent.parent


class EmaTrainingHooks:
    """before/after each step and around each save, for :func:`dp_ros.lerobot_compat.hook_weight_average`."""

    def __init__(self, settings: EmaSettings | None, resume_from: Path | None, keeps_average: bool) -> None:
        self.resumed: SavedAverage | None = saved_average(resume_from) if resume_from is not None else None
        if resume_from is not None:
            settings = self.resumed.settings if self.resumed else None
        self.settings = settings if settings is not None and settings.enable else None
        self.keeps_average = keeps_average
        self.average: WeightAverage | None = None
        self._started = False

    @property
    def active(self) -> bool:
        """Whether there is anything to do (an average to keep, or raw weights to restore)."""
        return self.settings is not None or self.resumed is not None

    def before_update(self, policy) -> None:
        if self._started:
            return
        self._started = True
        averaged_state = None
        if self.resumed is not None:
            from safetensors.torch import load_file

            averaged_state = {k: v.detach().clone() for k, v in _model_state(policy).items()}
            _load_into(policy, load_file(str(self.resumed.raw_weights)))
        if self.settings is not None and self.keeps_average:
            self.average = WeightAverage(self.settings, self.resumed.updates if self.resumed else 0)
            self.average.start(policy, averaged_state)

    def after_update(self, policy) -> None:
        if self.average is not None:
            self.average.update(policy)

    @contextlib.contextmanager
    def saving(self, policy, checkpoint_dir: Path) -> Iterator[None]:
        if self.average is None:
            yield
            return
        with self.average.swapped_in(policy) as raw:
            yield
        self.average.save_state(checkpoint_dir, raw)


def _model_state(policy) -> dict:
    return getattr(policy, "module", policy).state_dict()


def _load_into(policy, weights: dict) -> None:
    """Copy saved weights into the policy's own tensors (the optimizer keeps referring to them)."""
    import torch

    state = _model_state(policy)
    missing = sorted(set(state) - set(weights))
    if missing:
        raise ValueError(f"the checkpoint's raw weights lack {len(missing)} of the policy's tensors "
                         f"(first: {missing[0]})")
    with torch.no_grad():
        for name, tensor in state.items():
            tensor.copy_(weights[name])
