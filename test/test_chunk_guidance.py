"""Guided chunk continuation on real (tiny, randomly initialised) LeRobot checkpoints, without ROS."""
import numpy as np
import pytest
import torch

from dp_ros.core.chunk_guidance import ChunkGuide, PlanConditioning, soft_mask
from dp_ros.core.policy_runtime import CheckpointError, PolicyRuntime
from dp_ros.core.samplers import SAMPLERS, NoiseSchedule, make_denoiser
from dp_ros.node_params.policy import POLICY
from lerobot_fixtures import make_checkpoint, tiny_robot

ROBOT = tiny_robot()
MAX_WEIGHT = POLICY["guidance_max_weight"].default  # the policy node's


def plan_at(steps, plan, at):
    return np.stack([np.interp(at, steps, plan[:, j]) for j in range(plan.shape[1])], axis=1)


def wavy_plan(first_step, count, joints=3):
    steps = first_step + np.arange(count, dtype=float)
    return steps, np.stack([0.6 * np.sin(0.4 * steps + j) for j in range(joints)], axis=1)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "pretrained_model", ROBOT)
    return PolicyRuntime.load(checkpoint, device="cpu", seed=0)


def with_sampler(runtime, sampler, steps=4):
    """The loaded checkpoint with another sampler (loading it once keeps the tests quick)."""
    runtime.denoiser = make_denoiser(sampler, runtime.policy.diffusion.unet, NoiseSchedule.from_config(runtime.config),
                                     steps)
    return runtime


@pytest.fixture(scope="module")
def sample_predicting(tmp_path_factory):
    """A checkpoint whose network predicts the clean sample (LeRobot's prediction_type: sample)."""
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("sample") / "pretrained_model", ROBOT, seed=3,
                                 prediction_type="sample")
    return PolicyRuntime.load(checkpoint, device="cpu", seed=0)


@pytest.fixture(scope="module")
def skewed_checkpoint(tmp_path_factory):
    """Three observation steps and action statistics far from [-1, 1]: offsets and normalisation must be right."""
    image = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25),
             "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}
    state = {"min": torch.full((3,), -2.0), "max": torch.full((3,), 2.0), "mean": torch.zeros(3), "std": torch.ones(3)}
    action = {"min": torch.tensor([-0.5, -3.0, 0.0]), "max": torch.tensor([1.5, 1.0, 4.0]),
              "mean": torch.zeros(3), "std": torch.ones(3)}
    stats = {"observation.state": state, "action": action, "observation.images.front": image}
    return make_checkpoint(tmp_path_factory.mktemp("skewed") / "pretrained_model", ROBOT, seed=5, stats=stats,
                           n_obs_steps=3, horizon=16, n_action_steps=6)


