"""The consistency sampler: a distilled Diffusion Policy in one to four network calls.

A consistency model maps a noisy action chunk at any step of the diffusion
process straight to the clean chunk at the end of its probability-flow ODE
trajectory. dp_ros's students (``dp-ros distill``) keep LeRobot's Diffusion
Policy network unchanged; the one-step map is built around it with the
boundary parameterisation of consistency models (Song et al. 2023, LCM):

    f(x, t) = c_skip(t) * x + c_out(t) * x0_hat(x, t)

where ``x0_hat`` is the clean chunk the network's output implies (from an
epsilon or a sample prediction, as the checkpoint was trained) and

    c_skip(t) = sigma_data^2 / ((s t)^2 + sigma_data^2),   c_out(t) = s t / sqrt((s t)^2 + sigma_data^2)

with the training timestep ``t`` (0 .. num_train_timesteps - 1), ``s`` = 10 and
``sigma_data`` = 0.5. At t = 0 the map is the identity (the boundary condition),
so the network is never asked to be consistent with itself at the end.

Sampling with K steps (multistep consistency sampling): start from noise at the
top of the schedule, map to a clean chunk, re-noise it to the next, lower
timestep with fresh noise, map again, ... The K timesteps are the K highest of
the 4-step sampler's "trailing" ones (97, 74, 49, 24 for 100 training
timesteps: K = 2 is 97 and 74), the first capped where the schedule still has
signal (MIN_SIGNAL: 97 of 100 for LeRobot's cosine schedule). Every step after
the first re-noises a chunk to where its course is still open (74: 38% signal),
so the last map still chooses between solutions instead of sharpening the first
map's average of them; chosen in closed loop on tuning instances (see
SAMPLER_SPACING).
With ``fresh_noise=False`` the re-noising reuses the noise the network
estimates, which makes the sampler DDIM's deterministic update (used to check it against
diffusers' DDIM). ROS-free.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from dp_ros.core.noise_schedule import NoiseSchedule

SAMPLER_NAME = "consistency"
MAX_STEPS = 4
"""More steps than this add cost and give nothing over the teacher's own samplers."""
SAMPLER_SPACING = MAX_STEPS
"""K-step sampling takes the K highest timesteps of this many trailing steps. On the demo's task (a student of
1000 steps, 3 x 20 tuning instances, guided), 2 steps re-noising to 74 succeeded in 90% against 72% for the
2-step trailing spacing's 49 (84: 83%, 66: 80%), and 3 steps at 97, 74, 49 in 95% against 90% at 97, 66, 32."""
TIMESTEP_SCALING = 10.0
SIGMA_DATA = 0.5
MIN_SIGNAL = 0.025
"""Smallest sqrt(alpha_bar) the consistency timesteps reach. An epsilon-predicting network's clean estimate is
(x - sigma eps) / sqrt(alpha_bar): at LeRobot's last cosine timestep (sqrt(alpha_bar) = 5e-4) any error in eps is
amplified 2000 times, so the top of the schedule is replaced by the highest timestep with at least this much
signal (t = 97 of 100: 3% signal, 32x; a sample that starts as pure noise there is off by 3% of the signal).
Soare's Consistency Policy replication clamps alpha at 1/80 for the same reason."""


def training_alphas_cumprod(schedule: NoiseSchedule) -> torch.Tensor:
    """The cumulative signal fraction per training timestep of ``schedule`` (diffusers' DDPM definition)."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=schedule.num_train_timesteps, beta_start=schedule.beta_start,
                              beta_end=schedule.beta_end, beta_schedule=schedule.beta_schedule)
    return scheduler.alphas_cumprod.to(torch.float64)


def boundary_coefficients(timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip and c_out at integer ``timesteps`` (c_skip = 1, c_out = 0 at t = 0)."""
    scaled = timesteps.to(torch.float64) * TIMESTEP_SCALING
    c_skip = SIGMA_DATA ** 2 / (scaled ** 2 + SIGMA_DATA ** 2)
    c_out = scaled / torch.sqrt(scaled ** 2 + SIGMA_DATA ** 2)
    return c_skip, c_out


def trailing_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """The K timesteps of a K-step sampler, from the top of the schedule down (diffusers' "trailing" spacing)."""
    ratio = num_train_timesteps / steps
    return [int(round(num_train_timesteps - i * ratio)) - 1 for i in range(steps)]


def top_timestep(alphas_cumprod: torch.Tensor) -> int:
    """The highest timestep whose signal fraction sqrt(alpha_bar) is at least MIN_SIGNAL."""
    usable = torch.nonzero(alphas_cumprod.sqrt() >= MIN_SIGNAL).flatten()
    return int(usable.max()) if len(usable) else 0


def sampler_timesteps(alphas_cumprod: torch.Tensor, steps: int) -> list[int]:
    """The timesteps of a ``steps``-step consistency sampler: the first ``steps`` of SAMPLER_SPACING's, capped."""
    if not 1 <= steps <= SAMPLER_SPACING:
        raise ValueError(f"the consistency sampler takes 1 to {SAMPLER_SPACING} steps; got {steps}")
    return consistency_timesteps(alphas_cumprod, SAMPLER_SPACING)[:steps]


def consistency_timesteps(alphas_cumprod: torch.Tensor, steps: int) -> list[int]:
    """The trailing timesteps of ``steps`` steps with the first capped at ``top_timestep`` (no repeats)."""
    top = top_timestep(alphas_cumprod)
    capped = [min(t, top) for t in trailing_timesteps(len(alphas_cumprod), steps)]
    return sorted(set(capped), reverse=True)


