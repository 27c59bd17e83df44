"""PolicyRuntime on real (tiny, randomly initialised) LeRobot checkpoints."""
import json
import shutil

import numpy as np
import pytest
import torch

from dp_ros.core.policy_runtime import CheckpointError, PolicyRuntime, resolve_checkpoint
from lerobot_fixtures import make_checkpoint, tiny_robot

ROBOT = tiny_robot()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "pretrained_model", ROBOT)


@pytest.mark.parametrize("sampler,steps", [(None, None), ("ddim", 10), ("dpmsolver++", 6), ("unipc", 6),
                                           ("sde-dpmsolver++", 5)])
def test_every_sampler_gives_a_chunk_of_the_right_shape(checkpoint, sampler, steps):
    runtime = PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler=sampler, num_inference_steps=steps, seed=0)
    history = [runtime.neutral_observation() for _ in range(runtime.n_obs_steps)]
    chunk = runtime.predict_chunk(history)
    assert chunk.shape == (8, 3) and np.all(np.isfinite(chunk))
    # without a sampler of its own a checkpoint runs with dp_ros's default (the README's fastest that kept success)
    assert (runtime.noise_scheduler, runtime.num_inference_steps) == (sampler or "sde-dpmsolver++", steps or 5)
    # actions are unnormalised into the range the checkpoint's stats describe
    assert np.all(chunk >= -2.0 - 1e-5) and np.all(chunk <= 2.0 + 1e-5)


def test_a_sampler_recorded_in_the_checkpoint_is_used_unless_the_parameters_say_otherwise(tmp_path):
    from dp_ros.core.checkpoint_sampler import write_checkpoint_sampler
    from dp_ros.core.policy_runtime import CheckpointError

    folder = make_checkpoint(tmp_path / "pretrained_model", ROBOT)
    write_checkpoint_sampler(folder, "consistency", 3)
    runtime = PolicyRuntime.load(folder, device="cpu")
    assert (runtime.noise_scheduler, runtime.num_inference_steps, runtime.sampler_source) == ("consistency", 3, "checkpoint")
    runtime = PolicyRuntime.load(folder, device="cpu", noise_scheduler="ddim", num_inference_steps=4)
    assert (runtime.noise_scheduler, runtime.num_inference_steps) == ("ddim", 4)
    assert PolicyRuntime.load(folder, device="cpu", num_inference_steps=1).num_inference_steps == 1
    (folder / "dp_ros_sampler.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="dp_ros_sampler.json is not valid JSON"):
        PolicyRuntime.load(folder, device="cpu")


def test_same_noise_same_sampler_matches_stock_lerobot(checkpoint):
    from diffusers import DDIMScheduler
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors

    runtime = PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler="ddim", num_inference_steps=10)
    rng = np.random.default_rng(0)
    history = [{"observation.state": rng.normal(size=3).astype(np.float32),
                "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)} for _ in range(2)]
    noise = torch.randn(1, 16, 3, generator=torch.Generator().manual_seed(3))
    ours = runtime.predict_chunk(history, noise=noise)

    stock = DiffusionPolicy.from_pretrained(checkpoint)
    config = stock.config
    stock.diffusion.noise_scheduler = DDIMScheduler(
        num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
        clip_sample=config.clip_sample, prediction_type=config.prediction_type, timestep_spacing="trailing")
    stock.diffusion.num_inference_steps = 10
    pre, post = make_pre_post_processors(config, pretrained_path=str(checkpoint))
    batch = pre(runtime.history_to_batch(history))
    expected = post(stock.predict_action_chunk(batch, noise=noise)).numpy()[0]
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_denoising_steps_are_returned_for_plots(checkpoint):
    runtime = PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler="ddim", num_inference_steps=5, seed=1)
    batch = runtime.history_to_batch([runtime.neutral_observation()] * 2)
    actions, steps = runtime.predict_from_batch(batch, return_denoising=True)
    assert actions.shape == (1, 8, 3)
    assert len(steps) == 6 and all(s.shape == (1, 16, 3) for s in steps)
    np.testing.assert_allclose(steps[-1][:, 1:9], actions, atol=1e-5)


def test_n_action_steps_override_and_limits(checkpoint):
    runtime = PolicyRuntime.load(checkpoint, device="cpu", n_action_steps=12, num_inference_steps=2)
    assert runtime.predict_chunk([runtime.neutral_observation()] * 2).shape == (12, 3)
    with pytest.raises(CheckpointError, match="n_action_steps"):
        PolicyRuntime.load(checkpoint, device="cpu", n_action_steps=16)
    with pytest.raises(CheckpointError, match="num_train_timesteps"):
        PolicyRuntime.load(checkpoint, device="cpu", num_inference_steps=500)


def test_resolves_a_training_run_folder(checkpoint, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(checkpoint, run / "checkpoints" / "last" / "pretrained_model")
    assert resolve_checkpoint(run) == run / "checkpoints" / "last" / "pretrained_model"
    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no config.json"):
        resolve_checkpoint(tmp_path)


def test_checks_the_robot_interface(checkpoint):
    runtime = PolicyRuntime.load(checkpoint, device="cpu", num_inference_steps=2)
    runtime.check_robot(ROBOT)
    with pytest.raises(CheckpointError, match="3 values but the robot has 4 joints"):
        runtime.check_robot(tiny_robot(joints=("a", "b", "c", "d")))
    with pytest.raises(CheckpointError, match="64x64"):
        runtime.check_robot(tiny_robot(size=64))
    with pytest.raises(CheckpointError, match=r"needs cameras \['observation.images.front'\]"):
        runtime.check_robot(tiny_robot(cameras=("wrist",)))
    with pytest.raises(CheckpointError, match="not trained with"):
        runtime.check_robot(tiny_robot(cameras=("front", "wrist")))


def test_refuses_pickles_missing_processors_and_other_policies(checkpoint, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(checkpoint, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only from safetensors"):
        PolicyRuntime.load(pickled, device="cpu")
    bare = tmp_path / "bare"
    shutil.copytree(checkpoint, bare)
    (bare / "policy_preprocessor.json").unlink()
    with pytest.raises(CheckpointError, match="policy_preprocessor.json"):
        PolicyRuntime.load(bare, device="cpu")
    act = tmp_path / "act"
    shutil.copytree(checkpoint, act)
    config = json.loads((act / "config.json").read_text())
    config["type"] = "act"
    (act / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'act' policy"):
        PolicyRuntime.load(act, device="cpu")


def test_history_of_the_wrong_shape_is_a_clear_error(checkpoint):
    runtime = PolicyRuntime.load(checkpoint, device="cpu", num_inference_steps=2)
    with pytest.raises(ValueError, match="n_obs_steps=2"):
        runtime.predict_chunk([runtime.neutral_observation()])
    bad = runtime.neutral_observation()
    bad["observation.images.front"] = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        runtime.predict_chunk([bad, bad])