def history(runtime, seed=0):
    rng = np.random.default_rng(seed)
    return [{"observation.state": rng.normal(size=3).astype(np.float32),
             "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)}
            for _ in range(runtime.n_obs_steps)]


def test_the_plan_is_placed_on_the_horizon_after_the_observation_steps():
    steps, plan = wavy_plan(-1.5, 10)
    for n_obs_steps in (2, 3):
        targets, weights = ChunkGuide(steps, plan, delay=2.5).on_horizon(16, n_obs_steps)
        offsets = np.arange(16) - (n_obs_steps - 1)
        covered = (offsets >= -1.5) & (offsets <= 7.5)
        np.testing.assert_allclose(targets[covered], plan_at(steps, plan, offsets[covered]))
        # pinned while due before the chunk arrives, then decaying, free after the plan's end
        np.testing.assert_array_equal(weights[covered & (offsets < 2.5)], 1.0)
        guided = weights[covered & (offsets >= 2.5)]
        assert np.all(guided > 0) and np.all(guided < 1) and np.all(np.diff(guided) < 0)
        np.testing.assert_allclose(guided, soft_mask(len(guided)))
        np.testing.assert_array_equal(weights[~covered], 0.0)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("gradient_steps", [0, 3])
def test_the_returned_pinned_prefix_equals_the_plan_for_every_sampler(loaded, sampler, gradient_steps):
    runtime = with_sampler(loaded, sampler)
    steps, plan = wavy_plan(-1.0, 12)
    guide = ChunkGuide(steps, plan, delay=3.2, gradient_steps=gradient_steps, max_weight=MAX_WEIGHT)
    chunk = runtime.predict_chunk(history(runtime), guide=guide)
    assert chunk.shape == (runtime.future_steps, 3) and np.all(np.isfinite(chunk))
    np.testing.assert_allclose(chunk[:4], plan_at(steps, plan, np.arange(4.0)), atol=1e-5)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_an_empty_plan_is_exactly_the_unguided_sampler(loaded, sampler):
    runtime = with_sampler(loaded, sampler)
    observations = history(runtime)
    noise = torch.randn(1, runtime.horizon, 3, generator=torch.Generator().manual_seed(7))
    runtime.generator.manual_seed(11)
    unguided = runtime.predict_chunk(observations, noise=noise)
    runtime.generator.manual_seed(11)
    guided = runtime.predict_chunk(observations, noise=noise, guide=ChunkGuide())
    assert guided.shape == (runtime.future_steps, 3)
    np.testing.assert_array_equal(guided[:runtime.n_action_steps], unguided)


def test_offsets_and_normalisation_agree_with_lerobots_processors(skewed_checkpoint):
    runtime = PolicyRuntime.load(skewed_checkpoint, device="cpu", noise_scheduler="ddim", num_inference_steps=5,
                                 seed=0)
    assert runtime.n_obs_steps == 3 and runtime.future_steps == 14
    steps = np.arange(-2.0, 9.0)
    plan = np.stack([0.5 + 0.8 * np.sin(0.5 * steps), -1.0 + 1.5 * np.cos(0.3 * steps), 2.0 + 0.1 * steps], axis=1)
    # what the network sees at every call (the real UNet still computes each step)
    unet, inputs = runtime.denoiser.unet, []

    def watched_unet(sample, timestep, global_cond):
        inputs.append((int(timestep[0]), sample.clone()))
        return unet(sample, timestep, global_cond=global_cond)

    runtime.denoiser.unet = watched_unet
    noise = torch.randn(1, 16, 3, generator=torch.Generator().manual_seed(2))
    chunk = runtime.predict_chunk(history(runtime, seed=3), noise=noise, guide=ChunkGuide(steps, plan, delay=4.0))
    # the returned chunk starts at the newest observation's time: its first 4 actions are the plan's steps 0..3
    np.testing.assert_allclose(chunk[:4], plan[2:6], atol=1e-5)
    # LeRobot's min-max normalisation with the checkpoint's statistics, as its preprocessor applies it
    low, high = np.array([-0.5, -3.0, 0.0]), np.array([1.5, 1.0, 4.0])
    expected = torch.from_numpy((plan - low) / (high - low) * 2 - 1).float()
    batch = runtime.history_to_batch(history(runtime, seed=3))
    batch["action"] = torch.from_numpy(plan).float()[None]
    assert torch.allclose(runtime.preprocessor(batch)["action"][0], expected, atol=1e-6)
    # the pinned steps -2..3 sit at horizon indices 0..5 of every noisy sample, noised to the call's step
    assert len(inputs) == 5
    alphas_cumprod = runtime.denoiser.alphas_cumprod
    for timestep, sample in inputs:
        alpha_bar = float(alphas_cumprod[timestep])
        known = alpha_bar**0.5 * expected[:6] + (1 - alpha_bar) ** 0.5 * noise[0, :6]
        assert torch.allclose(sample[0, :6], known, atol=1e-5), timestep


def test_guidance_pulls_the_overlap_towards_the_plan(loaded):
    """Beyond the pinned prefix the chunk is guided, not forced: closer to the plan than without guidance."""
    runtime = with_sampler(loaded, "ddim", 8)
    observations = history(runtime)
    steps = np.arange(-1.0, 14.0)
    plan = np.full((steps.size, 3), 0.4)
    distances = []
    for guide in (None, ChunkGuide(steps, plan, delay=2.0)):
        errors = []
        for draw in range(4):
            noise = torch.randn(1, runtime.horizon, 3, generator=torch.Generator().manual_seed(draw))
            chunk = runtime.predict_chunk(observations, noise=noise, guide=guide)
            errors.append(np.abs(chunk[2:5] - 0.4).mean())
        distances.append(np.mean(errors))
    assert distances[1] < 0.5 * distances[0], distances


def test_guidance_pulls_a_sample_predicting_checkpoint_towards_the_plan(sample_predicting):
    """prediction_type: sample: the network's output is the clean sample itself (not noise), guided the same way."""
    runtime = with_sampler(sample_predicting, "ddim", 8)
    assert runtime.config.prediction_type == "sample"
    observations = history(runtime)
    steps = np.arange(-1.0, 14.0)
    plan = np.full((steps.size, 3), 0.4)
    distances = []
    gradient = ChunkGuide(steps, plan, delay=2.0, gradient_steps=2, max_weight=MAX_WEIGHT)
    for guide in (None, ChunkGuide(steps, plan, delay=2.0), gradient):
        errors = []
        for draw in range(4):
            noise = torch.randn(1, runtime.horizon, 3, generator=torch.Generator().manual_seed(draw))
            chunk = runtime.predict_chunk(observations, noise=noise, guide=guide)
            assert np.all(np.isfinite(chunk))
            errors.append(np.abs(chunk[2:5] - 0.4).mean())
        distances.append(np.mean(errors))
    assert distances[1] < 0.5 * distances[0], distances
    assert distances[2] < 0.5 * distances[0], distances


def test_other_prediction_types_are_refused_by_name(sample_predicting, tmp_path):
    with pytest.raises(ValueError, match="v_prediction"):
        PlanConditioning(torch.zeros(1, 16, 3), np.zeros(16), torch.zeros(1, 16, 3), torch.linspace(0.99, 0.01, 100),
                         prediction_type="v_prediction")
    import json
    import shutil
    folder = shutil.copytree(sample_predicting.checkpoint, tmp_path / "pretrained_model")
    config = json.loads((folder / "config.json").read_text())
    config["prediction_type"] = "v_prediction"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="prediction_type 'v_prediction' is not supported"):
        PolicyRuntime.load(folder, device="cpu")


def test_gradient_guidance_without_its_largest_weight_is_refused():
    """A weight of 0 would turn the guidance off without a word."""
    with pytest.raises(ValueError, match="max_weight above 0"):
        ChunkGuide(np.arange(3.0), np.zeros((3, 2)), delay=1.0, gradient_steps=2)
    with pytest.raises(ValueError, match="max_weight above 0"):
        PlanConditioning(torch.zeros(1, 16, 3), np.zeros(16), torch.zeros(1, 16, 3), torch.linspace(0.99, 0.01, 100),
                         gradient_steps=1)
    assert ChunkGuide(np.arange(3.0), np.zeros((3, 2)), delay=1.0).gradient_steps == 0  # inpainting only