class ConsistencyFunction:
    """The one-step map f(x, t) of a network trained on ``schedule`` (see the module docstring)."""

    def __init__(self, schedule: NoiseSchedule, clip: bool | None = None):
        self.schedule = schedule
        self.alphas_cumprod = training_alphas_cumprod(schedule)
        self.clip = schedule.clip_sample if clip is None else clip

    def _view(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def signal_and_noise(self, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t), shaped to broadcast over ``like``."""
        alpha_bar = self.alphas_cumprod.to(timesteps.device)[timesteps.long()]
        return self._view(alpha_bar.sqrt(), like), self._view((1.0 - alpha_bar).sqrt(), like)

    def clean_estimate(self, model_output: torch.Tensor, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The clean chunk the network's output implies at ``timesteps`` (clipped as the checkpoint samples)."""
        if self.schedule.prediction_type == "epsilon":
            alpha, sigma = self.signal_and_noise(timesteps, x)
            clean = (x - sigma * model_output) / alpha
        elif self.schedule.prediction_type == "sample":
            clean = model_output
        else:
            raise ValueError(f"prediction_type {self.schedule.prediction_type!r} is not epsilon or sample")
        if self.clip:
            clean = clean.clamp(-self.schedule.clip_sample_range, self.schedule.clip_sample_range)
        return clean

    def combine(self, clean: torch.Tensor, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """c_skip(t) x + c_out(t) clean."""
        c_skip, c_out = boundary_coefficients(timesteps)
        return self._view(c_skip, x) * x + self._view(c_out, x) * clean

    def __call__(self, unet: Callable, x: torch.Tensor, timesteps: torch.Tensor, global_cond: torch.Tensor,
                 model_output: torch.Tensor | None = None) -> torch.Tensor:
        """f(x, t) for a batch; ``model_output`` (the network's output on x, t) if already computed."""
        if model_output is None:
            model_output = unet(x, timesteps, global_cond=global_cond)
        return self.combine(self.clean_estimate(model_output, x, timesteps), x, timesteps)

    def network_noise(self, model_output: torch.Tensor, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The noise in ``x`` the network's output estimates (before any clipping, as diffusers' DDIM uses it)."""
        if self.schedule.prediction_type == "epsilon":
            return model_output
        alpha, sigma = self.signal_and_noise(timesteps, x)
        return (x - alpha * model_output) / sigma

    def noised(self, clean: torch.Tensor, noise: torch.Tensor, timestep: int) -> torch.Tensor:
        alpha_bar = float(self.alphas_cumprod[timestep])
        return math.sqrt(alpha_bar) * clean + math.sqrt(1.0 - alpha_bar) * noise


class ConsistencySampler:
    """Multistep consistency sampling; called like ``samplers.Denoiser`` (same arguments, same guidance hooks).

    Carries a ``samplers.SampleConditioning`` (the plan of ``guided``) as that protocol asks, so every step is
    inpaint -> map -> re-noise: the known part of the sample is moved to the plan noised to the step
    (``before_model``); the network's output, used as the map's, has its clean estimate moved to the plan and,
    on the steps the guidance chooses, RTC's gradient guidance through the network (``model_output``) -- as
    consistency models inpaint (Song et al. 2023, Algorithm 4: the known part of each clean estimate is
    replaced before it is re-noised); after the last step the pinned actions are set to the plan (``finish``).
    """

    def __init__(self, unet: torch.nn.Module, schedule: NoiseSchedule, num_inference_steps: int,
                 fresh_noise: bool = True, timesteps: list[int] | None = None):
        if not 1 <= num_inference_steps <= MAX_STEPS:
            raise ValueError(f"the consistency sampler takes 1 to {MAX_STEPS} steps; got {num_inference_steps}")
        self.unet = unet
        self.function = ConsistencyFunction(schedule)
        self.num_inference_steps = num_inference_steps
        self.fresh_noise = fresh_noise
        self.timesteps = timesteps or sampler_timesteps(self.function.alphas_cumprod, num_inference_steps)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.function.alphas_cumprod

    def __call__(self, noise: torch.Tensor, global_cond: torch.Tensor, generator: torch.Generator | None = None,
                 on_step: Callable[[int, torch.Tensor], None] | None = None, guidance=None) -> torch.Tensor:
        sample = noise
        timestep = torch.empty(noise.shape[0], dtype=torch.long, device=noise.device)
        for i, t in enumerate(self.timesteps):
            timestep.fill_(t)
            if guidance is None:
                output = self.unet(sample, timestep, global_cond=global_cond)
            else:
                sample = guidance.before_model(sample, t)
                output = guidance.model_output(i, self.unet, sample, timestep, global_cond)
            clean = self.function(self.unet, sample, timestep, global_cond, model_output=output)
            if i + 1 < len(self.timesteps):
                if self.fresh_noise:
                    renoise = torch.randn(noise.shape, generator=generator, device=noise.device, dtype=noise.dtype)
                else:
                    renoise = self.function.network_noise(output, sample, timestep)
                sample = self.function.noised(clean, renoise, self.timesteps[i + 1])
            else:
                sample = clean
            if on_step is not None:
                on_step(i, sample)
        return sample if guidance is None else guidance.finish(sample)
