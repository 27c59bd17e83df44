"""The training-time noise schedule of a checkpoint, which every sampler walks back (ROS-free)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NoiseSchedule:
    """The training-time noise schedule of a checkpoint (fields of LeRobot's DiffusionConfig)."""

    num_train_timesteps: int
    beta_schedule: str
    beta_start: float
    beta_end: float
    prediction_type: str
    clip_sample: bool
    clip_sample_range: float

    @classmethod
    def from_config(cls, config) -> "NoiseSchedule":
        return cls(config.num_train_timesteps, config.beta_schedule, config.beta_start, config.beta_end,
                   config.prediction_type, config.clip_sample, config.clip_sample_range)
