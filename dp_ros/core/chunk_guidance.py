"""Guided chunk continuation: a new action chunk that continues the plan being executed.

Real-time chunking (Black, Galliker, Levine 2025) for Diffusion Policy. While a
chunk is computed the robot keeps executing the current plan, so the chunk's
first actions are due before it arrives. Sampling the chunk *conditioned on*
that plan makes it a continuation of the same solution instead of a second,
possibly different one merged after the fact:

- the actions due before the chunk arrives (``delay``) are **pinned**: they equal
  the plan;
- the rest of the overlap with the plan is **guided** with weights that decay
  from 1 to 0 (RTC's exponential soft mask), so the chunk leaves the plan
  gradually where the new observation asks for it;
- the actions after the plan's end are **free**.

Conditioning is by inpainting, carried by the sampler: before every call of the
denoising network, the known part of the noisy sample is replaced by the plan
noised to the current step, and the network's clean-sample estimate is moved to
the plan (both softly, by the mask's weight), so every sampler, multistep history
included, steps towards the plan and reaches it by itself. After the last step the
pinned actions are set to the plan exactly (a float-rounding touch, not a
repair). Optionally, the first denoising steps also get RTC's guidance on the
predicted clean sample (``gradient_steps``).

A chunk's horizon index ``i`` is the action for ``i - (n_obs_steps - 1)``
policy steps after the newest observation (Diffusion Policy's horizon starts
with the observation steps). ROS-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


def check_guidance(gradient_steps: int, max_weight: float) -> None:
    """Clean-sample guidance needs its largest weight (a weight of 0 would silently turn it off)."""
    if gradient_steps < 0 or (gradient_steps > 0 and not max_weight > 0):
        raise ValueError(f"guidance on {gradient_steps} denoising steps needs gradient_steps >= 0 and, when above "
                         f"0, a max_weight above 0 (got {max_weight})")


@dataclass(frozen=True)
class ChunkGuide:
    """The plan a new chunk should continue, in the chunk's own time frame."""

    steps: np.ndarray = field(default_factory=lambda: np.empty(0))
    """Times of the plan's actions, in policy steps after the newest observation (increasing; may be fractional
    and negative)."""
    actions: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    """(len(steps), action_dim) planned actions, unnormalised (joint space)."""
    delay: float = 0.0
    """Policy steps after the newest observation at which the chunk is expected to arrive: the plan's actions
    before that are pinned."""
    gradient_steps: int = 0
    """Denoising steps (after the first) that also get RTC's clean-sample guidance (see PlanConditioning);
    0 = inpainting only."""
    max_weight: float = 0.0
    """Largest weight of that guidance (RTC's beta), needed (> 0) with gradient_steps; the policy node's is its
    parameter guidance_max_weight."""

    def __post_init__(self) -> None:
        check_guidance(self.gradient_steps, self.max_weight)

    @property
    def is_empty(self) -> bool:
        return len(self.steps) == 0

    def on_horizon(self, horizon: int, n_obs_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The plan at every horizon index, and the weight with which each is imposed (1 = pinned, 0 = free).

        Indices outside the plan's span get weight 0 (their value is the plan's nearest end).
        """
        offsets = np.arange(horizon, dtype=np.float64) - (n_obs_steps - 1)
        targets = np.stack([np.interp(offsets, self.steps, self.actions[:, j]) for j in range(self.actions.shape[1])],
                           axis=1)
        covered = (offsets >= self.steps[0] - 1e-6) & (offsets <= self.steps[-1] + 1e-6)
        pinned = covered & (offsets < self.delay)
        weights = np.zeros(horizon)
        weights[pinned] = 1.0
        guided = np.flatnonzero(covered & ~pinned)
        weights[guided] = soft_mask(len(guided))
        return targets, weights


def soft_mask(count: int) -> np.ndarray:
    """RTC's exponentially decaying weights for ``count`` guided actions after the pinned ones (in (0, 1))."""
    c = np.linspace(1.0, 0.0, count + 2)[1:-1]
    return c * np.expm1(c) / (math.e - 1.0)


PREDICTION_TYPES = ("epsilon", "sample")
"""What a Diffusion Policy network may predict for guided continuation: the noise or the clean sample (the
two LeRobot trains). Anything else is refused when the checkpoint is loaded."""


