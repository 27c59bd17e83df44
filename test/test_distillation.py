"""Consistency distillation: the loss on real (tiny) LeRobot policies, and `dp-ros distill` end to end with
LeRobot's real trainer, its checkpoint loaded by LeRobot and run by the policy node over DDS."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from dp_ros.node_params.policy import POLICY
from dp_ros.training.distillation_entry import TARGET_FILE
from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE
from lerobot_fixtures import make_checkpoint, make_dataset, synthetic_frame, tiny_robot
from ros_testing import python_process, ros_node, spin_for, spin_until, stop_process
from test_policy_node import LIMIT, ExecutionJudge, assert_at_command_rate_within_positions, listen, robot_for

ROBOT = tiny_robot(limit=LIMIT)
TINY = ["--batch-size", "4", "--set", "cpu_threads=1", "--device", "cpu", "--no-progress", "--set", "num_workers=0", "--set", "save_freq=2",
        "--set", "log_freq=1", "--set", "policy.scheduler_warmup_steps=2"]


def load_policy(folder):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    config = PreTrainedConfig.from_pretrained(folder, local_files_only=True)
    return DiffusionPolicy.from_pretrained(folder, config=config, strict=True).eval()


def training_batch(policy, size=8, seed=0):
    """A normalised batch as LeRobot's trainer gives the policy: smooth chunks, real-looking images."""
    rng = np.random.default_rng(seed)
    horizon, n_obs = policy.config.horizon, policy.config.n_obs_steps
    frames = [[synthetic_frame(ROBOT, (start + i) * ROBOT.control_period, 0) for i in range(horizon)]
              for start in rng.integers(0, 50, size)]
    images = torch.stack([torch.stack([torch.from_numpy(f["observation.images.front"]).permute(2, 0, 1)
                                       for f in chunk[:n_obs]]) for chunk in frames]).float() / 255.0
    return {STATE_FEATURE: torch.stack([torch.from_numpy(np.stack([f[STATE_FEATURE] for f in c[:n_obs]])) for c in frames]),
            "observation.images.front": (images - 0.5) / 0.25,
            ACTION_FEATURE: torch.stack([torch.from_numpy(np.stack([f[ACTION_FEATURE] for f in c])) for c in frames]) / LIMIT,
            "action_is_pad": torch.zeros(size, horizon, dtype=torch.bool)}


@pytest.fixture
def one_thread():
    """One compute thread: on the shared 2-core machine two threads are up to 20x slower under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_lcm_loss_targets_the_teachers_ode_step_and_training_lowers_it(tmp_path, one_thread):
    from dp_ros.training.distillation import ConsistencyDistillation, DistillationLoss

    teacher_dir = make_checkpoint(tmp_path / "teacher", ROBOT, seed=1)
    teacher, student = load_policy(teacher_dir), load_policy(teacher_dir)
    distillation = ConsistencyDistillation(student, teacher, DistillationLoss(target="target-network", ema_decay=0.0))
    assert distillation.grid.tolist() == [0] + list(range(4, 95, 5)) + [97]  # the top capped where signal remains
    losses = train_a_few_steps(distillation, student)
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses
    # the EMA target (decay 0 here) takes the student's weights; the teacher stays as it was
    distillation.update_target()
    for target, current in zip(distillation.target.parameters(), student.diffusion.parameters()):
        assert torch.equal(target, current)
    for frozen, original in zip(teacher.diffusion.parameters(), load_policy(teacher_dir).diffusion.parameters()):
        assert torch.equal(frozen, original)


def train_a_few_steps(distillation, student, steps=10):
    batch = training_batch(student, size=4)
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)  # the same timesteps and noise every time: the loss of one fixed problem
        loss, info = distillation(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def diffusers_ddim_end(teacher, x, start, cond, steps):
    """diffusers' own DDIM loop (the checkpoint's schedule, clipping, alpha = 1 at the end) from x at ``start``."""
    from diffusers import DDIMScheduler

    config = teacher.config
    scheduler = DDIMScheduler(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
                              beta_end=config.beta_end, beta_schedule=config.beta_schedule,
                              clip_sample=config.clip_sample, clip_sample_range=config.clip_sample_range,
                              prediction_type=config.prediction_type, set_alpha_to_one=True)
    scheduler.set_timesteps(steps)
    stride = config.num_train_timesteps // steps
    for t in range(start, -1, -stride):
        output = teacher.diffusion.unet(x, torch.full((x.shape[0],), t), global_cond=cond)
        step = scheduler.step(output, t, x)
        x = step.prev_sample if t - stride >= 0 else step.pred_original_sample
    return x


def test_the_default_loss_targets_the_end_of_the_teachers_ddim_trajectory(tmp_path, one_thread):
    """teacher-ode: the target is what diffusers' DDIM makes of the noised chunk, each sample from its own
    timestep; the student learns it with the teacher's image encoder, which stays frozen."""
    from dp_ros.lerobot_compat import diffusion_global_conditioning
    from dp_ros.training.distillation import ConsistencyDistillation, DistillationLoss, model_batch

    teacher_dir = make_checkpoint(tmp_path / "teacher", ROBOT, seed=1)
    teacher, student = load_policy(teacher_dir), load_policy(teacher_dir)
    distillation = ConsistencyDistillation(student, teacher, DistillationLoss())
    assert distillation.target is None and distillation.shared_encoder
    batch = model_batch(student.config, training_batch(student, size=3))
    with torch.no_grad():
        cond = diffusion_global_conditioning(teacher.diffusion, batch)
        x = torch.randn_like(batch[ACTION_FEATURE])
        starts = torch.tensor([97, 49, 4])
        ends = distillation.teacher_trajectory_end(x, starts, cond)
        for i, start in enumerate(starts.tolist()):
            expected = diffusers_ddim_end(teacher, x[i:i + 1], start, cond[i:i + 1], steps=10)
            torch.testing.assert_close(ends[i:i + 1], expected, atol=1e-4, rtol=1e-4)  # float64 schedule here
    assert not ends.equal(x) and ends.abs().max() <= teacher.config.clip_sample_range
    encoder = [p.clone() for p in student.diffusion.rgb_encoder.parameters()]
    losses = train_a_few_steps(distillation, student)
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses
    assert all(torch.equal(a, b) for a, b in zip(encoder, student.diffusion.rgb_encoder.parameters()))
    for frozen, original in zip(teacher.diffusion.parameters(), load_policy(teacher_dir).diffusion.parameters()):
        assert torch.equal(frozen, original)


