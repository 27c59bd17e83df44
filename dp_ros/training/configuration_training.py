"""The training configuration: one YAML file in LeRobot's own option names.

``config/train.yaml`` holds every option with its default. Options keep the
names of LeRobot's ``lerobot-train`` (``dataset.root``, ``policy.horizon``,
``policy.optimizer_lr``, ``save_freq``, ``wandb.enable``, ...) and become its
argument list (``--policy.horizon=16``). Any option this module does not know is
passed through unchanged, so every LeRobot option stays reachable.

Defaults are the Diffusion Policy recipe LeRobot's guide recommends (the paper's
horizon 16 / 8 action steps / 2 observations, ResNet18 with an 84x84 random
crop, 100 DDPM steps with the squared-cosine schedule, AdamW 1e-4 with a cosine
schedule and 500 warm-up steps, batch 64), except what cannot work offline: no
ImageNet download, so the backbone starts from scratch
(``pretrained_backbone_weights: null``) with group norm (``use_group_norm: true``).

Three ways to run, chosen by the config:
- fresh training (default);
- fine-tuning (``policy.pretrained_path`` set): the policy's architecture comes
  from that checkpoint; only the options in ``FINETUNE_POLICY_OPTIONS`` apply;
- resuming (``resume: true``): continues the run in ``output_dir`` from its
  last checkpoint, with that run's saved settings; only the options in
  ``RESUME_OPTIONS`` that the YAML or the overrides set (and ``extra``) apply.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

POLICY_TYPE = "diffusion"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last"
PRETRAINED_MODEL_DIR = "pretrained_model"
TRAIN_CONFIG_FILE = "train_config.json"

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


@dataclass
class PolicySettings:
    """LeRobot's DiffusionConfig options (``--policy.<name>``)."""

    pretrained_path: str | None = None
    """Fine-tune from this checkpoint: a pretrained_model/ folder, a checkpoint folder or a
    training output folder (its last checkpoint is used). null trains from scratch."""
    device: str = "auto"
    """auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps."""
    use_amp: bool = False
    """Automatic mixed precision (CUDA only)."""
    n_obs_steps: int = 2
    """Observations the policy sees: the current one and n_obs_steps-1 before it."""
    horizon: int = 16
    """Actions predicted per chunk; a multiple of 2**len(down_dims)."""
    n_action_steps: int = 8
    """Actions of a chunk executed before predicting again; <= horizon - n_obs_steps + 1."""
    num_inference_steps: int | None = None
    """Denoising steps at inference; null means num_train_timesteps (100: full DDPM)."""
    noise_scheduler_type: str = "DDPM"
    """DDPM or DDIM (the sampler saved in the checkpoint; the policy node may override it)."""
    num_train_timesteps: int = 100
    """Diffusion steps of the forward (noising) process."""
    beta_schedule: str = "squaredcos_cap_v2"
    """Noise schedule (diffusers name): squaredcos_cap_v2, linear, scaled_linear."""
    clip_sample: bool = True
    """Clip each denoising step's sample to [-clip_sample_range, clip_sample_range]."""
    clip_sample_range: float = 1.0
    """Bound used by clip_sample (actions are normalised to [-1, 1])."""
    prediction_type: str = "epsilon"
    """What the network predicts: epsilon (the noise) or sample (the clean actions)."""
    vision_backbone: str = "resnet18"
    """torchvision ResNet used as image encoder (resnet18, resnet34, ...)."""
    pretrained_backbone_weights: str | None = None
    """torchvision weights for the backbone, e.g. ResNet18_Weights.IMAGENET1K_V1 (needs a
    download); null starts from scratch."""
    crop_shape: list[int] | None = field(default_factory=lambda: [84, 84])
    """[height, width] crop of the camera images (random in training, centred at inference);
    must fit inside the images. null: no crop."""
    crop_is_random: bool = True
    """Random crop position during training (data augmentation)."""
    use_group_norm: bool = True
    """Group norm instead of batch norm in the backbone (use true without pretrained weights)."""
    spatial_softmax_num_keypoints: int = 32
    """Keypoints of the spatial-softmax pooling after the backbone."""
    down_dims: list[int] = field(default_factory=lambda: [512, 1024, 2048])
    """Channels of each U-Net stage; each stage halves the time axis."""
    kernel_size: int = 5
    """Kernel size of the U-Net's 1-D convolutions."""
    n_groups: int = 8
    """Groups of the group norm inside the U-Net."""
    diffusion_step_embed_dim: int = 128
    """Size of the diffusion-step embedding that conditions the U-Net."""
    optimizer_lr: float = 1.0e-4
    """AdamW learning rate (peak, after warm-up)."""
    optimizer_weight_decay: float = 1.0e-6
    """AdamW weight decay."""
    optimizer_betas: list[float] = field(default_factory=lambda: [0.95, 0.999])
    """AdamW betas."""
    optimizer_eps: float = 1.0e-8
    """AdamW epsilon."""
    scheduler_name: str = "cosine"
    """Learning-rate schedule (diffusers name): cosine, linear, constant, constant_with_warmup, ..."""
    scheduler_warmup_steps: int = 500
    """Steps of linear learning-rate warm-up."""


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


