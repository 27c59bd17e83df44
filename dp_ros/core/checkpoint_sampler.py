"""Which sampler a checkpoint runs with when the user does not say.

A checkpoint may record its own sampler in ``dp_ros_sampler.json`` beside
LeRobot's files (a distilled student records ``consistency`` and its steps;
LeRobot ignores the file). Without one, dp_ros uses the fastest sampler that
kept the demo's success (README, "which sampler to use"), not the checkpoint's
training scheduler (LeRobot: DDPM with 100 steps, about 1 s per chunk on a
2-core CPU). ROS-free.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dp_ros.core.choices import SamplerChoice

SAMPLER_FILE = "dp_ros_sampler.json"
DEFAULT_SAMPLER = "sde-dpmsolver++"
DEFAULT_STEPS = 5
"""SDE-DPM-Solver++ with 5 steps: 90% on the demo's task (DDPM-100: 95%, ±10% at 20 episodes) at 1/14 of the cost;
the deterministic few-step samplers reach 60-65% there."""
DEFAULT_CHOICE = SamplerChoice(DEFAULT_SAMPLER, DEFAULT_STEPS)
"""The same as a sampler choice (``DEFAULT_CHOICE.text``: the "sampler:steps" default of the demo and benchmarks)."""
CONSISTENCY_STEPS = 3
"""A consistency student's steps, recorded by ``dp-ros distill`` and used when none is recorded: 3 kept the demo
teacher's closed-loop success (95% / 88% at +0 / +300 ms on tuning instances; 2 steps 90% / 75%; one step is
unreliable here, 7%, and in the published results)."""


@dataclass(frozen=True)
class SamplerSetting:
    name: str
    steps: int
    source: str
    """Where the choice came from: "parameters", "checkpoint" (its sampler file) or "dp_ros default"."""


def read_checkpoint_sampler(folder: Path) -> dict | None:
    """The checkpoint's recorded sampler ({"noise_scheduler", "num_inference_steps", ...}), None if it has none."""
    path = Path(folder) / SAMPLER_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("noise_scheduler"), str) \
            or not isinstance(data.get("num_inference_steps"), int):
        raise ValueError(f"{path} must hold noise_scheduler (text) and num_inference_steps (a whole number)")
    return data


def write_checkpoint_sampler(folder: Path, name: str, steps: int, **details) -> Path:
    path = Path(folder) / SAMPLER_FILE
    path.write_text(json.dumps({"noise_scheduler": name, "num_inference_steps": steps, **details}, indent=2) + "\n")
    return path


def choose_sampler(folder: Path, config, name: str | None, steps: int | None) -> SamplerSetting:
    """The sampler and steps to run: the parameters', else the checkpoint's file's, else dp_ros's default."""
    recorded = read_checkpoint_sampler(folder)
    if name:
        name = name.lower()
        if steps:
            return SamplerSetting(name, steps, "parameters")
        if recorded and recorded["noise_scheduler"] == name:
            return SamplerSetting(name, recorded["num_inference_steps"], "parameters and checkpoint")
        if name == "consistency":
            return SamplerSetting(name, CONSISTENCY_STEPS, "parameters")
        if name == DEFAULT_SAMPLER:
            return SamplerSetting(name, DEFAULT_STEPS, "parameters")
        return SamplerSetting(name, config.num_inference_steps or config.num_train_timesteps, "parameters")
    if recorded:
        return SamplerSetting(recorded["noise_scheduler"], steps or recorded["num_inference_steps"], "checkpoint")
    return SamplerSetting(DEFAULT_SAMPLER, steps or DEFAULT_STEPS, "dp_ros default")
