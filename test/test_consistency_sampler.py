"""The consistency sampler on real (tiny, randomly initialised) LeRobot checkpoints, without ROS."""
import numpy as np
import pytest
import torch

from dp_ros.core.consistency import (
    ConsistencyFunction,
    ConsistencySampler,
    boundary_coefficients,
    trailing_timesteps,
)
from dp_ros.core.policy_runtime import PolicyRuntime
from dp_ros.core.samplers import Denoiser, NoiseSchedule, make_scheduler
from lerobot_fixtures import make_checkpoint, tiny_robot

ROBOT = tiny_robot()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "pretrained_model", ROBOT, seed=3)
    return PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler="consistency", num_inference_steps=2, seed=0)


def conditioning(runtime, batch=3, seed=0):
    """Noise and a real observation encoding (random histories through the checkpoint's encoder)."""
    from dp_ros.lerobot_compat import diffusion_global_conditioning

    rng = np.random.default_rng(seed)
    histories = [[{"observation.state": rng.normal(size=3).astype(np.float32),
                   "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)}
                  for _ in range(runtime.n_obs_steps)] for _ in range(batch)]
    batches = [runtime.history_to_batch(h) for h in histories]
    stacked = runtime.preprocessor({k: torch.cat([b[k] for b in batches]) for k in batches[0]})
    model_batch = {"observation.state": stacked["observation.state"],
                   "observation.images": torch.stack([stacked["observation.images.front"]], dim=-4)}
    with torch.no_grad():
        cond = diffusion_global_conditioning(runtime.policy.diffusion, model_batch)
    noise = torch.randn((batch, runtime.horizon, runtime.action_dim), generator=torch.Generator().manual_seed(seed))
    return noise, cond


def test_the_one_step_map_is_the_identity_at_t0_and_its_definition_elsewhere(runtime):
    schedule = NoiseSchedule.from_config(runtime.config)
    function = ConsistencyFunction(schedule)
    unet = runtime.policy.diffusion.unet
    x, cond = conditioning(runtime)
    with torch.no_grad():
        at_zero = function(unet, x, torch.zeros(3, dtype=torch.long), cond)
        torch.testing.assert_close(at_zero, x, rtol=0, atol=0)  # boundary condition: f(x, 0) = x exactly
        t = torch.tensor([5, 40, 99])
        mapped = function(unet, x, t, cond)
        eps = unet(x, t, global_cond=cond)
    alpha_bar = function.alphas_cumprod[t].float().view(-1, 1, 1)
    clean = ((x - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()).clamp(-1, 1)
    s = 10.0 * t.double()
    c_skip = (0.25 / (s ** 2 + 0.25)).float().view(-1, 1, 1)
    c_out = (s / (s ** 2 + 0.25).sqrt()).float().view(-1, 1, 1)
    torch.testing.assert_close(mapped, c_skip * x + c_out * clean, rtol=1e-5, atol=1e-6)
    c_skip0, c_out0 = boundary_coefficients(torch.tensor([0]))
    assert float(c_skip0) == 1.0 and float(c_out0) == 0.0


def test_with_the_teacher_as_student_two_steps_are_ddim_two(runtime):
    """Deterministic re-noising makes multistep consistency sampling DDIM: same noise, same chunk."""
    schedule = NoiseSchedule.from_config(runtime.config)
    unet = runtime.policy.diffusion.unet
    x, cond = conditioning(runtime, seed=1)
    with torch.no_grad():
        consistency = ConsistencySampler(unet, schedule, 2, fresh_noise=False, timesteps=[99, 49])(x, cond)
        ddim = Denoiser(unet, make_scheduler("ddim", schedule), 2)(x, cond)
    assert consistency.abs().max() > 0.05  # a real chunk, not zeros
    # the only difference is c_skip(t) * x at t = 99 and 49, about 1e-6 of x
    torch.testing.assert_close(consistency, ddim, rtol=0, atol=1e-4)
    assert trailing_timesteps(100, 2) == [99, 49] and trailing_timesteps(100, 4) == [99, 74, 49, 24]
    # the student's own timesteps: the 4-step spacing's highest, the top capped where LeRobot's cosine schedule
    # still has 2.5% signal
    assert [ConsistencySampler(unet, schedule, k).timesteps for k in (1, 2, 3, 4)] == [
        [97], [97, 74], [97, 74, 49], [97, 74, 49, 24]]


def test_fresh_noise_makes_draws_differ_and_one_step_is_the_map(runtime):
    schedule = NoiseSchedule.from_config(runtime.config)
    unet = runtime.policy.diffusion.unet
    x, cond = conditioning(runtime, seed=2)
    sampler = ConsistencySampler(unet, schedule, 2)
    with torch.no_grad():
        a = sampler(x, cond, generator=torch.Generator().manual_seed(0))
        b = sampler(x, cond, generator=torch.Generator().manual_seed(1))
        one = ConsistencySampler(unet, schedule, 1)(x, cond)
        direct = ConsistencyFunction(schedule)(unet, x, torch.full((3,), 97), cond)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(one, direct)


def test_the_runtime_samples_chunks_with_it_and_refuses_too_many_steps(runtime, tmp_path):
    rng = np.random.default_rng(0)
    history = [{"observation.state": rng.normal(size=3).astype(np.float32),
                "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)} for _ in range(2)]
    chunk = runtime.predict_chunk(history)
    assert chunk.shape == (runtime.n_action_steps, 3) and np.all(np.isfinite(chunk))
    assert "consistency x2 steps (parameters)" in runtime.describe()
    from dp_ros.core.policy_runtime import CheckpointError

    with pytest.raises(CheckpointError, match="1 to 4 steps"):
        PolicyRuntime.load(runtime.checkpoint, device="cpu", noise_scheduler="consistency", num_inference_steps=8)
