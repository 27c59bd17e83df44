"""Offline evaluation (action errors, diversity) and the plots, on real LeRobot datasets and
checkpoints made here. The known answer: a checkpoint whose action statistics have
min == max predicts exactly that constant, whatever its random weights, so its errors
against the synthetic demonstrations can be computed by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dp_ros.cli.main import main as dp_ros
from dp_ros.core.choices import SamplerChoice, SamplerChoiceError
from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE
from dp_ros.training.evaluation import (
    EvaluationError,
    action_diversity,
    action_errors,
    evaluate,
    load_dataset,
)
from dp_ros.training.plots import denoising_steps_to_show, plot_denoising, plot_episode_actions
from dp_ros.training.visualization import denoising_trace, episode_rollout
from lerobot_fixtures import make_checkpoint, make_dataset, synthetic_frame, tiny_robot

ROBOT = tiny_robot(size=32)
CONSTANT = np.array([0.1, -0.2, 0.3], dtype=np.float32)
FRAMES = 14
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", ROBOT, episodes=2, frames=FRAMES)


@pytest.fixture(scope="module")
def constant_checkpoint(tmp_path_factory):
    j = ROBOT.num_joints
    wide = {"min": torch.full((j,), -2.0), "max": torch.full((j,), 2.0), "mean": torch.zeros(j), "std": torch.ones(j)}
    fixed = {"min": torch.from_numpy(CONSTANT), "max": torch.from_numpy(CONSTANT), "mean": torch.zeros(j),
             "std": torch.ones(j)}
    image = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25), "min": torch.zeros(3, 1, 1),
             "max": torch.ones(3, 1, 1)}
    stats = {STATE_FEATURE: wide, ACTION_FEATURE: fixed, "observation.images.front": image}
    return make_checkpoint(tmp_path_factory.mktemp("constant") / "pretrained_model", ROBOT, stats=stats)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("random") / "pretrained_model", ROBOT, seed=3)


def runtime_for(checkpoint, sampler="ddim", steps=4):
    from dp_ros.core.policy_runtime import PolicyRuntime

    return PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler=sampler, num_inference_steps=steps, seed=0)


def demonstrated_actions(episode: int) -> np.ndarray:
    """The actions make_dataset wrote, recomputed from their formula."""
    return np.stack([synthetic_frame(ROBOT, i * ROBOT.control_period, episode)[ACTION_FEATURE]
                     for i in range(FRAMES)]).astype(np.float64)


# --- metrics ------------------------------------------------------------------------
def test_action_errors_known_values():
    demonstrated = np.zeros((2, 3, 2))
    predicted = np.zeros((2, 3, 2))
    predicted[..., 0] = 1.0     # joint 0 off by 1 everywhere
    predicted[0, 0, 1] = -2.0   # joint 1 off by 2 once
    predicted[1, 2, :] = 100.0  # a padded pair, not counted
    valid = np.array([[True, True, True], [True, True, False]])
    errors = action_errors(predicted, demonstrated, valid)
    assert errors.count == 5
    np.testing.assert_allclose(errors.mse_per_joint, [1.0, 4.0 / 5])
    np.testing.assert_allclose(errors.mae_per_joint, [1.0, 2.0 / 5])
    assert errors.mse == pytest.approx((5 * 1 + 4) / 10) and errors.mae == pytest.approx((5 + 2) / 10)
    with pytest.raises(ValueError, match="must both be"):
        action_errors(predicted[:, :2], demonstrated)


def test_action_diversity_known_values():
    base = np.random.default_rng(0).normal(size=(5, 4, 2))
    samples = np.stack([base + [0.5, 0.0], base - [0.5, 0.0]])  # joint 0 spread +-0.5, joint 1 identical
    per_joint, overall = action_diversity(samples)
    np.testing.assert_allclose(per_joint, [0.5, 0.0], atol=1e-12)
    assert overall == pytest.approx(0.25)


def test_sampler_choices_parse():
    assert SamplerChoice.parse("ddim:10") == SamplerChoice("ddim", 10)
    assert SamplerChoice.parse("DDPM") == SamplerChoice("ddpm", None)
    assert SamplerChoice.parse("checkpoint") == SamplerChoice()
    assert SamplerChoice.parse(SamplerChoice("ddim", 10).text) == SamplerChoice("ddim", 10)
    assert SamplerChoice.parse(SamplerChoice().text) == SamplerChoice()
    with pytest.raises(SamplerChoiceError, match="unknown sampler 'euler'"):
        SamplerChoice.parse("euler:5")
    with pytest.raises(SamplerChoiceError, match="positive whole number"):
        SamplerChoice.parse("ddim:0")


def test_evaluation_of_a_constant_policy_matches_the_hand_computed_errors(constant_checkpoint, dataset_root):
    runtime = runtime_for(constant_checkpoint)
    data = load_dataset(dataset_root, [1], runtime.n_obs_steps, runtime.n_action_steps, runtime.image_keys)
    result = evaluate(runtime, data, "ddim:4", [1], batch_size=5, diversity_samples=3, diversity_frames=2,
                      joint_names=ROBOT.joint_names)
    actions = demonstrated_actions(1)
    k = runtime.n_action_steps
    compared = np.array([actions[i + s] for i in range(FRAMES) for s in range(k) if i + s < FRAMES])
    expected_mse = ((compared - CONSTANT) ** 2).mean(axis=0)
    expected_mae = np.abs(compared - CONSTANT).mean(axis=0)
    assert result.frames == FRAMES and result.actions_compared == len(compared)
    np.testing.assert_allclose([result.mse_per_joint[n] for n in ROBOT.joint_names], expected_mse, rtol=1e-5)
    np.testing.assert_allclose([result.mae_per_joint[n] for n in ROBOT.joint_names], expected_mae, rtol=1e-5)
    assert result.mse == pytest.approx(expected_mse.mean(), rel=1e-5)
    assert result.diversity == pytest.approx(0.0, abs=1e-6)
    assert result.sampler == "ddim" and result.num_inference_steps == 4 and result.episodes == [1]


def test_rollout_of_a_constant_policy_follows_the_episode(constant_checkpoint, dataset_root):
    runtime = runtime_for(constant_checkpoint)
    data = load_dataset(dataset_root, [0], runtime.n_obs_steps, runtime.n_action_steps, runtime.image_keys)
    rollout = episode_rollout(runtime, data)
    assert rollout.chunk_starts == list(range(0, FRAMES, runtime.n_action_steps))
    np.testing.assert_allclose(rollout.demonstrated, demonstrated_actions(0), atol=1e-6)
    np.testing.assert_allclose(rollout.predicted, np.tile(CONSTANT, (FRAMES, 1)), atol=1e-6)
    trace = denoising_trace(runtime, data, frame=3)
    assert len(trace.steps) == runtime.num_inference_steps + 1
    assert all(step.shape == (runtime.horizon, ROBOT.num_joints) for step in trace.steps)
    np.testing.assert_allclose(trace.demonstrated, demonstrated_actions(0)[3:3 + runtime.n_action_steps], atol=1e-6)
    with pytest.raises(EvaluationError, match="outside the episode"):
        denoising_trace(runtime, data, frame=FRAMES)


# --- the commands --------------------------------------------------------------------
def test_eval_command_compares_samplers(random_checkpoint, dataset_root, tmp_path, capsys):
    out = tmp_path / "results.json"
    code = dp_ros(["eval", "--checkpoint", str(random_checkpoint), "--dataset-root", str(dataset_root),
                   "--sampler", "ddpm:8", "--sampler", "ddim:4", "--max-frames", "6", "--diversity-samples", "4",
                   "--diversity-frames", "2", "--device", "cpu", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "evaluating on all episodes" in printed and "ddpm:8" in printed and "ddim:4" in printed
    results = json.loads(out.read_text())
    assert [(r["sampler"], r["num_inference_steps"]) for r in results] == [("ddpm", 8), ("ddim", 4)]
    for r in results:
        assert r["episodes"] == [0, 1] and r["frames"] == 6 and set(r["mse_per_joint"]) == {"j1", "j2", "j3"}
        assert r["mae"] ** 2 <= r["mse"] + 1e-12  # Jensen: a mean of squares is at least the squared mean
        assert r["diversity"] > 0  # random weights, different noise: samples differ
        assert all(np.isfinite(v) for v in r["diversity_per_joint"].values())


def test_eval_command_explains_bad_input(random_checkpoint, dataset_root, tmp_path, capsys):
    assert dp_ros(["eval", "--checkpoint", str(random_checkpoint), "--dataset-root", str(dataset_root),
                   "--episodes", "7", "--device", "cpu"]) == 2
    assert "episodes [7] do not exist" in capsys.readouterr().err
    assert dp_ros(["eval", "--checkpoint", str(random_checkpoint), "--dataset-root", str(tmp_path),
                   "--device", "cpu"]) == 2
    assert "no LeRobot dataset at" in capsys.readouterr().err
    assert dp_ros(["eval", "--checkpoint", str(tmp_path / "none"), "--dataset-root", str(dataset_root)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def assert_png(path, min_size=(300, 300)):
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5, "the image is blank"


def test_visualize_command_writes_both_plots(random_checkpoint, dataset_root, tmp_path, capsys):
    code = dp_ros(["visualize", "--checkpoint", str(random_checkpoint), "--dataset-root", str(dataset_root),
                   "--episode", "1", "--frame", "4", "--sampler", "ddim:4", "--device", "cpu",
                   "--output-dir", str(tmp_path / "plots")])
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("denoising_ep1_frame4.png", "actions_ep1.png"):
        assert f"wrote {tmp_path / 'plots' / name}" in printed
        assert_png(tmp_path / "plots" / name)
    assert not list((tmp_path / "plots").glob("*.part"))


def test_plots_from_arrays_are_valid_pngs(tmp_path):
    rng = np.random.default_rng(1)
    steps = [rng.normal(size=(16, 2)) * (1 - i / 10) for i in range(11)]
    path = plot_denoising(steps, tmp_path / "denoise.png", ["shoulder", "elbow"], fps=10, n_obs_steps=2,
                          demonstrated=rng.normal(size=(8, 2)), shown=5)
    assert_png(path)
    path = plot_episode_actions(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), tmp_path / "ep.png",
                                ["shoulder", "elbow"], fps=10, chunk_starts=[0, 8, 16, 24])
    assert_png(path)
    assert denoising_steps_to_show(11, 5) == [0, 2, 5, 8, 10]
    assert denoising_steps_to_show(3, 6) == [0, 1, 2]
