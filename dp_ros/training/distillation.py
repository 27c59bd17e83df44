"""Consistency distillation of a trained LeRobot Diffusion Policy (the loss; the run is ``distillation_entry``'s).

The student is the teacher's own network (same LeRobot ``DiffusionPolicy``,
warm-started from its weights) trained so that its one-step map
(``dp_ros.core.consistency.ConsistencyFunction``) gives the same clean chunk
from two neighbouring points of one trajectory of the teacher's
probability-flow ODE, LCM-style (Luo et al. 2023; Consistency Policy, Prasad et
al. 2024):

1. a demonstrated chunk is noised to timestep ``t_start`` of a coarse grid of
   ``solver_intervals`` intervals over the training schedule (skipped timesteps;
   the top capped as the sampler's, see ``consistency.MIN_SIGNAL``);
2. one DDIM step of the frozen teacher takes it along the ODE to the grid's
   next lower timestep ``t_end`` (0 at the bottom: the boundary);
3. the loss compares the student's map at (x_start, t_start) with the map of
   the target network, an exponential moving average of the student, at
   (x_end, t_end) (no gradient): the pseudo-Huber distance LCM uses with its
   uniform weighting, or the squared error weighted by 1 / (sigma_start -
   sigma_end) of improved consistency training (``loss``).

Padded actions (past an episode's end) are left out of the loss, as LeRobot's
own loss does.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from dp_ros.core.consistency import ConsistencyFunction, consistency_timesteps
from dp_ros.core.noise_schedule import NoiseSchedule
from dp_ros.lerobot_compat import diffusion_global_conditioning

ACTION = "action"
ACTION_PAD = "action_is_pad"
LOSSES = ("pseudo-huber", "weighted-l2")


@dataclass(frozen=True)
class DistillationLoss:
    """How the student is compared with its target."""

    solver_intervals: int = 20
    """Intervals of the teacher's ODE solver grid over the training schedule (LCM's skipping: one teacher DDIM
    step spans num_train_timesteps / solver_intervals timesteps). Must divide num_train_timesteps so that the
    1, 2 and 4-step samplers' timesteps lie on the grid."""
    ema_decay: float = 0.95
    """Decay of the target network's moving average of the student (LCM: 0.95)."""
    loss: str = "pseudo-huber"
    """pseudo-huber (LCM: sqrt(d^2 + c^2) - c, uniform over timesteps) or weighted-l2 (squared error weighted by
    1 / (sigma_start - sigma_end), normalised to mean 1 over the grid)."""
    huber_c: float = 0.001
    """The pseudo-Huber constant c."""


def model_batch(config, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A preprocessed training batch as LeRobot's DiffusionModel expects it (cameras stacked)."""
    from lerobot.utils.constants import OBS_IMAGES

    batch = dict(batch)
    if config.image_features:
        for key in config.image_features:
            if config.n_obs_steps == 1 and batch[key].ndim == 4:
                batch[key] = batch[key].unsqueeze(1)
        batch[OBS_IMAGES] = torch.stack([batch[key] for key in config.image_features], dim=-4)
    return batch


class ConsistencyDistillation:
    """The distillation loss of one student against a frozen teacher, with the student's EMA as target."""

    def __init__(self, student, teacher, settings: DistillationLoss, target_state: dict | None = None):
        schedule = NoiseSchedule.from_config(teacher.config)
        if schedule != NoiseSchedule.from_config(student.config):
            raise ValueError("the student's noise schedule differs from the teacher's")
        if schedule.num_train_timesteps % settings.solver_intervals:
            raise ValueError(f"solver_intervals ({settings.solver_intervals}) must divide the teacher's "
                             f"num_train_timesteps ({schedule.num_train_timesteps})")
        if settings.loss not in LOSSES:
            raise ValueError(f"loss {settings.loss!r} is not one of {LOSSES}")
        self.settings = settings
        self.student = student
        self.teacher = teacher.diffusion.eval().requires_grad_(False)
        self.target = copy.deepcopy(student.diffusion).eval().requires_grad_(False)
        if target_state is not None:
            self.target.load_state_dict(target_state)
        self.function = ConsistencyFunction(schedule, clip=False)
        self.teacher_function = ConsistencyFunction(schedule)
        grid = [0] + consistency_timesteps(self.function.alphas_cumprod, settings.solver_intervals)[::-1]
        self.grid = torch.tensor(grid, dtype=torch.long)
        alpha_bar = self.function.alphas_cumprod[self.grid]
        sigma = ((1.0 - alpha_bar) / alpha_bar).sqrt()
        weights = 1.0 / (sigma[1:] - sigma[:-1])
        self.interval_weights = (weights / weights.mean()).float()

    @torch.no_grad()
    def update_target(self) -> None:
        """target <- decay * target + (1 - decay) * student (called once per optimisation step)."""
        decay = self.settings.ema_decay
        for target, current in zip(self.target.parameters(), self.student.diffusion.parameters()):
            target.lerp_(current.detach().to(target.dtype), 1.0 - decay)
        for target, current in zip(self.target.buffers(), self.student.diffusion.buffers()):
            target.copy_(current)

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """The loss of a preprocessed batch (as LeRobot's ``DiffusionPolicy.forward`` receives it)."""
        self.update_target()
        batch = model_batch(self.student.config, batch)
        clean = batch[ACTION]
        size = clean.shape[0]
        device = clean.device
        interval = torch.randint(1, len(self.grid), (size,), device="cpu")
        t_start, t_end = self.grid[interval].to(device), self.grid[interval - 1].to(device)
        noise = torch.randn_like(clean)
        alpha, sigma = self.function.signal_and_noise(t_start, clean)
        x_start = alpha * clean + sigma * noise
        with torch.no_grad():
            x_end = self._teacher_step(batch, x_start, t_start, t_end)
            target = self.function(self.target.unet, x_end, t_end, diffusion_global_conditioning(self.target, batch))
        cond = diffusion_global_conditioning(self.student.diffusion, batch)
        prediction = self.function(self.student.diffusion.unet, x_start, t_start, cond)
        mask = (~batch[ACTION_PAD]).unsqueeze(-1).to(clean.dtype) if ACTION_PAD in batch else torch.ones_like(clean[..., :1])
        squared = ((prediction - target) ** 2 * mask).sum(dim=(1, 2)) / (mask.sum(dim=(1, 2)) * clean.shape[-1]).clamp_min(1)
        if self.settings.loss == "pseudo-huber":
            c = self.settings.huber_c
            per_sample = (squared + c * c).sqrt() - c
        else:
            per_sample = squared * self.interval_weights.to(device)[interval.to(device) - 1]
        return per_sample.mean(), {"distance": float(squared.detach().mean().sqrt())}

    def _teacher_step(self, batch, x_start: torch.Tensor, t_start: torch.Tensor, t_end: torch.Tensor) -> torch.Tensor:
        """One DDIM step of the teacher from t_start to t_end (clipped clean estimate, its own noise estimate)."""
        cond = diffusion_global_conditioning(self.teacher, batch)
        output = self.teacher.unet(x_start, t_start, global_cond=cond)
        clean = self.teacher_function.clean_estimate(output, x_start, t_start)
        noise = self.teacher_function.network_noise(output, x_start, t_start)
        alpha, sigma = self.teacher_function.signal_and_noise(t_end, x_start)
        return alpha * clean + sigma * noise