def distill(*args, timeout=600):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "dp_ros.cli.main", "distill", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    dataset = make_dataset(root / "dataset", ROBOT, episodes=2, frames=20)
    teacher = make_checkpoint(root / "teacher" / "pretrained_model", ROBOT, seed=2)
    out = root / "student"
    result = distill("--teacher", str(teacher), "--dataset-root", str(dataset), "--output-dir", str(out),
                     "--steps", "2", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return teacher, dataset, out, result


@pytest.mark.training
def test_distill_writes_a_student_lerobot_loads_and_resume_continues_it(student):
    teacher_dir, dataset, out, result = student
    model = out / "checkpoints" / "last" / "pretrained_model"
    assert f"policy: {model}" in result.stdout
    loaded, teacher = load_policy(model), load_policy(teacher_dir)
    # same architecture, warm-started from the teacher and trained
    assert loaded.state_dict().keys() == teacher.state_dict().keys()
    assert loaded.config.down_dims == teacher.config.down_dims and loaded.config.horizon == teacher.config.horizon
    assert any(not torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), teacher.state_dict().values()))
    sampler = json.loads((model / "dp_ros_sampler.json").read_text())
    assert (sampler["noise_scheduler"], sampler["num_inference_steps"]) == ("consistency", 3)
    assert (loaded.config.noise_scheduler_type, loaded.config.num_inference_steps) == ("DDIM", 3)
    # LeRobot's own inference runs it
    obs = synthetic_frame(ROBOT, 0.0, 0)
    with torch.no_grad():
        action = loaded.select_action({STATE_FEATURE: torch.from_numpy(obs[STATE_FEATURE])[None],
                                       "observation.images.front": torch.from_numpy(
                                           obs["observation.images.front"]).permute(2, 0, 1)[None].float() / 255})
    assert action.shape == (1, 3) and torch.isfinite(action).all()
    # the default target (the teacher's trajectory's end) needs no target network, and the encoder is the teacher's
    assert not (out / "checkpoints" / "last" / "training_state" / TARGET_FILE).exists()
    encoder = [k for k in teacher.state_dict() if ".rgb_encoder." in k]
    assert encoder and all(torch.equal(loaded.state_dict()[k], teacher.state_dict()[k]) for k in encoder)
    # resume: the saved settings are used; the run goes on to the new step count
    resumed = distill("--output-dir", str(out), "--resume", "--steps", "4", *TINY)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "finished: step 4 of 4" in resumed.stdout
    # LCM's target network is kept in every checkpoint and read back on resume
    lcm = out.parent / "lcm"
    first = distill("--teacher", str(teacher_dir), "--dataset-root", str(dataset), "--output-dir", str(lcm),
                    "--target", "target-network", "--steps", "2", *TINY)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (lcm / "checkpoints" / "last" / "training_state" / TARGET_FILE).is_file()
    resumed = distill("--output-dir", str(lcm), "--resume", "--steps", "4", *TINY)
    assert resumed.returncode == 0 and "finished: step 4 of 4" in resumed.stdout, resumed.stderr[-3000:]
    assert "target network starts from the student" not in (lcm / "dp_ros_train.log").read_text()
    # nothing to distil is a configuration error: exit code 2, nothing started
    refused = distill("--dataset-root", str(dataset), "--output-dir", str(out.parent / "none"), *TINY)
    assert refused.returncode == 2 and "pass --teacher" in refused.stderr
    bad = distill("--teacher", str(teacher_dir), "--dataset-root", str(dataset), "--output-dir",
                  str(out.parent / "bad"), "--solver-intervals", "7", *TINY)
    assert bad.returncode == 2 and "must divide" in bad.stderr and not (out.parent / "bad").exists()


