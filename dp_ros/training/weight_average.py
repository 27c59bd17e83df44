"""An exponential moving average (EMA) of the policy's weights, kept while LeRobot trains.

Diffusion Policy (Chi et al. 2023) trains with one and deploys the averaged
weights: their sampled actions are much steadier early in training than the raw
weights of the same step. LeRobot 0.6.1 has none, so dp_ros keeps it through the
training-loop hooks of ``dp_ros.lerobot_compat.hook_weight_average``:

- the average starts from the weights training starts from (random for a fresh
  run, the checkpoint's for fine-tuning); after the k-th optimisation step it
  becomes ``d_k * average + (1 - d_k) * weights`` with the paper's power-law
  warm-up ``d_k = clamp(1 - (1 + (k - update_after_step) / inv_gamma) ** -power,
  min_decay, max_decay)`` (and ``d_k = 0``, following the raw weights, for
  ``k <= update_after_step``). With the defaults (power 0.75, inv_gamma 1) the
  average spans about ``1 / (1 - d_k) = (1 + k) ** 0.75`` steps: the last 32 at
  step 100, the last 240 at step 1500, never more than 10 000 (``max_decay``);
- a checkpoint's ``pretrained_model/model.safetensors`` holds the averaged
  weights (what ``dp-ros eval`` and the policy node load); its
  ``training_state/`` adds the raw weights and the number of updates
  (``RAW_WEIGHTS_FILE``, ``STATE_FILE``), so a resume continues both where they were;
- the buffers (none in LeRobot's Diffusion Policy) and frozen parameters are copied, not averaged.

The option names are those of LeRobot's own ``--ema.*`` (lerobot#4323, after 0.6.1).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

STATE_FILE = "dp_ros_ema.json"
"""In a checkpoint's training_state/: the settings and the number of updates of its average."""
RAW_WEIGHTS_FILE = "dp_ros_raw_model.safetensors"
"""In a checkpoint's training_state/: the raw (not averaged) weights a resume continues training."""
TRAINING_STATE_DIR = "training_state"


@dataclass
class EmaSettings:
    """An exponential moving average of the policy's weights (LeRobot's ``--ema.*`` names)."""

    enable: bool = True
    """Keep the average and save it as the checkpoint's weights (the raw ones go to training_state/)."""
    update_after_step: int = 0
    """Optimisation steps during which the average just follows the raw weights."""
    inv_gamma: float = 1.0
    """Scale of the decay's warm-up in steps: d_k = 1 - (1 + (k - update_after_step) / inv_gamma) ** -power."""
    power: float = 0.75
    """Exponent of the warm-up (Diffusion Policy: 0.75; smaller averages over fewer steps)."""
    min_decay: float = 0.0
    """Lowest decay once the warm-up has begun."""
    max_decay: float = 0.9999
    """Highest decay: the average never spans more than about 1 / (1 - max_decay) steps."""

    def problems(self) -> list[str]:
        """What cannot work, one line per option (empty when all is well)."""
        found = []
        if self.update_after_step < 0:
            found.append(f"ema.update_after_step: must be 0 or more, got {self.update_after_step}")
        if self.inv_gamma <= 0:
            found.append(f"ema.inv_gamma: must be more than 0, got {self.inv_gamma}")
        if self.power <= 0:
            found.append(f"ema.power: must be more than 0, got {self.power}")
        if not 0.0 <= self.min_decay <= self.max_decay < 1.0:
            found.append(f"ema.min_decay and ema.max_decay: need 0 <= min_decay <= max_decay < 1, got "
                         f"{self.min_decay} and {self.max_decay}")
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EmaSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def ema_decay(update: int, settings: EmaSettings) -> float:
    """The decay applied at optimisation step ``update`` (counted from 1 since the average started)."""
    warm = update - settings.update_after_step
    if warm <= 0:
        return 0.0
    value = 1.0 - (1.0 + warm / settings.inv_gamma) ** -settings.power
    return min(settings.max_decay, max(settings.min_decay, value))


