"""The weight average (EMA) of `dp-ros train`: its decay, what the checkpoints hold, what the policy
node loads, resume and fine-tuning, with LeRobot's real trainer on a tiny dataset made here."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from lerobot_fixtures import make_dataset, tiny_robot
from ros_testing import python_process
from training_fixtures import write_train_yaml

from dp_ros.training.ema_hooks import resumed_checkpoint, take_ema_arguments
from dp_ros.training.weight_average import EmaSettings, WeightAverage, ema_decay


# --- the average itself ---------------------------------------------------------------------
def test_decay_follows_the_documented_power_law():
    settings = EmaSettings()
    assert ema_decay(1, settings) == pytest.approx(1 - 2 ** -0.75)
    assert ema_decay(100, settings) == pytest.approx(1 - 101 ** -0.75)
    assert ema_decay(10 ** 9, settings) == settings.max_decay
    delayed = EmaSettings(update_after_step=3, min_decay=0.5)
    assert [ema_decay(k, delayed) for k in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert ema_decay(4, delayed) == pytest.approx(0.5)  # 1 - 2**-0.75 = 0.405, raised to min_decay


def test_average_is_the_decayed_sum_of_the_weights_it_saw():
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = WeightAverage(EmaSettings())
    average.start(model)
    expected = torch.ones(2, 3)
    for k, value in enumerate((3.0, -2.0, 5.0), start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        decay = average.update(model)
        expected = decay * expected + (1 - decay) * value
        assert decay == pytest.approx(ema_decay(k, average.settings))
    assert torch.allclose(average.shadow["weight"], expected)
    assert not torch.allclose(average.shadow["weight"], model.weight)
    with average.swapped_in(model) as raw:
        assert torch.allclose(model.weight, expected)
        assert torch.all(raw["weight"] == 5.0)
    assert torch.all(model.weight == 5.0)  # the raw weights are back


def test_saved_average_must_match_the_policy():
    average = WeightAverage(EmaSettings())
    with pytest.raises(ValueError, match="another policy"):
        average.start(torch.nn.Linear(3, 2), {"weight": torch.zeros(2, 3)})


def test_the_entry_takes_its_arguments_out_of_lerobots():
    argv = ["--steps=4", "--dp_ros.ema.enable=true", "--dp_ros.ema.power=0.5", "--resume=true",
            "--config_path=/r/checkpoints/last/pretrained_model/train_config.json"]
    rest, settings = take_ema_arguments(argv)
    assert rest == [argv[0], argv[3], argv[4]]
    assert settings == EmaSettings(enable=True, power=0.5)
    assert take_ema_arguments(["--steps=4"]) == (["--steps=4"], None)
    assert str(resumed_checkpoint(rest)) == "/r/checkpoints/last"
    assert resumed_checkpoint(["--steps=4"]) is None


def test_bad_settings_are_refused_before_training():
    from dp_ros.training.config_loading import load_training_config
    from dp_ros.training.configuration_training import TrainingConfigError

    with pytest.raises(TrainingConfigError, match="ema.power"):
        load_training_config(None, {"ema.power": -1})
    with pytest.raises(TrainingConfigError, match="max_decay"):
        load_training_config(None, {"ema.max_decay": 1.0})


# --- with LeRobot's trainer ---------------------------------------------------------------------
def dp_ros_train(*args) -> subprocess.CompletedProcess:
    proc = python_process(["-m", "dp_ros.cli.main", "train", "--no-progress", *map(str, args)],
                          stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def weights(step_dir) -> tuple[dict, dict, int]:
    """The checkpoint's (averaged) weights, its raw weights and the average's update count."""
    state = json.loads((step_dir / "training_state" / "dp_ros_ema.json").read_text())
    return (load_file(step_dir / "pretrained_model" / "model.safetensors"),
            load_file(step_dir / "training_state" / "dp_ros_raw_model.safetensors"), state["updates"])


def assert_average_step(before: dict, after: dict, raw: dict, decay: float) -> None:
    """after == decay * before + (1 - decay) * raw, tensor by tensor, and it differs from raw."""
    differs = False
    for name, tensor in raw.items():
        if not tensor.is_floating_point():
            continue
        torch.testing.assert_close(after[name], decay * before[name] + (1 - decay) * tensor, rtol=1e-5, atol=1e-6)
        differs |= not torch.allclose(after[name], tensor)
    assert differs, "the averaged weights equal the raw ones"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", tiny_robot(size=32), episodes=2, frames=16)


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory, dataset):
    """4 steps with a checkpoint after each."""
    folder = tmp_path_factory.mktemp("ema")
    config = write_train_yaml(folder / "train.yaml", dataset, save_freq=1,
                              policy={"optimizer_lr": 1e-2, "scheduler_warmup_steps": 0})
    run_dir = folder / "run"
    dp_ros_train("--config", config, "--output-dir", run_dir)
    return config, run_dir


@pytest.mark.training
def test_checkpoints_hold_the_average_by_the_documented_decay(ema_run):
    _, run_dir = ema_run
    settings = EmaSettings()
    previous = None
    for step in range(1, 5):
        averaged, raw, updates = weights(run_dir / "checkpoints" / f"{step:06d}")
        assert updates == step
        if previous is not None:
            assert_average_step(previous, averaged, raw, ema_decay(step, settings))
        previous = averaged


@pytest.mark.training
def test_the_policy_node_loads_the_averaged_weights(ema_run):
    from dp_ros.core.policy_runtime import PolicyRuntime

    _, run_dir = ema_run
    model_dir = run_dir / "checkpoints" / "last" / "pretrained_model"
    averaged, raw, _ = weights(model_dir.parent)
    runtime = PolicyRuntime.load(model_dir, device="cpu", noise_scheduler="ddim", num_inference_steps=2, seed=0)
    loaded = runtime.policy.state_dict()
    for name, tensor in averaged.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)
    assert any(not torch.equal(loaded[n], raw[n]) for n in raw if raw[n].is_floating_point())


@pytest.mark.training
def test_resume_continues_the_average_and_the_raw_weights(ema_run, tmp_path):
    _, run_dir = ema_run
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed, symlinks=True)
    for step in ("000003", "000004"):
        shutil.rmtree(resumed / "checkpoints" / step)
    last = resumed / "checkpoints" / "last"
    last.unlink()
    os.symlink("000002", last)
    result = dp_ros_train("--output-dir", resumed, "--resume", "--steps", 3, "--set", "ema.power=0.5")
    assert "the weight average continues with the run's settings from update 2 (ema.power not applied)" \
        in result.stdout
    averaged_2, raw_2, _ = weights(resumed / "checkpoints" / "000002")
    averaged_3, raw_3, updates = weights(resumed / "checkpoints" / "000003")
    assert updates == 3
    assert_average_step(averaged_2, averaged_3, raw_3, ema_decay(3, EmaSettings()))
    # training went on from the raw weights, as the uninterrupted run did: far closer to its step 3 than a
    # start from the averaged weights would be (LeRobot's resume restores the data order and the RNG; the
    # CPU's float sums are not bit-exact)
    averaged_2_original, raw_2_original, _ = weights(run_dir / "checkpoints" / "000002")
    _, uninterrupted_raw_3, _ = weights(run_dir / "checkpoints" / "000003")
    assert distance(raw_3, uninterrupted_raw_3) < 0.05 * distance(averaged_2_original, raw_2_original)
    assert distance(raw_3, uninterrupted_raw_3) < 0.05 * distance(raw_2_original, uninterrupted_raw_3)


def distance(a: dict, b: dict) -> float:
    return sum(float((a[n] - b[n]).abs().sum()) for n in a if a[n].is_floating_point())


@pytest.mark.training
def test_finetuning_starts_the_average_from_the_checkpoints_weights(ema_run, tmp_path):
    config, run_dir = ema_run
    source = run_dir / "checkpoints" / "000004"
    out = tmp_path / "finetuned"
    dp_ros_train("--config", config, "--pretrained-path", source / "pretrained_model", "--output-dir", out,
                 "--steps", 1)
    checkpoint_weights, _, _ = weights(source)
    averaged_1, raw_1, updates = weights(out / "checkpoints" / "000001")
    assert updates == 1  # a new average, not the source run's count
    assert_average_step(checkpoint_weights, averaged_1, raw_1, ema_decay(1, EmaSettings()))


@pytest.mark.training
def test_without_the_average_checkpoints_hold_the_raw_weights(dataset, tmp_path):
    config = write_train_yaml(tmp_path / "train.yaml", dataset, steps=1, save_freq=1, ema={"enable": False})
    dp_ros_train("--config", config, "--output-dir", tmp_path / "run")
    step_dir = tmp_path / "run" / "checkpoints" / "000001"
    assert (step_dir / "pretrained_model" / "model.safetensors").is_file()
    assert not (step_dir / "training_state" / "dp_ros_ema.json").exists()


def test_the_demo_trains_without_the_average_unless_told_to():
    import argparse

    from dp_ros.cli.demo import add_arguments, settings_from
    from dp_ros.demo.pipeline import training_overrides

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert training_overrides(settings_from(parser.parse_args([])), "")["ema.enable"] is False
    assert training_overrides(settings_from(parser.parse_args(["--ema"])), "")["ema.enable"] is True