@dataclass
class TrainingConfig:
    """One training run of LeRobot's Diffusion Policy (the ``train:`` section of the YAML)."""

    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    """The dataset to train on."""
    policy: PolicySettings = field(default_factory=PolicySettings)
    """The Diffusion Policy and its optimizer."""
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
    """Samples per optimisation step."""
    num_workers: int = 4
    """Data-loading worker processes (0 loads in the trainer process)."""
    save_checkpoint: bool = True
    """Write checkpoints (the final one and every save_freq steps)."""
    save_freq: int = 25_000
    """Steps between checkpoints; a stop keeps the last one, so this bounds the work lost."""
    log_freq: int = 200
    """Steps between logged losses (and progress updates of loss and learning rate)."""
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


# --- loading -------------------------------------------------------------------
def load_training_config(path: str | Path | None = None,
                         overrides: Mapping[str, Any] | Sequence[str] | None = None) -> TrainingConfig:
    """Read a training YAML (``train:`` section, or the options at top level), apply
    overrides ({"policy.horizon": 32} or ["policy.horizon=32"]) and validate.

    With no path, the defaults are the starting point.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise TrainingConfigError(f"training config {path} does not exist; copy config/train.yaml and edit it")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TrainingConfigError(f"training config {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise TrainingConfigError(f"training config {path} must be a mapping with a 'train:' section")
        data = loaded.get("train", loaded)
        if not isinstance(data, dict):
            raise TrainingConfigError(f"the 'train:' section of {path} must be a mapping of options")
    for key, value in parse_overrides(overrides).items():
        set_dotted(data, key, value)
    config = config_from_dict(data)
    config.validate()
    return config


def given_options(data: Mapping[str, Any]) -> set[str]:
    """Dotted names of the options present in a (nested) configuration mapping."""
    sections = ("dataset", "policy", "wandb", "accelerate")
    names = set()
    for key, value in data.items():
        if key in sections and isinstance(value, Mapping):
            names.update(f"{key}.{sub}" for sub in value)
        else:
            names.add(str(key))
    return names


def parse_overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """{"a.b": value} as given, or ["a.b=value", ...] with YAML-parsed values."""
    if not overrides:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise TrainingConfigError(f"override {item!r} must look like name=value, e.g. policy.horizon=32")
        try:
            parsed[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise TrainingConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
    return parsed


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def config_from_dict(data: Mapping[str, Any]) -> TrainingConfig:
    """Build a TrainingConfig; keys it does not know go to ``extra`` under their dotted name."""
    extra = flatten(data.get("extra") or {})
    sections = {"dataset": DatasetSettings, "policy": PolicySettings, "wandb": WandbSettings,
                "accelerate": AccelerateSettings}
    top_fields = {f.name: f for f in dataclasses.fields(TrainingConfig) if f.name != "given"}
    kwargs: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in data.items():
        if key == "extra":
            continue
        if key in sections:
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                problems.append(f"{key}: expected a mapping of options, got {value!r}")
                continue
            kwargs[key] = _build_section(sections[key], value, key, extra, problems)
        elif key in top_fields:
            kwargs[key] = _coerce(key, value, top_fields[key].type, problems)
        else:
            extra.update(flatten({key: value}))
    if problems:
        raise TrainingConfigError("invalid training configuration:\n  - " + "\n  - ".join(problems))
    return TrainingConfig(extra=extra, given=given_options(data), **kwargs)


def _build_section(cls, values: Mapping[str, Any], prefix: str, extra: dict[str, Any], problems: list[str]):
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key in known:
            kwargs[key] = _coerce(f"{prefix}.{key}", value, known[key].type, problems)
        else:
            extra.update(flatten({f"{prefix}.{key}": value}))
    return cls(**kwargs)


def _coerce(name: str, value: Any, annotation: str, problems: list[str]) -> Any:
    """Check a YAML value against a field's annotation (as written in this module)."""
    optional = "None" in annotation
    base = annotation.replace("| None", "").strip()
    if value is None:
        if not optional:
            problems.append(f"{name}: must be set (got null)")
        return value
    if base == "bool":
        if not isinstance(value, bool):
            problems.append(f"{name}: expected true or false, got {value!r}")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{name}: expected a whole number, got {value!r}")
        return value
    if base == "float":
        if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{name}: expected a number, got {value!r}")
            return value
        return float(value)
    if base == "str":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            problems.append(f"{name}: expected text, got {value!r}")
            return value
        return str(value)
    if base.startswith("list["):
        item = base[5:-1]
        if not isinstance(value, (list, tuple)):
            problems.append(f"{name}: expected a list like [1, 2], got {value!r}")
            return value
        return [_coerce(f"{name}[{i}]", v, item, problems) for i, v in enumerate(value)]
    if base.startswith("dict["):
        if not isinstance(value, Mapping):
            problems.append(f"{name}: expected a mapping, got {value!r}")
        return dict(value) if isinstance(value, Mapping) else value
    return value


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
    if not DEVICE_PATTERN.match(p.device):
        problems.append(f"policy.device: {p.device!r} is not auto, cpu, cuda, cuda:N or mps")
    processes = config.accelerate.num_processes
    if processes is not None and processes < 1:
        problems.append(f"accelerate.num_processes: must be at least 1 or null, got {processes}")
    elif (processes or 1) > 1 and p.device not in ("auto", "cpu", "cuda"):
        problems.append(f"policy.device: {p.device!r} with {processes} processes: use auto, cpu or cuda (accelerate "
                        "gives each process its own GPU; choose them with CUDA_VISIBLE_DEVICES or --gpu_ids)")
    if config.wandb.mode not in (None, "online", "offline", "disabled"):
        problems.append(f"wandb.mode: {config.wandb.mode!r} is not online, offline or disabled")
    if config.mode == "finetune" and not Path(p.pretrained_path).expanduser().exists():
        problems.append(f"policy.pretrained_path: {p.pretrained_path} does not exist")
    if config.mode == "resume" and p.pretrained_path:
        problems.append("resume and policy.pretrained_path exclude each other: resume continues the run in "
                        "output_dir, pretrained_path starts a new run from a checkpoint")
    if config.mode == "resume":
        return problems  # the policy settings come from the run being resumed
    if p.n_obs_steps < 1:
        problems.append(f"policy.n_obs_steps: must be at least 1, got {p.n_obs_steps}")
    if config.mode == "fresh":
        if not p.down_dims or any(d < 1 for d in p.down_dims):
            problems.append(f"policy.down_dims: must be a list of positive channel counts, got {p.down_dims}")
        elif p.horizon % (2 ** len(p.down_dims)):
            problems.append(f"policy.horizon: {p.horizon} must be a multiple of 2**len(down_dims) = "
                            f"{2 ** len(p.down_dims)} (the U-Net halves the time axis {len(p.down_dims)} times)")
        if not 1 <= p.n_action_steps <= p.horizon - p.n_obs_steps + 1:
            problems.append(f"policy.n_action_steps: {p.n_action_steps} must be between 1 and horizon - n_obs_steps"
                            f" + 1 = {p.horizon - p.n_obs_steps + 1}")
        if p.crop_shape is not None and (len(p.crop_shape) != 2 or min(p.crop_shape) < 1):
            problems.append(f"policy.crop_shape: must be [height, width] or null, got {p.crop_shape}")
        if p.prediction_type not in ("epsilon", "sample"):
            problems.append(f"policy.prediction_type: {p.prediction_type!r} is not epsilon or sample")
        if not p.vision_backbone.startswith("resnet"):
            problems.append(f"policy.vision_backbone: {p.vision_backbone!r} is not a torchvision ResNet "
                            "(resnet18, ...)")
    if p.noise_scheduler_type not in ("DDPM", "DDIM"):
        problems.append(f"policy.noise_scheduler_type: {p.noise_scheduler_type!r} is not DDPM or DDIM")
    if p.num_inference_steps is not None and p.num_inference_steps < 1:
        problems.append(f"policy.num_inference_steps: must be at least 1 or null, got {p.num_inference_steps}")
    return problems


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