@contextmanager
def policy_node_with_defaults(robot_yaml, checkpoint, *params):
    """The node with no sampler parameters: the student's recorded sampler is used."""
    drivers = python_process(["test/sensor_publisher.py", str(robot_yaml)], stdin=subprocess.PIPE)
    node = python_process(["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", str(checkpoint),
                           "--robot-config", str(robot_yaml), *params])
    log = []
    try:
        yield log
    finally:
        log.append(stop_process(node))
        stop_process(drivers)


@pytest.mark.dds
@pytest.mark.training
def test_the_policy_node_runs_the_student_over_dds_within_the_limits(student, tmp_path):
    _, _, out, _ = student
    robot, robot_yaml = robot_for(tmp_path, command_type="joint_trajectory", trajectory_mode="chunk",
                                  interpolate_from="desired", acceleration_limit=20.0)
    with policy_node_with_defaults(robot_yaml, out) as log, ros_node("listener") as node:
        judge = ExecutionJudge(node, robot)
        commands, statuses = listen(node, robot)
        assert spin_until(node, lambda: statuses and statuses[-1].chunks_produced >= 8, 90), log
        first = len(commands)
        spin_for(node, 2.0)
    assert "consistency x3 steps (checkpoint)" in log[-1]
    received = commands[first:]
    assert_at_command_rate_within_positions(received, robot, LIMIT)
    assert judge.ledger.violations == 0, judge.ledger.worst.describe()
    assert statuses[-1].state_name == "running" and statuses[-1].self_check_failures == 0


@pytest.mark.training
def test_the_student_with_guided_continues_the_plan(student):
    """The continuation bars of guided chunks hold for the student's consistency sampler (inpaint -> map ->
    re-noise; gradient guidance through the one-step map): the pinned prefix is the plan, and with the node's
    default (clean-sample guidance on 2 steps) the rest of the overlap is pulled at least halfway to the plan.
    Inpainting alone pulls less at 2 steps (measured: about a quarter): there the gradient guidance helps."""
    from dp_ros.core.chunk_guidance import ChunkGuide
    from dp_ros.core.policy_runtime import PolicyRuntime

    _, _, out, _ = student
    runtime = PolicyRuntime.load(out, device="cpu", seed=0)
    assert (runtime.noise_scheduler, runtime.num_inference_steps) == ("consistency", 3)
    observations = [synthetic_frame(ROBOT, t * ROBOT.control_period, 1) for t in range(runtime.n_obs_steps)]
    steps = np.arange(-1.0, 14.0)
    plan = np.stack([0.4 * np.sin(0.3 * steps + j) for j in range(3)], axis=1)
    distances = []
    gradient = dict(gradient_steps=2, max_weight=POLICY["guidance_max_weight"].default)
    for guide in (None, ChunkGuide(steps, plan, delay=3.2), ChunkGuide(steps, plan, delay=3.2, **gradient)):
        errors = []
        for draw in range(4):
            runtime.generator.manual_seed(draw)
            noise = torch.randn(1, runtime.horizon, 3, generator=torch.Generator().manual_seed(draw))
            chunk = runtime.predict_chunk(observations, noise=noise, guide=guide)
            if guide is not None:
                assert chunk.shape == (runtime.future_steps, 3)
                np.testing.assert_allclose(chunk[:4], plan[1:5], atol=1e-5)  # pinned: due before it arrives
            errors.append(np.abs(chunk[4:7] - plan[5:8]).mean())
        distances.append(np.mean(errors))
    unguided, inpainted, gradient = distances
    assert inpainted < unguided and gradient < inpainted, distances
    assert gradient < 0.5 * unguided, distances
