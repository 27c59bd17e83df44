"""Consistency distillation of a trained LeRobot Diffusion Policy (the loss; the run is ``distillation_entry``'s).

The student is the teacher's own network (same LeRobot ``DiffusionPolicy``,
warm-started from its weights) trained so that its one-step map
(``dp_ros.core.consistency.ConsistencyFunction``) takes any point of a
trajectory of the teacher's probability-flow ODE to the trajectory's clean end
(Song et al. 2023; LCM, Luo et al. 2023; Consistency Policy, Prasad et al. 2024).
A demonstrated chunk is noised to timestep ``t_start`` of a coarse grid of
``solver_intervals`` intervals over the training schedule (skipped timesteps;
the top capped as the sampler's, see ``consistency.MIN_SIGNAL``). Then, by
``target``:

- ``teacher-ode`` (the default): the frozen teacher's DDIM solver, with the
  spacing of its ``teacher_steps``-step sampler, runs from ``x_start`` to the
  boundary (t = 0), and the end of that trajectory is the target: LCM's
  skipped-step solver with the skip reaching the boundary, where the consistency
  function is the identity, so no target network is needed and every sample is
  supervised by the teacher's trajectory itself;
- ``target-network`` (LCM's bootstrapped loss): one DDIM step of the teacher
  takes ``x_start`` to the grid's next lower timestep ``t_end``; the target is
  the map of an exponential moving average of the student at (x_end, t_end).

The distance is the pseudo-Huber one LCM uses, uniform over timesteps, or the
squared error weighted by 1 / (sigma_start - sigma_end) of improved consistency
training (``loss``). The student's image encoder stays the teacher's unless
``train_encoder`` (the student changes how it denoises, not what it sees); the
observation is then encoded once per batch for the teacher and the student.

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
TARGETS = ("teacher-ode", "target-network")


@dataclass(frozen=True)
class DistillationLoss:
    """How the student is trained against the teacher."""

    target: str = "teacher-ode"
    """teacher-ode: the end of the teacher's DDIM trajectory from the noised chunk (``teacher_steps`` spacing);
    target-network: LCM's one teacher step over one grid interval, then the student's moving average's map."""
    teacher_steps: int = 10
    """teacher-ode: the teacher's solver steps as those of a ``teacher_steps``-step DDIM sampler (one step per
    num_train_timesteps / teacher_steps timesteps; DDIM-10 keeps the demo teacher's closed-loop success)."""
    train_encoder: bool = False
    """Train the student's image encoder too (3x the cost per step); by default it stays the teacher's."""
    solver_intervals: int = 20
    """Intervals of the teacher's ODE solver grid over the training schedule (LCM's skipping: one teacher DDIM
    step spans num_train_timesteps / solver_intervals timesteps). Must divide num_train_timesteps so that the
    1, 2 and 4-step samplers' timesteps lie on the grid."""
    ema_decay: float = 0.95
    """target-network: decay of the target network's moving average of the student (LCM: 0.95)."""
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
    """The distillation loss of one student against a frozen teacher (and, LCM-style, the student's EMA)."""

    def __init__(self, student, teacher, settings: DistillationLoss, target_state: dict | None = None):
        schedule = NoiseSchedule.from_config(teacher.config)
        if schedule != NoiseSchedule.from_config(student.config):
            raise ValueError("the student's noise schedule differs from the teacher's")
        for name, value in (("solver_intervals", settings.solver_intervals), ("teacher_steps", settings.teacher_steps)):
            if value < 1 or schedule.num_train_timesteps % value:
                raise ValueError(f"{name} ({value}) must divide the teacher's num_train_timesteps "
                                 f"({schedule.num_train_timesteps})")
        if settings.loss not in LOSSES:
            raise ValueError(f"loss {settings.loss!r} is not one of {LOSSES}")
        if settings.target not in TARGETS:
            raise ValueError(f"target {settings.target!r} is not one of {TARGETS}")
        self.settings = settings
        self.student = student
        self.teacher = teacher.diffusion.eval().requires_grad_(False)
        self.target = None
        if settings.target == "target-network":
            self.target = copy.deepcopy(student.diffusion).eval().requires_grad_(False)
            if target_state is not None:
                self.target.load_state_dict(target_state)
        self.shared_encoder = not settings.train_encoder and _same_encoder(student.diffusion, self.teacher)
        if not settings.train_encoder:
            _encoder_parameters(student.diffusion).requires_grad_(False)
        self.function = ConsistencyFunction(schedule, clip=False)
        self.teacher_function = ConsistencyFunction(schedule)
        self.teacher_stride = schedule.num_train_timesteps // settings.teacher_steps
        grid = [0] + consistency_timesteps(self.function.alphas_cumprod, settings.solver_intervals)[::-1]
        self.grid = torch.tensor(grid, dtype=torch.long)
        alpha_bar = self.function.alphas_cumprod[self.grid]
        sigma = ((1.0 - alpha_bar) / alpha_bar).sqrt()
        weights = 1.0 / (sigma[1:] - sigma[:-1])
        self.interval_weights = (weights / weights.mean()).float()

    @torch.no_grad()
    def update_target(self) -> None:
        """target <- decay * target + (1 - decay) * student (called once per optimisation step)."""
        if self.target is None:
            return
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
        t_start = self.grid[interval].to(device)
        noise = torch.randn_like(clean)
        alpha, sigma = self.function.signal_and_noise(t_start, clean)
        x_start = alpha * clean + sigma * noise
        with torch.no_grad():
            teacher_cond = diffusion_global_conditioning(self.teacher, batch)
            if self.target is None:
                target = self.teacher_trajectory_end(x_start, t_start, teacher_cond)
            else:
                t_end = self.grid[interval - 1].to(device)
                x_end = self._teacher_step(x_start, t_start, t_end, teacher_cond)
                target = self.function(self.target.unet, x_end, t_end,
                                       diffusion_global_conditioning(self.target, batch))
        if self.shared_encoder:
            cond = teacher_cond
        else:
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

    @torch.no_grad()
    def teacher_trajectory_end(self, x: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The clean end of the teacher's DDIM trajectory from each ``x`` at its own timestep.

        Steps of ``teacher_stride`` timesteps (a ``teacher_steps``-step DDIM sampler's spacing, started where
        the sample is); the last step goes to alpha_bar = 1, that is to the clean estimate, as diffusers' DDIM
        does with ``set_alpha_to_one``. Each network call takes only the samples still on their way.
        """
        x, timesteps = x.clone(), timesteps.clone()
        end = torch.empty_like(x)
        active = torch.arange(x.shape[0], device=x.device)
        while len(active):
            t = timesteps[active]
            output = self.teacher.unet(x[active], t, global_cond=cond[active])
            estimate = self.teacher_function.clean_estimate(output, x[active], t)
            t_next = t - self.teacher_stride
            done = t_next < 0
            end[active[done]] = estimate[done]
            going = ~done
            if going.any():
                moved = self._ddim_to(estimate[going], output[going], x[active[going]], t[going], t_next[going])
                x[active[going]] = moved
                timesteps[active[going]] = t_next[going]
            active = active[going]
        return end

    def _ddim_to(self, clean, output, x, t, t_next) -> torch.Tensor:
        noise = self.teacher_function.network_noise(output, x, t)
        alpha, sigma = self.teacher_function.signal_and_noise(t_next, x)
        return alpha * clean + sigma * noise

    def _teacher_step(self, x_start, t_start, t_end, cond) -> torch.Tensor:
        """One DDIM step of the teacher from t_start to t_end (clipped clean estimate, its own noise estimate)."""
        output = self.teacher.unet(x_start, t_start, global_cond=cond)
        clean = self.teacher_function.clean_estimate(output, x_start, t_start)
        return self._ddim_to(clean, output, x_start, t_start, t_end)


def _encoder_parameters(diffusion) -> torch.nn.Module:
    """LeRobot's image encoder(s) of a DiffusionModel (an empty module for a policy without cameras)."""
    encoder = getattr(diffusion, "rgb_encoder", None)
    return encoder if encoder is not None else torch.nn.Module()


def _same_encoder(student_diffusion, teacher_diffusion) -> bool:
    """Whether the student's image encoder has the teacher's weights (so one encoding serves both)."""
    student_state = _encoder_parameters(student_diffusion).state_dict()
    teacher_state = _encoder_parameters(teacher_diffusion).state_dict()
    return student_state.keys() == teacher_state.keys() and all(
        torch.equal(student_state[k], teacher_state[k]) for k in student_state)
