"""The training configuration: one YAML file in LeRobot's own option names.

``config/train.yaml`` holds every option with its default and what it does.
Options keep the names of LeRobot's ``lerobot-train`` (``dataset.root``,
``policy.horizon``, ``policy.optimizer_lr``, ``save_freq``, ``wandb.enable``, ...)
and become its argument list (``--policy.horizon=16``). Any option this module
does not know is passed through unchanged, so every LeRobot option stays reachable.
Reading the YAML and the command-line overrides is ``config_loading``'s job.

The policy options are LeRobot's ``DiffusionConfig`` fields, with LeRobot's own
types and defaults, except ``RECIPE``: the Diffusion Policy recipe LeRobot's
guide recommends (the paper's horizon 16 / 8 action steps, an 84x84 random
crop) and what cannot work offline (no ImageNet download, so the backbone starts
from scratch with group norm). The checks LeRobot makes when it builds the
config are made here too, before anything starts, by building it.

Three ways to run, chosen by the config:
- fresh training (default);
- fine-tuning (``policy.pretrained_path`` set): the policy's architecture comes
  from that checkpoint; only the options in ``FINETUNE_POLICY_OPTIONS`` apply;
- resuming (``resume: true``): continues the run in ``output_dir`` from its
  last checkpoint, with that run's saved settings; only the options in
  ``RESUME_OPTIONS`` that the YAML or the overrides set (and ``extra``) apply.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

from dp_ros.training.weight_average import EmaSettings

POLICY_TYPE = "diffusion"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last"
PRETRAINED_MODEL_DIR = "pretrained_model"
TRAIN_CONFIG_FILE = "train_config.json"

POLICY_OPTIONS = (
    "use_amp", "n_obs_steps", "horizon", "n_action_steps", "num_inference_steps", "noise_scheduler_type",
    "num_train_timesteps", "beta_schedule", "clip_sample", "clip_sample_range", "prediction_type", "vision_backbone",
    "pretrained_backbone_weights", "resize_shape", "crop_ratio", "crop_shape", "crop_is_random", "use_group_norm",
    "spatial_softmax_num_keypoints", "down_dims", "kernel_size", "n_groups", "diffusion_step_embed_dim",
    "optimizer_lr", "optimizer_weight_decay", "optimizer_betas", "optimizer_eps", "scheduler_name",
    "scheduler_warmup_steps",
)
"""The DiffusionConfig options config/train.yaml lists (the others are accepted too and passed through)."""
RECIPE: dict[str, Any] = {
    "horizon": 16,  # LeRobot: 64
    "n_action_steps": 8,  # LeRobot: 32
    "crop_shape": [84, 84],  # LeRobot: no crop
    "pretrained_backbone_weights": None,  # LeRobot: ImageNet weights, a download
    "use_group_norm": True,  # LeRobot: batch norm, for the pretrained weights
}
"""Where dp_ros's defaults differ from LeRobot's DiffusionConfig."""
# Policy options that may change when fine-tuning: training and inference
# settings. Everything else (the network and the diffusion process) is the
# checkpoint's, because the weights were trained for it.
FINETUNE_POLICY_OPTIONS = (
    "device", "use_amp", "n_action_steps", "num_inference_steps", "noise_scheduler_type", "clip_sample",
    "clip_sample_range", "crop_is_random", "optimizer_lr", "optimizer_weight_decay", "optimizer_betas",
    "optimizer_eps", "scheduler_name", "scheduler_warmup_steps",
)
# Top-level options that apply when resuming; the rest comes from the run's saved config.
RESUME_OPTIONS = ("steps", "batch_size", "num_workers", "save_checkpoint", "save_freq", "log_freq")

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class TrainingConfigError(ValueError):
    """The training configuration is missing, malformed or cannot work."""


@dataclass
class DatasetSettings:
    """The LeRobot dataset to train on: a local folder, no hub needed."""

    repo_id: str = "local/dataset"
    """Dataset name (LeRobot's ``dataset.repo_id``). With ``root`` set it is only a label."""
    root: str | None = None
    """Folder holding the dataset's meta/, data/ and videos/. null: $HF_LEROBOT_HOME/<repo_id>."""
    episodes: list[int] | None = None
    """Episode indices to train on; null trains on all. Leave some out for ``dp-ros eval``."""


def _yaml_value(value: Any) -> Any:
    """Tuples as lists: the YAML form of a default."""
    return [_yaml_value(v) for v in value] if isinstance(value, (tuple, list)) else value


def _policy_settings() -> type:
    """LeRobot's DiffusionConfig options (``--policy.<name>``) as a dataclass with dp_ros's defaults.

    ``pretrained_path`` (fine-tune from this checkpoint: a pretrained_model/ folder, a checkpoint
    folder or a training output folder) and ``device`` (auto: CUDA when available, else CPU) come
    first; then POLICY_OPTIONS with DiffusionConfig's types and its defaults, or RECIPE's.
    """
    lerobot = {f.name: f for f in dataclasses.fields(DiffusionConfig)}
    hints = typing.get_type_hints(DiffusionConfig)

    def default(name: str) -> Any:
        if name in RECIPE:
            return RECIPE[name]
        spec = lerobot[name]
        return spec.default if spec.default_factory is dataclasses.MISSING else spec.default_factory()

    fields = [("pretrained_path", str | None, None), ("device", str, "auto")]
    fields += [(name, hints[name], field(default_factory=lambda v=_yaml_value(default(name)): copy.deepcopy(v)))
               for name in POLICY_OPTIONS]
    return dataclasses.make_dataclass("PolicySettings", fields, module=__name__)


PolicySettings = _policy_settings()


@dataclass
class WandbSettings:
    """Weights & Biases logging (off by default; offline mode needs no network)."""

    enable: bool = False
    """Log the run to Weights & Biases."""
    project: str = "dp_ros"
    """Weights & Biases project name."""
    notes: str | None = None
    """Free-text notes attached to the run."""
    mode: str | None = None
    """online, offline (write locally, sync later with `wandb sync`) or disabled; null: online."""


@dataclass
class AccelerateSettings:
    """Several training processes (GPUs, machines) through Hugging Face accelerate's ``accelerate launch``."""

    num_processes: int | None = None
    """Training processes in all (one per GPU). null or 1: LeRobot's trainer runs as one process; N > 1:
    ``accelerate launch --multi_gpu --num_processes N`` (on a CPU-only machine the processes share the
    cores). Each process takes batch_size samples per step: the effective batch is N x batch_size."""
    config_file: str | None = None
    """An accelerate config file (made by ``accelerate config``), passed as ``--config_file``: e.g. for
    several machines, DeepSpeed or FSDP. null: accelerate's defaults."""
    launch_args: list[str] = field(default_factory=list)
    """Further ``accelerate launch`` options, passed unchanged, e.g. [--num_machines=2, --machine_rank=1,
    --main_process_ip=10.0.0.1, --main_process_port=29500]."""


SECTIONS = {"dataset": DatasetSettings, "policy": PolicySettings, "ema": EmaSettings, "wandb": WandbSettings,
            "accelerate": AccelerateSettings}


@dataclass
class TrainingConfig:
    """One training run of LeRobot's Diffusion Policy (the ``train:`` section of the YAML)."""

    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    """The dataset to train on."""
    policy: PolicySettings = field(default_factory=PolicySettings)
    """The Diffusion Policy and its optimizer."""
    ema: EmaSettings = field(default_factory=EmaSettings)
    """An exponential moving average of the weights, saved as the checkpoints' weights
    (dp_ros.training.weight_average). A resume keeps the run's own."""
    wandb: WandbSettings = field(default_factory=WandbSettings)
    """Weights & Biases logging."""
    accelerate: AccelerateSettings = field(default_factory=AccelerateSettings)
    """How many training processes, and accelerate's options for them (not LeRobot options)."""
    output_dir: str = "outputs/train/diffusion"
    """Run folder: checkpoints go to <output_dir>/checkpoints/<step>/pretrained_model, the newest
    also as checkpoints/last. Must not exist yet unless resume is true."""
    job_name: str | None = None
    """Name of the run (wandb, logs); null: "diffusion"."""
    resume: bool = False
    """Continue the run in output_dir from its last checkpoint (raise steps to train longer)."""
    steps: int = 200_000
    """Optimisation steps in total (counted from 0 also when resuming)."""
    batch_size: int = 64
    """Samples per optimisation step (and per process)."""
    num_workers: int = 4
    """Data-loading worker processes (0 loads in the trainer process)."""
    cpu_threads: int | None = None
    """Threads each training process computes with on a CPU (OMP_NUM_THREADS); null: the cores shared
    among the processes. On a machine busy with other work, 1 is often much faster (see the README)."""
    save_checkpoint: bool = True
    """Write checkpoints (the final one and every save_freq steps)."""
    save_freq: int = 25_000
    """Steps between checkpoints; a stop keeps the last one, so this bounds the work lost."""
    log_freq: int = 200
    """Steps between LeRobot's log lines of the loss (dp_ros's progress comes every step)."""
    seed: int | None = 100_000
    """Seed for initialisation and data order; null: not seeded."""
    robot_config: str | None = None
    """Robot interface YAML to check the dataset against before training; null: no check."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further LeRobot options by dotted name, passed unchanged (e.g. policy.drop_n_last_frames: 7).
    Unknown keys anywhere in the YAML land here too."""
    given: set[str] = field(default_factory=set, repr=False, compare=False)
    """Dotted names of the options the YAML or the overrides set (the others are defaults).
    Bookkeeping, not an option: a resume applies only given options over the run's saved ones."""

    # --- derived -------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``resume``, ``finetune`` or ``fresh``."""
        if self.resume:
            return "resume"
        return "finetune" if self.policy.pretrained_path else "fresh"

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir).expanduser().resolve()

    @property
    def last_checkpoint_dir(self) -> Path:
        """<output_dir>/checkpoints/last: the checkpoint a resume starts from."""
        return self.output_path / CHECKPOINTS_DIR / LAST_CHECKPOINT

    @property
    def final_model_dir(self) -> Path:
        """The policy folder the policy node loads once training is done."""
        return self.last_checkpoint_dir / PRETRAINED_MODEL_DIR

    def validate(self) -> None:
        """Raise TrainingConfigError listing every option that cannot work."""
        problems = _check_values(self)
        if problems:
            raise TrainingConfigError("invalid training configuration:\n  - " + "\n  - ".join(problems))

    # --- conversion ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["given"]
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump({"train": self.to_dict()}, sort_keys=False)

    def lerobot_options(self, device: str | None = None, pretrained_model_dir: Path | None = None) -> dict[str, Any]:
        """The options for ``lerobot-train`` as {dotted name: value}, extras last (they win).

        ``device`` replaces ``policy.device`` (resolve "auto" first); ``pretrained_model_dir``
        replaces ``policy.pretrained_path`` (resolved to the pretrained_model/ folder).
        """
        device = device or self.policy.device
        options: dict[str, Any] = {}
        if self.mode == "resume":
            options["config_path"] = str(self.last_checkpoint_dir / PRETRAINED_MODEL_DIR / TRAIN_CONFIG_FILE)
            options["resume"] = True
            options["output_dir"] = str(self.output_path)  # the run may have moved since it was saved
            for name in RESUME_OPTIONS:
                if name in self.given:
                    options[name] = getattr(self, name)
            options["policy.device"] = device
        else:
            options["dataset.repo_id"] = self.dataset.repo_id
            if self.dataset.root:
                options["dataset.root"] = str(Path(self.dataset.root).expanduser().resolve())
            if self.dataset.episodes is not None:
                options["dataset.episodes"] = list(self.dataset.episodes)
            policy = dataclasses.asdict(self.policy)
            del policy["pretrained_path"]
            policy["device"] = device
            if self.mode == "finetune":
                options["policy.path"] = str(pretrained_model_dir or self.policy.pretrained_path)
                policy = {k: v for k, v in policy.items() if k in FINETUNE_POLICY_OPTIONS}
            else:
                options["policy.type"] = POLICY_TYPE
            options.update({f"policy.{k}": v for k, v in policy.items()})
            options["policy.push_to_hub"] = False
            options["output_dir"] = str(self.output_path)
            if self.job_name:
                options["job_name"] = self.job_name
            for name in ("steps", "batch_size", "num_workers", "save_checkpoint", "save_freq", "log_freq", "seed"):
                options[name] = getattr(self, name)
            options.update(ema_options(self.ema))
        if self.mode != "resume" or any(name.startswith("wandb.") for name in self.given):
            options["wandb.enable"] = self.wandb.enable
            if self.wandb.enable:
                options["wandb.project"] = self.wandb.project
                if self.wandb.notes:
                    options["wandb.notes"] = self.wandb.notes
                if self.wandb.mode:
                    options["wandb.mode"] = self.wandb.mode
        options.update(flatten(self.extra))
        return options

    def lerobot_arguments(self, device: str | None = None, pretrained_model_dir: Path | None = None) -> list[str]:
        """The argument list for ``lerobot-train`` (no shell involved, one item per option)."""
        return [f"--{name}={format_lerobot_value(value)}"
                for name, value in self.lerobot_options(device, pretrained_model_dir).items()]


