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
from pathlib import Path

import yaml

from dp_ros.training.configuration_training import AccelerateSettings, TrainingConfig, TrainingConfigError

ENTRY_MODULE = "dp_ros.training.lerobot_entry"
ACCELERATE_MODULE = "accelerate.commands.launch"


def uses_accelerate(settings: AccelerateSettings) -> bool:
    """True when the run goes through ``accelerate launch`` (several processes or accelerate options given)."""
    return (settings.num_processes or 1) > 1 or bool(settings.config_file) or bool(settings.launch_args)


def accelerate_arguments(settings: AccelerateSettings, device: str, cpu_threads: int | None = None) -> list[str]:
    """The ``accelerate launch`` options before the training module.

    Without a config file, dp_ros passes the values accelerate would otherwise default to with a
    warning (one machine, no mixed precision, no dynamo) and, for CPU training, gives each
    process ``cpu_threads`` threads, or an equal share of the cores (accelerate's default is one).
    """
    args: list[str] = []
    if settings.config_file:
        args += ["--config_file", str(Path(settings.config_file).expanduser().resolve())]
    elif (settings.num_processes or 1) > 1:
        args.append("--multi_gpu")  # torchrun-style processes; LeRobot selects gloo itself on a CPU
    if settings.num_processes:
        args += ["--num_processes", str(settings.num_processes)]
    if not settings.config_file:
        machines = int_option(settings.launch_args, "--num_machines", 1)
        local_processes = max(1, (settings.num_processes or 1) // machines)
        defaults = {"--num_machines": "1", "--mixed_precision": "no", "--dynamo_backend": "no"}
        if device == "cpu":
            threads = cpu_threads or max(1, (os.cpu_count() or 1) // local_processes)
            defaults["--num_cpu_threads_per_process"] = str(threads)
        for name, value in defaults.items():
            if launch_option(settings.launch_args, name) is None:
                args += [name, value]
    return args + list(settings.launch_args)


def launch_option(launch_args: list[str], name: str) -> str | None:
    """The value of an ``accelerate launch`` option given as ``--name=value`` or ``--name value``."""
    for i, arg in enumerate(launch_args):
        key, sep, value = arg.partition("=")
        if key == name:
            return value if sep else (launch_args[i + 1] if i + 1 < len(launch_args) else "")
    return None


def int_option(launch_args: list[str], name: str, default: int) -> int:
    value = launch_option(launch_args, name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise TrainingConfigError(f"accelerate.launch_args: {name} must be a whole number, got {value!r}") from None


def trainer_command(config: TrainingConfig, python: str, device: str, pretrained_model_dir: Path | None) -> list[str]:
    """The whole command line (an argument list: no shell)."""
    lerobot_args = config.lerobot_arguments(device, pretrained_model_dir)
    if not uses_accelerate(config.accelerate):
        return [python, "-m", ENTRY_MODULE, *lerobot_args]
    return [python, "-m", ACCELERATE_MODULE, *accelerate_arguments(config.accelerate, device, config.cpu_threads),
            "-m", ENTRY_MODULE, *lerobot_args]


def machine_rank(settings: AccelerateSettings) -> int:
    """This machine's rank in a multi-machine run: from ``--machine_rank`` in launch_args, else the config file."""
    if launch_option(settings.launch_args, "--machine_rank") is not None:
        return int_option(settings.launch_args, "--machine_rank", 0)
    if settings.config_file:
        try:
            data = yaml.safe_load(Path(settings.config_file).expanduser().read_text()) or {}
        except (OSError, yaml.YAMLError):
            return 0  # accelerate reads the file itself and reports its problems
        return int(data.get("machine_rank", 0) or 0) if isinstance(data, dict) else 0
    return 0