def _model(policy):
    """The policy under accelerate's DistributedDataParallel wrapper, if any."""
    return getattr(policy, "module", policy)


class WeightAverage:
    """The average of one model's weights; ``update`` after each optimisation step."""

    def __init__(self, settings: EmaSettings, updates: int = 0) -> None:
        self.settings = settings
        self.updates = updates
        """Optimisation steps averaged so far (continues across a resume)."""
        self.shadow: dict[str, Any] | None = None

    def start(self, policy, average: dict[str, Any] | None = None) -> None:
        """Begin from ``average`` (a resumed run's) or from the policy's current weights."""
        import torch

        state = _model(policy).state_dict()
        source = state if average is None else average
        missing = sorted(set(state) - set(source))
        if missing:
            raise ValueError(f"the saved weight average lacks {len(missing)} of the policy's tensors "
                             f"(first: {missing[0]}); it belongs to another policy")
        with torch.no_grad():
            self.shadow = {name: source[name].detach().to(tensor.device, tensor.dtype).clone()
                           for name, tensor in state.items()}

    def update(self, policy) -> float:
        """Fold in the policy's weights after one more optimisation step; returns the decay used."""
        import torch

        assert self.shadow is not None, "start() first"
        self.updates += 1
        decay = ema_decay(self.updates, self.settings)
        model = _model(policy)
        averaged = {name for name, p in model.named_parameters() if p.requires_grad}
        state = model.state_dict()
        pairs = [(self.shadow[n], t.detach()) for n, t in state.items() if n in averaged and t.is_floating_point()]
        with torch.no_grad():
            if pairs:  # average + (1 - decay) * (weights - average), every tensor in one call
                torch._foreach_lerp_([p[0] for p in pairs], [p[1] for p in pairs], 1.0 - decay)
            for name, tensor in state.items():
                if not (name in averaged and tensor.is_floating_point()):
                    self.shadow[name].copy_(tensor)
        return decay

    @contextlib.contextmanager
    def swapped_in(self, policy) -> Iterator[dict[str, Any]]:
        """The averaged weights in the policy for the duration (for saving); yields the raw ones."""
        import torch

        assert self.shadow is not None, "start() first"
        state = _model(policy).state_dict()
        raw = {name: tensor.detach().clone() for name, tensor in state.items()}
        with torch.no_grad():
            for name, tensor in state.items():
                tensor.copy_(self.shadow[name])
        try:
            yield raw
        finally:
            with torch.no_grad():
                for name, tensor in state.items():
                    tensor.copy_(raw[name])

    def save_state(self, checkpoint_dir: Path, raw: dict[str, Any]) -> None:
        """Write the raw weights and the average's settings and count into ``checkpoint_dir/training_state``."""
        from safetensors.torch import save_file

        folder = Path(checkpoint_dir) / TRAINING_STATE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in raw.items()}, str(folder / RAW_WEIGHTS_FILE))
        (folder / STATE_FILE).write_text(json.dumps({"updates": self.updates, "settings": asdict(self.settings)},
                                                    indent=2))


@dataclass
class SavedAverage:
    """The weight average a checkpoint was saved with."""

    settings: EmaSettings
    updates: int
    raw_weights: Path
    averaged_weights: Path


def saved_average(checkpoint_dir: Path) -> SavedAverage | None:
    """The average saved in a checkpoint folder (``<step>/`` or ``last/``); None if it was trained without one."""
    checkpoint_dir = Path(checkpoint_dir)
    state = checkpoint_dir / TRAINING_STATE_DIR / STATE_FILE
    if not state.is_file():
        return None
    data = json.loads(state.read_text())
    raw = checkpoint_dir / TRAINING_STATE_DIR / RAW_WEIGHTS_FILE
    averaged = checkpoint_dir / "pretrained_model" / "model.safetensors"
    for path in (raw, averaged):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: checkpoint {checkpoint_dir} is incomplete")
    return SavedAverage(EmaSettings.from_dict(data.get("settings", {})), int(data["updates"]), raw, averaged)