def _check_values(config: TrainingConfig) -> list[str]:
    p = config.policy
    problems = []
    if not str(config.dataset.repo_id).strip():
        problems.append("dataset.repo_id: must not be empty (any label works for a local dataset)")
    for name in ("steps", "batch_size", "log_freq"):
        if getattr(config, name) < 1:
            problems.append(f"{name}: must be at least 1, got {getattr(config, name)}")
    if config.num_workers < 0:
        problems.append(f"num_workers: must be 0 or more, got {config.num_workers}")
    if config.cpu_threads is not None and config.cpu_threads < 1:
        problems.append(f"cpu_threads: must be at least 1 or null, got {config.cpu_threads}")
    if not DEVICE_PATTERN.match(p.device):
        problems.append(f"policy.device: {p.device!r} is not auto, cpu, cuda, cuda:N or mps")
    processes = config.accelerate.num_processes
    if processes is not None and processes < 1:
        problems.append(f"accelerate.num_processes: must be at least 1 or null, got {processes}")
    elif (processes or 1) > 1 and p.device not in ("auto", "cpu", "cuda"):
        problems.append(f"policy.device: {p.device!r} with {processes} processes: use auto, cpu or cuda (accelerate "
                        "gives each process its own GPU; choose them with CUDA_VISIBLE_DEVICES or --gpu_ids)")
    problems += config.ema.problems()
    if config.wandb.mode not in (None, "online", "offline", "disabled"):
        problems.append(f"wandb.mode: {config.wandb.mode!r} is not online, offline or disabled")
    if config.mode == "finetune" and not Path(p.pretrained_path).expanduser().exists():
        problems.append(f"policy.pretrained_path: {p.pretrained_path} does not exist")
    if config.mode == "resume" and p.pretrained_path:
        problems.append("resume and policy.pretrained_path exclude each other: resume continues the run in "
                        "output_dir, pretrained_path starts a new run from a checkpoint")
    if config.mode == "resume":
        return problems  # the policy settings come from the run being resumed
    if config.mode == "fresh":
        problems += _lerobot_policy_problems(config)
        if not 1 <= p.n_action_steps <= p.horizon - p.n_obs_steps + 1:
            problems.append(f"policy.n_action_steps: {p.n_action_steps} must be between 1 and horizon - n_obs_steps"
                            f" + 1 = {p.horizon - p.n_obs_steps + 1}")
    if p.num_inference_steps is not None and p.num_inference_steps < 1:
        problems.append(f"policy.num_inference_steps: must be at least 1 or null, got {p.num_inference_steps}")
    return problems


