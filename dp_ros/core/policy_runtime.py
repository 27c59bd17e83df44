"""A LeRobot Diffusion Policy checkpoint, ready to turn observation histories into action chunks.

Loads ``pretrained_model/`` as LeRobot saves it (config.json, model.safetensors
and the saved pre/post-processor pipelines) and uses LeRobot's own processors
for normalisation. The sampler (DDPM, DDIM, DPM-Solver++, UniPC) and the number
of denoising steps can differ from the checkpoint's. ROS-free.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from dp_ros.core.checkpoint_sampler import choose_sampler
from dp_ros.core.chunk_guidance import PREDICTION_TYPES, ChunkGuide, PlanConditioning
from dp_ros.core.feature_cache import FrameFeatureCache, frame_key
from dp_ros.core.samplers import NoiseSchedule, make_denoiser
from dp_ros.lerobot_compat import diffusion_global_conditioning
from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE, RobotInterface

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "policy_preprocessor.json"
POSTPROCESSOR_FILE = "policy_postprocessor.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, not a Diffusion Policy, or does not fit the robot."""


def resolve_checkpoint(path: str | Path) -> Path:
    """The ``pretrained_model`` folder for a path given by a user.

    Accepts the folder itself, a ``checkpoints/<step>`` folder, or a training
    run's output folder (then its ``checkpoints/last/pretrained_model``).
    """
    path = Path(path).expanduser()
    candidates = [path, path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"]
    for candidate in candidates:
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    raise CheckpointError(f"no {CONFIG_FILE} in {path} (nor in pretrained_model/ or checkpoints/last/pretrained_model/ "
                          "below it); pass the pretrained_model folder that lerobot-train wrote")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but no CUDA device is available; use device=cpu or auto")
    return torch.device(device)


def check_prediction_type(prediction_type: str, where) -> None:
    """Refuse a network that predicts something sampling and guidance do not handle (named in the error)."""
    if prediction_type not in PREDICTION_TYPES:
        raise CheckpointError(f"{where}: prediction_type {prediction_type!r} is not supported; dp_ros samples and "
                              f"guides checkpoints that predict {' or '.join(repr(p) for p in PREDICTION_TYPES)}")


class PolicyRuntime:
    """Inference of one Diffusion Policy checkpoint with a chosen sampler."""

    def __init__(self, policy, preprocessor, postprocessor, checkpoint: Path, device: torch.device,
                 noise_scheduler: str, num_inference_steps: int, n_action_steps: int, seed: int | None):
        self.policy = policy
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.checkpoint = checkpoint
        self.device = device
        self.config = policy.config
        if n_action_steps < 1 or n_action_steps > self.horizon - self.n_obs_steps + 1:
            raise CheckpointError(f"n_action_steps must be between 1 and horizon - n_obs_steps + 1 = "
                                  f"{self.horizon - self.n_obs_steps + 1}; got {n_action_steps}")
        self.n_action_steps = n_action_steps
        self.noise_scheduler = noise_scheduler
        check_prediction_type(self.config.prediction_type, checkpoint)
        schedule = NoiseSchedule.from_config(self.config)
        try:
            self.denoiser = make_denoiser(noise_scheduler, policy.diffusion.unet, schedule, num_inference_steps)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        self._sampler = (noise_scheduler, self.denoiser)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed if seed is not None else int(time.time_ns() % (2**31)))
        self.image_keys = list(self.config.image_features)
        self.channels_last_encoder()
        self.sampler_source = "parameters"
        self.last_chunk_sampler = ""
        """Sampler and steps of the newest chunk (``ddim x4``): a live change shows here from the next chunk on."""
        # two histories' worth of frames: the frames of the next chunk that were in this one stay
        self.feature_cache: FrameFeatureCache | None = FrameFeatureCache(2 * self.n_obs_steps * len(self.image_keys))

    # --- loading ----------------------------------------------------------------
    @classmethod
    def load(cls, checkpoint: str | Path, device: str, noise_scheduler: str | None = None,
             num_inference_steps: int | None = None, n_action_steps: int | None = None,
             seed: int | None = None) -> "PolicyRuntime":
        """Load a checkpoint; ``None`` takes the checkpoint's recorded sampler, else dp_ros's default
        (``checkpoint_sampler``), and the checkpoint's n_action_steps."""
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
        from lerobot.policies.factory import make_pre_post_processors

        folder = resolve_checkpoint(checkpoint)
        if not (folder / MODEL_FILE).is_file():
            pickles = sorted(p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
            hint = f" (found {pickles}: dp_ros loads weights only from safetensors, never pickles)" if pickles else ""
            raise CheckpointError(f"{folder} has no {MODEL_FILE}{hint}")
        for name in (PREPROCESSOR_FILE, POSTPROCESSOR_FILE):
            if not (folder / name).is_file():
                raise CheckpointError(f"{folder} lacks {name}: the normalisation pipelines LeRobot saves with a "
                                      "checkpoint are needed (was it saved by lerobot-train from LeRobot >= 0.4?)")
        try:
            raw_config = json.loads((folder / CONFIG_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{folder / CONFIG_FILE} is not valid JSON: {exc}") from None
        kind = raw_config.get("type")
        if kind != "diffusion":
            raise CheckpointError(f"{folder} holds a {kind!r} policy; dp_ros runs Diffusion Policy checkpoints")
        check_prediction_type(raw_config.get("prediction_type", "epsilon"), folder)

        torch_device = resolve_device(device)
        config = PreTrainedConfig.from_pretrained(folder, local_files_only=True)
        config.device = torch_device.type
        # The backbone's weights come from model.safetensors; never fetch ImageNet weights.
        config.pretrained_backbone_weights = None
        try:
            policy = DiffusionPolicy.from_pretrained(folder, config=config, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{folder / MODEL_FILE} does not match {CONFIG_FILE}: {exc}") from None
        overrides = {"device_processor": {"device": torch_device.type}}
        preprocessor, postprocessor = make_pre_post_processors(
            config, pretrained_path=str(folder), preprocessor_overrides=overrides)
        policy.eval()
        try:
            sampler = choose_sampler(folder, config, noise_scheduler, num_inference_steps)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        runtime = cls(policy, preprocessor, postprocessor, folder, torch_device, noise_scheduler=sampler.name,
                      num_inference_steps=sampler.steps, n_action_steps=n_action_steps or config.n_action_steps,
                      seed=seed)
        runtime.sampler_source = sampler.source
        return runtime

    def prepare_sampler(self, noise_scheduler: str | None, num_inference_steps: int | None) -> tuple:
        """The sampler ``noise_scheduler`` x ``num_inference_steps`` (None: as :meth:`load` chooses) for
        :meth:`use_sampler`, changing nothing; raises CheckpointError if the checkpoint cannot be sampled so."""
        try:
            sampler = choose_sampler(self.checkpoint, self.config, noise_scheduler, num_inference_steps)
            denoiser = make_denoiser(sampler.name, self.policy.diffusion.unet, NoiseSchedule.from_config(self.config),
                                     sampler.steps)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        return sampler, denoiser

    def use_sampler(self, prepared: tuple) -> None:
        """Sample the chunks started from now on with a sampler of :meth:`prepare_sampler` (a chunk being computed
        finishes with its own)."""
        sampler, denoiser = prepared
        self._sampler = (sampler.name, denoiser)  # read as one by a chunk
        self.noise_scheduler, self.denoiser, self.sampler_source = sampler.name, denoiser, sampler.source

    # --- shape of the policy ---------------------------------------------------------
    @property
    def n_obs_steps(self) -> int:
        return self.config.n_obs_steps

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def num_inference_steps(self) -> int:
        return self.denoiser.num_inference_steps

    @property
    def action_dim(self) -> int:
        return self.config.output_features[ACTION_FEATURE].shape[0]

    @property
    def state_dim(self) -> int:
        return self.config.input_features[STATE_FEATURE].shape[0]

    def image_shape(self, key: str) -> tuple[int, int, int]:
        return tuple(self.config.input_features[key].shape)

    def describe(self) -> str:
        return (f"{self.checkpoint} on {self.device}: {self.noise_scheduler} x{self.num_inference_steps} steps "
                f"({self.sampler_source}), "
                f"horizon {self.horizon}, n_obs_steps {self.n_obs_steps}, n_action_steps {self.n_action_steps}, "
                f"state {self.state_dim}, action {self.action_dim}, cameras {self.image_keys}")

    def check_robot(self, robot: RobotInterface) -> None:
        """Raise CheckpointError unless the checkpoint's features fit the robot interface."""
        problems = []
        features = self.config.input_features
        if STATE_FEATURE not in features:
            problems.append(f"the checkpoint has no {STATE_FEATURE} input")
        elif self.state_dim != robot.num_joints:
            problems.append(f"{STATE_FEATURE} has {self.state_dim} values but the robot has {robot.num_joints} joints "
                            f"{robot.joint_names}")
        if self.action_dim != robot.num_joints:
            problems.append(f"{ACTION_FEATURE} has {self.action_dim} values but the robot has {robot.num_joints} joints")
        robot_images = {cam.feature: cam.shape for cam in robot.cameras}
        missing = sorted(set(self.image_keys) - set(robot_images))
        extra = sorted(set(robot_images) - set(self.image_keys))
        if missing:
            problems.append(f"the checkpoint needs cameras {missing} that the robot interface does not list")
        if extra:
            problems.append(f"the robot interface lists cameras {extra} that the checkpoint was not trained with")
        for key in sorted(set(self.image_keys) & set(robot_images)):
            if self.image_shape(key) != robot_images[key]:
                c, h, w = self.image_shape(key)
                problems.append(f"{key}: the checkpoint expects {w}x{h} images; the robot interface says "
                                f"{robot_images[key][2]}x{robot_images[key][1]} (set width/height of the camera)")
        unknown = sorted(k for k in features if k != STATE_FEATURE and k not in self.image_keys)
        if unknown:
            problems.append(f"the checkpoint needs inputs dp_ros cannot provide: {unknown}")
        if problems:
            raise CheckpointError(f"checkpoint {self.checkpoint} does not fit robot interface "
                                  f"{robot.source_path or robot.name}:\n  - " + "\n  - ".join(problems))

    # --- inference ----------------------------------------------------------------------
    def history_to_batch(self, history: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        """Stack an observation history (oldest first) into a (1, n_obs_steps, ...) batch."""
        if len(history) != self.n_obs_steps:
            raise ValueError(f"history has {len(history)} observations; the policy needs n_obs_steps={self.n_obs_steps}")
        state = np.stack([np.asarray(obs[STATE_FEATURE], dtype=np.float32) for obs in history])
        if state.shape[1] != self.state_dim:
            raise ValueError(f"{STATE_FEATURE} has {state.shape[1]} values; the policy needs {self.state_dim}")
        batch = {STATE_FEATURE: torch.from_numpy(state)[None]}
        for key in self.image_keys:
            frames = np.stack([obs[key] for obs in history])
            c, h, w = self.image_shape(key)
            if frames.shape[1:] != (h, w, c) or frames.dtype != np.uint8:
                raise ValueError(f"{key} frames are {frames.dtype} {frames.shape[1:]}; the policy needs uint8 {(h, w, c)}")
            batch[key] = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float().div_(255.0)
        return batch

    @property
    def future_steps(self) -> int:
        """Actions of the horizon from the newest observation's time on (what a guided chunk returns)."""
        return self.horizon - self.n_obs_steps + 1

    @torch.inference_mode()
    def predict_chunk(self, history: Sequence[dict[str, np.ndarray]], noise: torch.Tensor | None = None,
                      guide: ChunkGuide | None = None) -> np.ndarray:
        """(n_action_steps, action_dim) actions, the first for the time of the newest observation.

        With a ``guide`` the chunk continues its plan (dp_ros.core.chunk_guidance) and holds all
        ``future_steps`` actions of the horizon; an empty guide changes nothing but that length.
        """
        keys = None
        if self.feature_cache is not None and self.image_keys:
            keys = [[frame_key(k, obs[k]) for k in self.image_keys] for obs in history]
        return self.predict_from_batch(self.history_to_batch(history), noise=noise, guide=guide, frame_keys=keys)[0]

    def channels_last_encoder(self, enabled: bool | None = None) -> None:
        """Keep the image encoder's convolution weights channels-last, oneDNN's fast layout on CPU (measured: the
        demo's ResNet-18 encoder 1.9x faster on one core, the same features to 2e-7); off: PyTorch's default;
        None: the runtime's own choice (channels-last on a CPU only, where it was measured)."""
        if enabled is None:
            enabled = self.device.type == "cpu"
        encoder = getattr(self.policy.diffusion, "rgb_encoder", None)
        if encoder is not None:
            encoder.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def forget_frames(self) -> None:
        """Drop the cached frame features (after a reset or a sensor gap: the next frames are new ones)."""
        if self.feature_cache is not None:
            self.feature_cache.clear()

    @torch.inference_mode()
    def predict_from_batch(self, batch: dict[str, Any], noise: torch.Tensor | None = None,
                           return_denoising: bool = False, guide: ChunkGuide | None = None,
                           frame_keys: list[list[tuple]] | None = None):
        """Actions for a batch of stacked histories (as LeRobotDataset yields with delta_timestamps).

        Returns (B, n_action_steps, action_dim) unnormalised actions (``future_steps`` of them with a
        ``guide``); with ``return_denoising`` also a list over denoising steps of the whole
        (B, horizon, action_dim) trajectory, unnormalised, starting with the noise. ``frame_keys`` (one
        history: [step][camera]) lets the frame-feature cache reuse the features of frames seen before.
        """
        from lerobot.utils.constants import OBS_IMAGES

        inputs = {k: v for k, v in batch.items() if k == STATE_FEATURE or k in self.image_keys}
        weights = None
        if guide is not None and not guide.is_empty:
            # the plan joins the observation in LeRobot's preprocessor, which normalises it as it
            # normalised the training actions
            targets, weights = guide.on_horizon(self.horizon, self.n_obs_steps)
            inputs[ACTION_FEATURE] = torch.from_numpy(targets).to(torch.float32)[None]
        processed = self.preprocessor(inputs)
        state = processed[STATE_FEATURE]
        if state.ndim != 3 or state.shape[1] != self.n_obs_steps:
            raise ValueError(f"{STATE_FEATURE} must be (B, n_obs_steps={self.n_obs_steps}, {self.state_dim}); "
                             f"got {tuple(state.shape)}")
        model_batch = {STATE_FEATURE: state}
        if self.image_keys:
            model_batch[OBS_IMAGES] = torch.stack([processed[k] for k in self.image_keys], dim=-4)
        diffusion = self.policy.diffusion
        name, denoiser = self._sampler  # one sampler for the whole chunk, even if set_sampler runs meanwhile
        if frame_keys is not None and self.feature_cache is not None and state.shape[0] == 1:
            global_cond = self.feature_cache.conditioning(diffusion, state, model_batch[OBS_IMAGES], frame_keys)
        else:
            global_cond = diffusion_global_conditioning(diffusion, model_batch)
        batch_size = state.shape[0]
        if noise is None:
            noise = torch.randn((batch_size, self.horizon, self.action_dim), generator=self.generator,
                                device=self.device, dtype=global_cond.dtype)
        else:
            noise = noise.to(self.device, global_cond.dtype)
        steps: list[torch.Tensor] = [noise.clone()] if return_denoising else []
        on_step = (lambda i, sample: steps.append(sample.clone())) if return_denoising else None
        guidance = None
        if weights is not None:
            clip = self.config.clip_sample_range if self.config.clip_sample else None
            guidance = PlanConditioning(processed[ACTION_FEATURE], weights, noise, denoiser.alphas_cumprod,
                                        guide.gradient_steps, guide.max_weight, clip, self.config.prediction_type)
        trajectory = denoiser(noise, global_cond, generator=self.generator, on_step=on_step, guidance=guidance)
        self.last_chunk_sampler = f"{name} x{denoiser.num_inference_steps}"
        first = self.n_obs_steps - 1
        count = self.future_steps if guide is not None else self.n_action_steps
        actions = self._unnormalise(trajectory[:, first:first + count])
        if return_denoising:
            return actions, [self._unnormalise(s) for s in steps]
        return actions

    def _unnormalise(self, actions: torch.Tensor) -> np.ndarray:
        return self.postprocessor(actions).detach().to("cpu", torch.float32).numpy()

    def warm_up(self, robot_or_history: Sequence[dict[str, np.ndarray]] | None = None, runs: int = 2) -> float:
        """Run inference on a neutral history so the first real chunk is not slow; returns the last run's seconds."""
        history = robot_or_history or [self.neutral_observation() for _ in range(self.n_obs_steps)]
        elapsed = 0.0
        for _ in range(runs):
            start = time.perf_counter()
            self.predict_chunk(history)
            elapsed = time.perf_counter() - start
        return elapsed

    def neutral_observation(self) -> dict[str, np.ndarray]:
        observation = {STATE_FEATURE: np.zeros(self.state_dim, dtype=np.float32)}
        for key in self.image_keys:
            c, h, w = self.image_shape(key)
            observation[key] = np.full((h, w, c), 127, dtype=np.uint8)
        return observation
