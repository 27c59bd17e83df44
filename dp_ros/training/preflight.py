"""Checks made before a trainer starts, so mistakes cost seconds, not a failed run.

Reads only JSON files (the dataset's meta/info.json, a checkpoint's config.json
and train_config.json): no LeRobot or torch import. Finds a missing dataset, a
checkpoint whose features do not match the dataset (fine-tuning), a crop larger
than the images, an output folder that already holds a run, and a resume with
nothing to resume.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dp_ros.robot_interface import ACTION_FEATURE, IMAGE_FEATURE_PREFIX, STATE_FEATURE
from dp_ros.training.accelerate_launch import machine_rank
from dp_ros.training.configuration_training import (
    CHECKPOINTS_DIR,
    PRETRAINED_MODEL_DIR,
    RESUME_OPTIONS,
    TRAIN_CONFIG_FILE,
    TrainingConfig,
    TrainingConfigError,
)


class PreflightError(TrainingConfigError):
    """Training cannot start: the dataset, checkpoint or output folder is not usable."""


class FeatureMismatchError(PreflightError):
    """The checkpoint (or robot interface) and the dataset describe different robots."""


@dataclass
class PreflightReport:
    """What the checks found; the launcher starts the trainer from this."""

    dataset_root: Path | None = None
    """The dataset folder (None when resuming: the run's saved config names it)."""
    pretrained_model_dir: Path | None = None
    """The checkpoint fine-tuning starts from (its pretrained_model/ folder)."""
    resume_step: int = 0
    """The step the resumed run continues from (0 for a new run)."""
    total_steps: int = 0
    """The steps the run will reach (a resume without a given ``steps`` keeps the run's own)."""
    notes: list[str] = field(default_factory=list)
    """Things worth telling the user (ignored options, unused cameras, ...)."""
    owns_output_dir: bool = True
    """False on the other machines of a multi-machine run: the main machine (machine rank 0) checks and
    creates output_dir."""


def lerobot_home() -> Path:
    """LeRobot's local dataset home ($HF_LEROBOT_HOME, as LeRobot computes it)."""
    hf_home = Path(os.getenv("HF_HOME", "~/.cache/huggingface")).expanduser()
    return Path(os.getenv("HF_LEROBOT_HOME", hf_home / "lerobot")).expanduser()


def dataset_root(config: TrainingConfig) -> Path:
    if config.dataset.root:
        return Path(config.dataset.root).expanduser().resolve()
    return lerobot_home() / config.dataset.repo_id


def read_dataset_info(root: Path) -> dict[str, Any]:
    """The dataset's meta/info.json, or a PreflightError saying what is wrong."""
    info_path = Path(root) / "meta" / "info.json"
    if not info_path.is_file():
        raise PreflightError(f"no LeRobot dataset at {root} ({info_path} is missing); set dataset.root to the "
                             "folder that holds meta/, data/ and videos/ (record one with the dp_ros recorder or "
                             "convert a bag)")
    try:
        return json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PreflightError(f"cannot read {info_path}: {exc}") from exc


def dataset_policy_shapes(info: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """State, image and action shapes of a dataset as a policy sees them (images channel-first)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for key, feature in info.get("features", {}).items():
        shape = tuple(int(d) for d in feature.get("shape", ()))
        if key.startswith(IMAGE_FEATURE_PREFIX) and feature.get("dtype") in ("video", "image"):
            names = feature.get("names") or ["height", "width", "channels"]
            if list(names[:3]) == ["channels", "height", "width"]:
                shapes[key] = shape
            else:
                shapes[key] = (shape[2], shape[0], shape[1])
        elif key in (STATE_FEATURE, ACTION_FEATURE):
            shapes[key] = shape
    return shapes


def resolve_pretrained_model_dir(path: str | Path) -> Path:
    """A pretrained_model/ folder from it, a checkpoint folder or a training output folder."""
    path = Path(path).expanduser().resolve()
    for candidate in (path, path / PRETRAINED_MODEL_DIR, path / CHECKPOINTS_DIR / "last" / PRETRAINED_MODEL_DIR):
        if (candidate / "config.json").is_file() and (candidate / "model.safetensors").is_file():
            return candidate.resolve()  # the step folder itself: checkpoints/last moves as training goes on
    raise PreflightError(f"no LeRobot checkpoint at {path}: expected config.json and model.safetensors in it, in "
                         f"{path / PRETRAINED_MODEL_DIR} or in "
                         f"{path / CHECKPOINTS_DIR / 'last' / PRETRAINED_MODEL_DIR}")


def read_checkpoint_config(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((model_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PreflightError(f"cannot read the checkpoint config {model_dir / 'config.json'}: {exc}") from exc


def checkpoint_policy_shapes(checkpoint_config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for section in ("input_features", "output_features"):
        for key, feature in (checkpoint_config.get(section) or {}).items():
            shapes[key] = tuple(int(d) for d in feature.get("shape", ()))
    return shapes


def checkpoint_joint_names(model_dir: Path) -> list[str] | None:
    """Joint names of the dataset the checkpoint was trained on, when that dataset is still around."""
    train_config = model_dir / TRAIN_CONFIG_FILE
    try:
        dataset = json.loads(train_config.read_text()).get("dataset") or {}
        root = dataset.get("root") or (lerobot_home() / dataset.get("repo_id", ""))
        info = json.loads((Path(root) / "meta" / "info.json").read_text())
        return list(info["features"][ACTION_FEATURE]["names"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def feature_mismatches(expected: dict[str, tuple[int, ...]], dataset: dict[str, tuple[int, ...]],
                       expected_name: str) -> tuple[list[str], list[str]]:
    """(problems, notes) comparing the features ``expected_name`` needs with the dataset's."""
    problems, notes = [], []
    for key, shape in expected.items():
        if key not in dataset:
            problems.append(f"{key}: the {expected_name} needs it (shape {list(shape)}) but the dataset has no such "
                            f"feature (it has {sorted(dataset)})")
        elif tuple(dataset[key]) != tuple(shape):
            problems.append(f"{key}: shape {list(shape)} in the {expected_name}, {list(dataset[key])} in the dataset")
    for key in sorted(set(dataset) - set(expected)):
        if key.startswith(IMAGE_FEATURE_PREFIX):
            notes.append(f"{key} is in the dataset but not an input of the {expected_name}; it will not be used")
    return problems, notes


def check_robot_interface(robot_config: str, info: dict[str, Any]) -> None:
    """The dataset must describe the robot of the robot interface YAML (joints, order, cameras)."""
    from dp_ros.robot_interface import RobotInterfaceError, load_robot_interface

    try:
        robot = load_robot_interface(robot_config)
    except RobotInterfaceError as exc:
        raise PreflightError(f"robot_config: {exc}") from exc
    expected = {key: tuple(f["shape"]) for key, f in robot.lerobot_features().items()}
    expected = {k: ((s[2], s[0], s[1]) if k.startswith(IMAGE_FEATURE_PREFIX) else s) for k, s in expected.items()}
    problems, _ = feature_mismatches(expected, dataset_policy_shapes(info), "robot interface")
    names = (info.get("features", {}).get(ACTION_FEATURE) or {}).get("names")
    if names and list(names) != robot.joint_names:
        problems.append(f"action joints {list(names)} in the dataset, {robot.joint_names} in the robot interface")
    if problems:
        raise FeatureMismatchError(f"the dataset does not match the robot interface {robot_config}:\n  - "
                                   + "\n  - ".join(problems))


def check_output_dir(config: TrainingConfig) -> int:
    """For a new run: output_dir must not hold a run. For a resume: it must. Returns the resume step."""
    out = config.output_path
    last = config.last_checkpoint_dir
    if config.mode == "resume":
        train_config = last / PRETRAINED_MODEL_DIR / TRAIN_CONFIG_FILE
        step_file = last / "training_state" / "training_step.json"
        if not train_config.is_file() or not step_file.is_file():
            raise PreflightError(f"nothing to resume in {out}: {last} with pretrained_model/{TRAIN_CONFIG_FILE} and "
                                 "training_state/ is missing; start a new run (resume: false) or point output_dir "
                                 "at an earlier run")
        try:
            return int(json.loads(step_file.read_text())["step"])
        except (OSError, ValueError, KeyError) as exc:
            raise PreflightError(f"cannot read the step of the checkpoint to resume ({step_file}): {exc}") from exc
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            return 0  # an empty folder holds nothing; the launcher removes it (LeRobot refuses any existing one)
        if (out / CHECKPOINTS_DIR).is_dir():
            raise PreflightError(f"output_dir {out} already holds a training run; set resume: true (dp-ros train "
                                 "--resume) to continue it, or choose a new output_dir")
        raise PreflightError(f"output_dir {out} already exists and is not empty; choose a new output_dir")
    return 0


def check_processes(config: TrainingConfig) -> list[str]:
    """Enough GPUs for the processes of this machine; notes on what several processes change."""
    from dp_ros.training.configuration_training import resolve_device

    processes = config.accelerate.num_processes or 1
    if processes < 2:
        return []
    on_one_machine = not config.accelerate.config_file and not any(
        a.startswith("--num_machines") for a in config.accelerate.launch_args)
    if on_one_machine and resolve_device(config.policy.device) == "cuda":
        import torch

        gpus = torch.cuda.device_count()
        if processes > gpus:
            raise PreflightError(f"accelerate.num_processes is {processes} but this machine has {gpus} GPU(s): one "
                                 "process per GPU (or set policy.device: cpu)")
    batch = config.batch_size if config.mode != "resume" or "batch_size" in config.given else "the run's batch_size"
    return [f"{processes} training processes: each takes {batch} samples per step, so a step sees "
            f"{processes} x {batch} samples; LeRobot keeps the learning rate and steps as given (scale them "
            "yourself if you want the same number of epochs)"]


def run_preflight(config: TrainingConfig) -> PreflightReport:
    """All checks for ``config``; raises PreflightError (or FeatureMismatchError) with what to do."""
    config.validate()
    report = PreflightReport(total_steps=config.steps)
    report.notes.extend(check_processes(config))
    machine = machine_rank(config.accelerate)
    report.owns_output_dir = machine == 0
    if machine:
        report.notes.append(f"this is machine {machine} of a multi-machine run: the main machine (machine rank 0) "
                            "checks output_dir, shows the progress and writes the checkpoints")
    if report.owns_output_dir or config.mode == "resume":
        report.resume_step = check_output_dir(config)
    if config.mode == "resume":
        _check_resume(config, report)
        return report
    root = dataset_root(config)
    info = read_dataset_info(root)
    report.dataset_root = root
    shapes, cameras = _check_dataset(config, root, info)
    if config.mode == "finetune":
        _check_finetune(config, report, root, info, shapes)
    else:
        _check_images(config, shapes, cameras)
    return report


def _check_resume(config: TrainingConfig, report: PreflightReport) -> None:
    saved = _saved_train_config(config)
    if "steps" not in config.given:
        report.total_steps = int(saved.get("steps", config.steps))
    applied = [name for name in RESUME_OPTIONS if name in config.given]
    report.notes.append(f"resuming {config.output_path} from step {report.resume_step} to step "
                        f"{report.total_steps} with the run's saved settings"
                        + (f"; changed here: {', '.join(applied)}" if applied else ""))
    report.notes.append(_resumed_average_note(config))
    if report.resume_step >= report.total_steps:
        raise PreflightError(f"the run in {config.output_path} already reached step {report.resume_step}; set "
                             f"steps above {report.resume_step} to train longer")


def _check_dataset(config: TrainingConfig, root, info: dict) -> tuple[dict, list[str]]:
    """The dataset's policy feature shapes and camera features, checked for a Diffusion Policy."""
    shapes = dataset_policy_shapes(info)
    missing = [k for k in (STATE_FEATURE, ACTION_FEATURE) if k not in shapes]
    if missing:
        raise FeatureMismatchError(f"dataset {root} lacks {missing}; a Diffusion Policy needs observation.state, "
                                   "action and at least one camera")
    cameras = sorted(k for k in shapes if k.startswith(IMAGE_FEATURE_PREFIX))
    if not cameras:
        raise FeatureMismatchError(f"dataset {root} has no camera (observation.images.*); dp_ros trains "
                                   "vision-based Diffusion Policies")
    episodes = int(info.get("total_episodes", 0))
    wrong = [e for e in (config.dataset.episodes or []) if not 0 <= e < episodes]
    if wrong:
        raise PreflightError(f"dataset.episodes: {wrong} do not exist; {root} holds episodes 0..{episodes - 1}")
    if config.robot_config:
        check_robot_interface(config.robot_config, info)
    return shapes, cameras


def _check_finetune(config: TrainingConfig, report: PreflightReport, root, info: dict, shapes: dict) -> None:
    model_dir = resolve_pretrained_model_dir(config.policy.pretrained_path)
    report.pretrained_model_dir = model_dir
    checkpoint = read_checkpoint_config(model_dir)
    if checkpoint.get("type") != "diffusion":
        raise PreflightError(f"{model_dir} holds a {checkpoint.get('type')!r} policy; dp_ros fine-tunes "
                             "Diffusion Policies only")
    problems, notes = feature_mismatches(checkpoint_policy_shapes(checkpoint), shapes, "checkpoint")
    trained_joints = checkpoint_joint_names(model_dir)
    dataset_joints = (info["features"][ACTION_FEATURE].get("names") or None)
    if trained_joints and dataset_joints and list(trained_joints) != list(dataset_joints):
        problems.append(f"action joints: the checkpoint was trained on {trained_joints}, the dataset has "
                        f"{list(dataset_joints)}")
    if problems:
        raise FeatureMismatchError(f"cannot fine-tune {model_dir} on {root}: the checkpoint and the dataset "
                                   "describe different robots:\n  - " + "\n  - ".join(problems))
    report.notes.extend(notes)
    report.notes.extend(_ignored_architecture_options(config, checkpoint))


def _check_images(config: TrainingConfig, shapes: dict, cameras: list[str]) -> None:
    crop = config.policy.crop_shape
    if crop is not None and config.policy.resize_shape is None:  # with resize_shape, crop_ratio crops
        too_small = [f"{k} is {shapes[k][1]}x{shapes[k][2]}" for k in cameras
                     if crop[0] > shapes[k][1] or crop[1] > shapes[k][2]]
        if too_small:
            raise PreflightError(f"policy.crop_shape {crop} does not fit the images ({', '.join(too_small)}); "
                                 "set a smaller crop_shape (about 0.875 of the image) or null")
    sizes = {shapes[k][1:] for k in cameras}
    if len(sizes) > 1:
        raise PreflightError(f"the cameras have different sizes {sorted(sizes)}; LeRobot's Diffusion Policy needs "
                             "all images the same size (set the same width/height in the robot interface)")


def _saved_train_config(config: TrainingConfig) -> dict[str, Any]:
    path = config.last_checkpoint_dir / PRETRAINED_MODEL_DIR / TRAIN_CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PreflightError(f"cannot read the saved settings of the run to resume ({path}): {exc}") from exc


def _ignored_architecture_options(config: TrainingConfig, checkpoint: dict[str, Any]) -> list[str]:
    """Notes for policy options of the config that differ from the checkpoint and are not applied."""
    from dataclasses import asdict

    from dp_ros.training.configuration_training import FINETUNE_POLICY_OPTIONS

    notes = []
    for name, value in asdict(config.policy).items():
        if name in FINETUNE_POLICY_OPTIONS or name == "pretrained_path" or name not in checkpoint:
            continue
        if f"policy.{name}" not in config.given:
            continue
        saved = checkpoint[name]
        if isinstance(saved, list) or isinstance(value, list):
            differs = list(saved or []) != list(value or [])
        else:
            differs = saved != value
        if differs:
            notes.append(f"policy.{name}: the checkpoint's {saved!r} is kept (fine-tuning keeps the architecture); "
                         f"this config's {value!r} is not applied")
    return notes


def _resumed_average_note(config: TrainingConfig) -> str:
    """What a resume does with the weight average: the run's own, whatever ema.* says now."""
    from dp_ros.training.weight_average import saved_average

    saved = saved_average(config.last_checkpoint_dir)
    ignored = sorted(name for name in config.given if name.startswith("ema."))
    text = (f"the weight average continues with the run's settings from update {saved.updates}" if saved
            else "the run was trained without a weight average and resumes without one")
    return text + (f" ({', '.join(ignored)} not applied)" if ignored else "")