class PlanConditioning:
    """Conditions a denoising loop on normalised targets with per-index weights (see the module docstring).

    ``targets`` (1, horizon, action_dim) and ``weights`` (horizon,) are in the sampler's (normalised) space;
    ``noise`` is the loop's initial sample, reused to noise the targets so that an index with weight 1
    follows the same noise draw at every step.

    The conditioning is carried by the sampler itself, not imposed afterwards: :meth:`model_output` returns
    the network's output with its *clean-sample estimate* moved to the targets by the weights (pinned
    indices exactly), written back in the checkpoint's ``prediction_type``. Every diffusers sampler turns
    the network's output into that estimate before it updates the sample, and the multistep solvers
    (DPM-Solver++, its SDE variant, UniPC) keep those estimates as their history: so the history, UniPC's
    corrector (which rebuilds the sample from its own previous sample and that history, not from the sample
    it is handed) and the final step all agree with the plan, and the sample reaches it before
    :meth:`finish`. :meth:`finish` then only removes the last float rounding.

    On denoising steps 1 .. ``gradient_steps`` the output first gets RTC's correction (guidance on the
    predicted clean sample, a vector-Jacobian product through the network): it carries the plan to the rest
    of the chunk more strongly than inpainting alone, for about the cost of two more network calls per
    step. Step 0 never gets it: at the first, pure-noise step the clean-sample estimate says nothing yet.
    """

    def __init__(self, targets: torch.Tensor, weights: np.ndarray, noise: torch.Tensor, alphas_cumprod: torch.Tensor,
                 gradient_steps: int = 0, max_weight: float = 0.0, clip_range: float | None = None,
                 prediction_type: str = "epsilon"):
        check_guidance(gradient_steps, max_weight)
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"guided continuation supports prediction_type {' or '.join(PREDICTION_TYPES)}; this "
                             f"checkpoint predicts {prediction_type!r}")
        self.targets = targets.to(noise.dtype)
        self.weights = torch.as_tensor(weights, dtype=noise.dtype, device=noise.device).view(1, -1, 1)
        self.pinned = (self.weights >= 1.0).to(noise.dtype)
        self.noise = noise
        self.alphas_cumprod = alphas_cumprod.to(device=noise.device, dtype=torch.float64)
        self.gradient_steps = gradient_steps
        self.max_weight = max_weight
        self.clip_range = clip_range
        self.prediction_type = prediction_type

    def _alpha_sigma(self, timestep) -> tuple[float, float]:
        alpha_bar = float(self.alphas_cumprod[int(timestep)])
        return math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)

    def before_model(self, sample: torch.Tensor, timestep: int) -> torch.Tensor:
        """``sample`` at ``timestep`` with its known part moved to the targets noised to that step."""
        alpha, sigma = self._alpha_sigma(timestep)
        known = alpha * self.targets + sigma * self.noise
        return sample + self.weights * (known - sample)

    def clean_estimate(self, output: torch.Tensor, sample: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """The clean sample the network's ``output`` for ``sample`` implies."""
        if self.prediction_type == "sample":
            return output
        return (sample - sigma * output) / alpha

    def output_for(self, clean: torch.Tensor, sample: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """The network output (in the checkpoint's prediction type) that implies ``clean`` for ``sample``."""
        if self.prediction_type == "sample":
            return clean
        return (sample - alpha * clean) / sigma

    def model_output(self, step: int, unet, sample: torch.Tensor, timestep: torch.Tensor,
                     global_cond: torch.Tensor) -> torch.Tensor:
        """The network's output for denoising step ``step``, conditioned on the targets (see the class docstring)."""
        alpha, sigma = self._alpha_sigma(timestep[0])
        if 1 <= step <= self.gradient_steps:
            clean = self._guided_clean(unet, sample, timestep, global_cond, alpha, sigma)
        else:
            clean = self.clean_estimate(unet(sample, timestep, global_cond=global_cond), sample, alpha, sigma)
        return self.output_for(self.condition_clean(clean), sample, alpha, sigma)

    def condition_clean(self, clean: torch.Tensor) -> torch.Tensor:
        """A clean-sample estimate moved to the targets by the weights (pinned indices exactly)."""
        return clean + self.weights * (self.targets - clean)

    def _guided_clean(self, unet, sample: torch.Tensor, timestep: torch.Tensor, global_cond: torch.Tensor,
                      alpha: float, sigma: float) -> torch.Tensor:
        """The clean-sample estimate with RTC's correction."""
        # inference-mode tensors cannot enter autograd: work on copies
        with torch.inference_mode(False), torch.enable_grad():
            x = sample.detach().clone().requires_grad_(True)
            output = unet(x, timestep.clone(), global_cond=global_cond.clone())
            clean = self.clean_estimate(output, x, alpha, sigma)
            if self.clip_range is not None:
                clean = clean.clamp(-self.clip_range, self.clip_range)
            error = self.weights * (self.targets - clean.detach())
            (correction,) = torch.autograd.grad(clean, x, error)
        # RTC's weight min(beta, (1 - tau) / (tau r^2)) for a flow x_tau = tau x0 + (1 - tau) eps, written for
        # this variance-preserving schedule (tau = alpha / (alpha + sigma)), is min(beta, 1 / (alpha sigma)); it
        # moves the clean estimate by sigma * weight * correction (for a noise-predicting network, its noise
        # estimate by -alpha times that)
        weight = min(self.max_weight, 1.0 / (alpha * sigma))
        return (clean + sigma * weight * correction).detach()

    def pinned_error(self, sample: torch.Tensor) -> float:
        """Largest distance of ``sample``'s pinned indices from the targets (0 without pinned indices)."""
        gap = (self.pinned * (sample - self.targets)).abs()
        return float(gap.max()) if gap.numel() else 0.0

    def finish(self, sample: torch.Tensor) -> torch.Tensor:
        """The denoised sample with its pinned indices set to the targets exactly."""
        return sample + self.pinned * (self.targets - sample)