def _lerobot_policy_problems(config: TrainingConfig) -> list[str]:
    """The checks LeRobot makes when it builds the policy config, made now by building it."""
    policy = {k: v for k, v in dataclasses.asdict(config.policy).items() if k != "pretrained_path"}
    known = {f.name for f in dataclasses.fields(DiffusionConfig)}
    extra = {k.split(".", 1)[1]: v for k, v in flatten(config.extra).items()
             if k.startswith("policy.") and k.split(".", 1)[1] in known}  # LeRobot's parser judges the rest
    try:
        DiffusionConfig(**{**policy, **extra, "device": "cpu"})
    except (ValueError, TypeError) as exc:
        return [f"policy: LeRobot refuses it: {exc}"]
    return []


def ema_options(ema: EmaSettings) -> dict[str, Any]:
    """The weight average's options: LeRobot's own ``ema.*`` where it has them, else dp_ros's (the entry's)."""
    from dp_ros.lerobot_compat import lerobot_has_ema

    prefix = "ema." if lerobot_has_ema() else "dp_ros.ema."
    return {prefix + name: value for name, value in dataclasses.asdict(ema).items()}


# --- formatting ----------------------------------------------------------------
def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def format_lerobot_value(value: Any) -> str:
    """A value as LeRobot's command-line parser (draccus) reads it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is usable, else ``cpu``; other names unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
