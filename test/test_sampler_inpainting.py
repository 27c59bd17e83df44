"""Every sampler carries the inpainting itself: the pinned actions reach the plan before the final overwrite,
and the first action after them continues the plan (issue 18).

Two denoisers: the real (tiny, random) LeRobot UNet of a checkpoint for the pinned error, and, for continuity,
the exact denoiser of a known distribution of smooth trajectories (a Gaussian process), written out below.
A random UNet's free actions are noise, so only a denoiser of smooth data can say whether the chunk
continues the plan; a trained Diffusion Policy cannot be trained inside a unit test.
"""
import numpy as np
import pytest
import torch

from dp_ros.core.chunk_guidance import ChunkGuide, PlanConditioning
from dp_ros.core.policy_runtime import PolicyRuntime
from dp_ros.core.samplers import SAMPLERS, NoiseSchedule, make_denoiser
from dp_ros.node_params.policy import POLICY
from lerobot_fixtures import make_checkpoint, tiny_robot

ROBOT = tiny_robot()
MAX_WEIGHT = POLICY["guidance_max_weight"].default  # the policy node's
DEFAULT_STEPS = {"ddpm": 100, "ddim": 10, "dpmsolver++": 5, "unipc": 5, "sde-dpmsolver++": 5, "consistency": 2}
"""The step counts the README recommends for each sampler (LeRobot's 100 for DDPM)."""
PINNED_TOLERANCE = 0.05
"""Largest distance (normalised units) of a pinned action from the plan before the final overwrite."""


def steps_for(sampler: str) -> int:
    return DEFAULT_STEPS.get(sampler, 5)


class PinnedErrorProbe:
    """Records the pinned region's error of the sample handed to PlanConditioning.finish (before it overwrites)."""

    def __init__(self, monkeypatch):
        self.errors: list[float] = []
        finish = PlanConditioning.finish

        def recording_finish(conditioning, sample):
            self.errors.append(conditioning.pinned_error(sample))
            return finish(conditioning, sample)

        monkeypatch.setattr(PlanConditioning, "finish", recording_finish)


@pytest.fixture(scope="module", params=["epsilon", "sample"])
def runtime(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param) / "pretrained_model"
    return PolicyRuntime.load(make_checkpoint(folder, ROBOT, seed=1, prediction_type=request.param), device="cpu",
                              seed=0)


def observations(runtime, seed=0):
    rng = np.random.default_rng(seed)
    return [{"observation.state": rng.normal(size=3).astype(np.float32),
             "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)}
            for _ in range(runtime.n_obs_steps)]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("gradient_steps", [0, 2])
def test_every_sampler_reaches_the_plan_before_the_final_overwrite(runtime, sampler, gradient_steps, monkeypatch):
    probe = PinnedErrorProbe(monkeypatch)
    runtime.denoiser = make_denoiser(sampler, runtime.policy.diffusion.unet, NoiseSchedule.from_config(runtime.config),
                                     steps_for(sampler))
    steps = np.arange(-1.0, 11.0)
    plan = np.stack([0.8 * np.sin(0.35 * steps + j) for j in range(3)], axis=1)
    guide = ChunkGuide(steps, plan, delay=3.4, gradient_steps=gradient_steps, max_weight=MAX_WEIGHT)
    runtime.predict_chunk(observations(runtime), guide=guide)
    assert len(probe.errors) == 1
    assert max(probe.errors) < PINNED_TOLERANCE, (runtime.config.prediction_type, sampler, probe.errors)


class SmoothTrajectoryDenoiser(torch.nn.Module):
    """The exact (Bayes-optimal) denoiser of trajectories drawn from a Gaussian process (squared-exponential
    kernel over the horizon, joints independent), with the UNet's call signature. For x_t = alpha x0 + sigma eps
    it returns E[eps | x_t] (``epsilon``) or E[x0 | x_t] (``sample``)."""

    def __init__(self, horizon: int, alphas_cumprod: torch.Tensor, prediction_type: str, scale=0.5, length=3.0):
        super().__init__()
        index = torch.arange(horizon, dtype=torch.float64)
        self.kernel = scale**2 * torch.exp(-0.5 * ((index[:, None] - index[None]) / length) ** 2)
        self.alphas_cumprod = alphas_cumprod.to(torch.float64)
        self.prediction_type = prediction_type

    def forward(self, sample, timestep, global_cond=None):
        alpha_bar = self.alphas_cumprod[int(timestep[0])]
        alpha, sigma = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        x = sample.to(torch.float64)
        gain = alpha * self.kernel @ torch.linalg.inv(alpha_bar * self.kernel + sigma**2 * torch.eye(len(self.kernel)))
        clean = torch.einsum("ij,bjk->bik", gain, x)
        output = clean if self.prediction_type == "sample" else (x - alpha * clean) / sigma
        return output.to(sample.dtype)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_first_unpinned_action_continues_the_plan(sampler, prediction_type):
    """With the weights and guidance a guided chunk gets by default: pinned while due before the chunk arrives,
    then RTC's soft mask over the rest of the plan, then free; 2 gradient-guided steps."""
    schedule = NoiseSchedule(100, "squaredcos_cap_v2", 1e-4, 0.02, prediction_type, True, 1.0)
    horizon, n_obs_steps = 16, 2
    alphas_cumprod = make_denoiser(sampler, None, schedule, steps_for(sampler)).alphas_cumprod
    unet = SmoothTrajectoryDenoiser(horizon, alphas_cumprod, prediction_type)
    denoiser = make_denoiser(sampler, unet, schedule, steps_for(sampler))
    steps = np.arange(-1.0, 10.0)
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        plan = np.stack([0.5 * np.sin(0.3 * steps + 2 * j + seed) for j in range(2)], axis=1)
        guide = ChunkGuide(steps, plan, delay=3.5, gradient_steps=2, max_weight=MAX_WEIGHT)
        targets, weights = guide.on_horizon(horizon, n_obs_steps)
        pinned = int(np.count_nonzero(weights >= 1.0))
        noise = torch.randn(1, horizon, 2, generator=generator)
        conditioning = PlanConditioning(torch.from_numpy(targets).float()[None], weights, noise,
                                        alphas_cumprod, gradient_steps=2,
                                        max_weight=MAX_WEIGHT,
                                        prediction_type=prediction_type)
        before_finish = []
        chunk = denoiser(noise, torch.zeros(1, 1), generator=generator, guidance=conditioning,
                         on_step=lambda i, s: before_finish.append(s.clone()))[0].numpy()
        assert conditioning.pinned_error(before_finish[-1]) < PINNED_TOLERANCE, (sampler, seed)
        motion = np.abs(np.diff(chunk, axis=0))
        boundary = motion[pinned - 1]
        within = np.delete(motion, pinned - 1, axis=0).max(axis=0)
        plan_motion = np.abs(np.diff(plan, axis=0)).max(axis=0)
        allowed = 1.5 * np.maximum(within, plan_motion)
        assert np.all(boundary <= allowed), (sampler, seed, boundary, within, plan_motion)
