"""LeRobot's trainer distilling a teacher into a consistency student (run by ``DistillationLauncher``).

``python -m dp_ros.training.distillation_entry --dp_ros.distillation=<json> <lerobot-train arguments>``
is ``lerobot_entry`` (events, clean stop, parent watch) with one more hook: the
policy LeRobot's trainer makes (the student, loaded from the teacher's weights,
or from the last checkpoint when resuming) gets the distillation loss as its
``forward``, and each checkpoint it saves also holds

- ``pretrained_model/dp_ros_sampler.json``: the student's sampler (consistency, its steps), which the policy
  node, ``dp-ros eval`` and ``dp-ros bench`` use;
- ``training_state/consistency_target.safetensors``: the target network (``target: target-network``), for a
  resume.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from dp_ros.training.configuration_distillation import ARGUMENT, SETTINGS_FILE, DistillationSettings

TARGET_FILE = "consistency_target.safetensors"


def load_teacher(folder: str, device: str):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    from dp_ros.core.policy_runtime import resolve_checkpoint

    folder = resolve_checkpoint(folder)
    config = PreTrainedConfig.from_pretrained(folder, local_files_only=True)
    config.device = device
    config.pretrained_backbone_weights = None
    return DiffusionPolicy.from_pretrained(folder, config=config, strict=True).to(device)


def target_from_last_checkpoint(output_dir: str):
    from safetensors.torch import load_file

    path = Path(output_dir) / "checkpoints" / "last" / "training_state" / TARGET_FILE
    if path.is_file():
        return load_file(str(path))
    print(f"dp_ros: {path} is missing; the target network starts from the student's weights", file=sys.stderr)
    return None


def distil(policy, settings: DistillationSettings):
    """Give the student LeRobot made the distillation loss, and its checkpoints the sampler and the target."""
    from safetensors.torch import save_file

    from dp_ros.core.checkpoint_sampler import write_checkpoint_sampler
    from dp_ros.training.distillation import ConsistencyDistillation
    from dp_ros.training.lerobot_entry import rank_and_world_size

    device = str(next(policy.parameters()).device)
    teacher = load_teacher(settings.teacher, device)
    bootstrapped = settings.loss.target == "target-network"
    target = target_from_last_checkpoint(settings.output_dir) if settings.resume and bootstrapped else None
    distillation = ConsistencyDistillation(policy, teacher, settings.loss, target)
    if rank_and_world_size()[0] == 0 and not settings.resume:
        out = Path(settings.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / SETTINGS_FILE).write_text(json.dumps(json.loads(settings.to_json()), indent=2) + "\n")

    def forward(batch, reduction: str = "mean"):
        return distillation(batch)

    save_model = policy._save_pretrained

    def save_student(save_directory, *args, **kwargs):
        save_model(save_directory, *args, **kwargs)
        write_checkpoint_sampler(Path(save_directory), "consistency", int(settings.student_steps),
                                 distilled_from=str(settings.teacher))
        if distillation.target is None:
            return
        state = Path(save_directory).parent / "training_state"
        state.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in distillation.target.state_dict().items()},
                  str(state / TARGET_FILE))

    policy.forward = forward
    policy._save_pretrained = save_student
    policy.dp_ros_distillation = distillation
    return policy


def main() -> int:
    from dp_ros.lerobot_compat import hook_policy_creation
    from dp_ros.training import lerobot_entry

    settings_arg = next((a for a in sys.argv[1:] if a.startswith(ARGUMENT)), None)
    if settings_arg is None:
        print(f"dp_ros: {ARGUMENT}<json> is required", file=sys.stderr)
        return 2
    sys.argv.remove(settings_arg)
    settings = DistillationSettings.from_dict(json.loads(settings_arg[len(ARGUMENT):]))
    return lerobot_entry.main(prepare=lambda lerobot_train: hook_policy_creation(
        lerobot_train, lambda policy: distil(policy, settings)))


if __name__ == "__main__":
    sys.exit(main())
