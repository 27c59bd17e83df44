"""The trainer's command line: LeRobot's trainer alone, or one per rank under ``accelerate launch``.

One process runs ``python -m dp_ros.training.lerobot_entry <lerobot-train arguments>``.
Several run the same entry under Hugging Face accelerate, as LeRobot's
multi-GPU guide does with ``accelerate launch --multi_gpu --num_processes=N
$(which lerobot-train) ...``: accelerate starts the processes (torchrun),
gives each a rank and a GPU (or, on a CPU-only machine, a share of the cores
and the gloo backend), and LeRobot's trainer synchronises their gradients.
An accelerate config file and any further ``accelerate launch`` options
(machine rank, main process address, ...) are passed to accelerate unchanged.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

import yaml

from dp_ros.training.configuration_training import AccelerateSettings, TrainingConfig

ENTRY_MODULE = "dp_ros.training.lerobot_entry"
ACCELERATE_MODULE = "accelerate.commands.launch"


def uses_accelerate(settings: AccelerateSettings) -> bool:
    """True when the run goes through ``accelerate launch`` (several processes or accelerate options given)."""
    return (settings.num_processes or 1) > 1 or bool(settings.config_file) or bool(settings.launch_args)


def accelerate_arguments(settings: AccelerateSettings, device: str) -> list[str]:
    """The ``accelerate launch`` options before the training module."""
    args: list[str] = []
    if settings.config_file:
        args += ["--config_file", str(Path(settings.config_file).expanduser().resolve())]
    elif (settings.num_processes or 1) > 1:
        args.append("--multi_gpu")  # torchrun-style processes; LeRobot selects gloo itself on a CPU
    if settings.num_processes:
        args += ["--num_processes", str(settings.num_processes)]
    given = {a.split("=", 1)[0] for a in settings.launch_args}
    if device == "cpu" and not settings.config_file and "--num_cpu_threads_per_process" not in given:
        threads = max(1, (os.cpu_count() or 1) // (settings.num_processes or 1))
        args += ["--num_cpu_threads_per_process", str(threads)]  # accelerate's default is one thread each
    return args + list(settings.launch_args)


def trainer_command(config: TrainingConfig, python: str, device: str, pretrained_model_dir: Path | None) -> list[str]:
    """The whole command line (an argument list: no shell)."""
    lerobot_args = config.lerobot_arguments(device, pretrained_model_dir)
    if not uses_accelerate(config.accelerate):
        return [python, "-m", ENTRY_MODULE, *lerobot_args]
    return [python, "-m", ACCELERATE_MODULE, *accelerate_arguments(config.accelerate, device), "-m", ENTRY_MODULE,
            *lerobot_args]


def machine_rank(settings: AccelerateSettings) -> int:
    """This machine's rank in a multi-machine run: from ``--machine_rank`` in launch_args, else the config file."""
    args = list(settings.launch_args)
    for i, arg in enumerate(args):
        name, sep, value = arg.partition("=")
        if name == "--machine_rank":
            value = value if sep else (args[i + 1] if i + 1 < len(args) else "0")
            return int(value)
    if settings.config_file:
        try:
            data = yaml.safe_load(Path(settings.config_file).expanduser().read_text()) or {}
        except (OSError, yaml.YAMLError):
            return 0  # accelerate reads the file itself and reports its problems
        return int(data.get("machine_rank", 0) or 0) if isinstance(data, dict) else 0
    return 0


def format_command(command: list[str]) -> str:
    return shlex.join(command)
