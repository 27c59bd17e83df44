"""Noise schedulers for Diffusion Policy inference and the denoising loop that uses them.

A checkpoint is trained with one noise schedule (``num_train_timesteps``,
``beta_schedule``, ...); at inference any of these samplers can walk it back:

- ``ddpm``: the stochastic sampler LeRobot uses by default (100 steps).
- ``ddim``: deterministic, good with 10-20 steps (the original real-robot setting).
- ``dpmsolver++``: second-order multistep DPM-Solver++, good with 5-10 steps.
- ``unipc``: UniPC multistep predictor-corrector, good with 5-10 steps.
- ``sde-dpmsolver++``: the stochastic variant of DPM-Solver++ (fresh noise at
  every step, like DDPM), for policies whose deterministic samples cut between modes.
- ``consistency``: 1-4 steps of a consistency-distilled student (``dp-ros distill``;
  dp_ros.core.consistency).
"""
from __future__ import annotations

import inspect
from typing import Callable, Protocol

import torch

from dp_ros.core.choices import SAMPLERS  # the names, listed once
from dp_ros.core.noise_schedule import NoiseSchedule


def make_scheduler(name: str, schedule: NoiseSchedule):
    """A diffusers scheduler of kind ``name`` matching the checkpoint's training schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    common = dict(num_train_timesteps=schedule.num_train_timesteps, beta_start=schedule.beta_start,
                  beta_end=schedule.beta_end, beta_schedule=schedule.beta_schedule,
                  prediction_type=schedule.prediction_type)
    # For the multistep solvers, clipping the predicted clean sample to the
    # training range is their "thresholding" with a fixed maximum.
    threshold = dict(thresholding=schedule.clip_sample, sample_max_value=schedule.clip_sample_range,
                     dynamic_thresholding_ratio=1.0)
    name = name.lower()
    if name == "ddpm":
        return DDPMScheduler(clip_sample=schedule.clip_sample, clip_sample_range=schedule.clip_sample_range, **common)
    if name == "ddim":
        return DDIMScheduler(clip_sample=schedule.clip_sample, clip_sample_range=schedule.clip_sample_range,
                             timestep_spacing="trailing", **common)
    if name in ("dpmsolver++", "dpm-solver++", "dpmsolver"):
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing", **threshold, **common)
    if name == "sde-dpmsolver++":
        return DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing", **threshold, **common)
    if name == "unipc":
        return UniPCMultistepScheduler(solver_order=2, timestep_spacing="trailing", **threshold, **common)
    raise ValueError(f"unknown noise scheduler {name!r}; choose one of {', '.join(SAMPLERS)}")


class SampleConditioning(Protocol):
    """What conditions a denoising loop on known actions (dp_ros.core.chunk_guidance.PlanConditioning).

    The hook by which **a sampler carries the inpainting**: a sampler's loop must

    1. pass the sample it is about to hand the network through :meth:`before_model`;
    2. use :meth:`model_output` *as* the network's output for everything it updates or keeps (a multistep
       solver's history included): that output is already conditioned in clean-sample space, so the
       sampler's own update moves the sample to the known actions;
    3. pass its final sample through :meth:`finish`.

    A sampler that rebuilds or remembers anything from an output it computed itself, bypassing 2, drops
    the conditioning. A sampler whose network output is not a noise or clean-sample prediction under the
    training schedule (a consistency student's ``c_skip x + c_out F`` parameterisation) cannot use 2 as
    is: it calls the network itself, computes its clean estimate, and passes that through
    ``condition_clean`` (PlanConditioning) before using or keeping it. test_chunk_guidance checks every name in ``SAMPLERS`` for that: the pinned actions
    must be within 0.05 of the plan *before* :meth:`finish`.
    """

    def before_model(self, sample: torch.Tensor, timestep: int) -> torch.Tensor: ...

    def model_output(self, step: int, unet, sample: torch.Tensor, timestep: torch.Tensor,
                     global_cond: torch.Tensor) -> torch.Tensor: ...

    def finish(self, sample: torch.Tensor) -> torch.Tensor: ...


def make_denoiser(name: str, unet: torch.nn.Module, schedule: NoiseSchedule, num_inference_steps: int):
    """The denoising loop of sampler ``name``: a diffusers scheduler's, or one of dp_ros's own."""
    if name.lower() == "consistency":
        from dp_ros.core.consistency import ConsistencySampler

        return ConsistencySampler(unet, schedule, num_inference_steps)
    return Denoiser(unet, make_scheduler(name, schedule), num_inference_steps)


class Denoiser:
    """Runs a scheduler's reverse process with a LeRobot Diffusion Policy UNet.

    Carries a :class:`SampleConditioning` as that protocol asks, for every diffusers scheduler of
    ``make_scheduler``: each converts the model output to a clean-sample estimate before its update and
    keeps that estimate (not the raw sample) in its multistep history.
    """

    def __init__(self, unet: torch.nn.Module, scheduler, num_inference_steps: int):
        if num_inference_steps < 1:
            raise ValueError("num_inference_steps must be >= 1")
        if num_inference_steps > scheduler.config.num_train_timesteps:
            raise ValueError(f"num_inference_steps ({num_inference_steps}) exceeds the checkpoint's "
                             f"num_train_timesteps ({scheduler.config.num_train_timesteps})")
        self.unet = unet
        self.scheduler = scheduler
        self.num_inference_steps = num_inference_steps
        self._step_takes_generator = "generator" in inspect.signature(scheduler.step).parameters

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """The training schedule's cumulative signal fraction per timestep (what a sample at t is noised with)."""
        return self.scheduler.alphas_cumprod

    def __call__(self, noise: torch.Tensor, global_cond: torch.Tensor, generator: torch.Generator | None = None,
                 on_step: Callable[[int, torch.Tensor], None] | None = None,
                 guidance: SampleConditioning | None = None) -> torch.Tensor:
        """Denoise ``noise`` (B, horizon, action_dim) conditioned on ``global_cond``.

        ``on_step(i, sample)`` sees the sample after each of the steps (for plots; the last one is the sample
        before ``guidance.finish``). ``guidance`` conditions the sample on known actions (see
        :class:`SampleConditioning`).
        """
        self.scheduler.set_timesteps(self.num_inference_steps, device=noise.device)
        sample = noise
        extra = {"generator": generator} if self._step_takes_generator else {}
        timestep = torch.empty(noise.shape[0], dtype=torch.long, device=noise.device)
        for i, t in enumerate(self.scheduler.timesteps):
            timestep.fill_(int(t))
            if guidance is None:
                model_output = self.unet(sample, timestep, global_cond=global_cond)
            else:
                sample = guidance.before_model(sample, int(t))
                model_output = guidance.model_output(i, self.unet, sample, timestep, global_cond)
            sample = self.scheduler.step(model_output, t, sample, **extra).prev_sample
            if on_step is not None:
                on_step(i, sample)
        return sample if guidance is None else guidance.finish(sample)
