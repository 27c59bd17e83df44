"""What the policy controller runs (a chunk predictor) and how it behaves (its settings), without ROS."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from dp_ros.core.chunk_guidance import ChunkGuide


class ChunkPredictor(Protocol):
    n_obs_steps: int
    n_action_steps: int
    future_steps: int
    """Actions a guided chunk holds (from the newest observation's time to the end of the horizon)."""

    def predict_chunk(self, history: Sequence[dict[str, np.ndarray]],
                      guide: ChunkGuide | None = None) -> np.ndarray: ...


@dataclass
class ControllerConfig:
    """Behaviour of the policy controller: the policy node's parameters of the same names, whose declaration
    (dp_ros.node_params.policy) holds the defaults (``controller_config`` makes one from it)."""

    replan_steps: int
    """Request the next chunk when this many planned actions or fewer remain (guided: this many of the
    chunk's first n_action_steps; the actions after those are a reserve that runs while the next chunk
    is late)."""
    transition: str
    """How a new chunk joins the old plan: blend, ensemble, replace or guided (the chunk is sampled as a
    continuation of the plan, see dp_ros.core.chunk_guidance)."""
    blend_steps: int
    """Actions over which blend moves from the old plan to the new one."""
    blend_max_deviation: float
    """blend: plans differing by more than this (rad or m) anywhere in the overlap are different
    solutions; the new chunk then replaces the old instead of being averaged with it."""
    ensemble_decay: float
    """ensemble: weight exp(-decay * age) of older predictions."""
    watchdog_timeout: float
    """Seconds after which a silent camera or joint state stops commanding. 0: two control periods from the
    newest sample to the last command (longer only for a sensor slower than that; see watchdog_limit)."""
    velocity_scale: float
    """Fraction of the velocity (and acceleration) limits the commands may use."""
    late_margin: float
    """Actions due within this many seconds after a chunk arrives count as late too."""
    trajectory_lead_time: float
    """Seconds after the controller takes a trajectory at which its first point is reached; 0: one policy step."""
    timing_margin: float
    """Seconds by which the controller may start a command earlier or later than expected (its update period
    plus the delivery jitter); the first segment keeps that much full-speed motion in reserve."""
    delay_margin: float
    """guided: seconds added to the expected delay of a chunk (a capped high quantile of the recent delays from
    observation to merge, see dp_ros.core.chunk_delay); the plan's actions due before then are pinned in the
    new chunk."""
    guidance_gradient_steps: int
    """guided: denoising steps (after the first) that also get RTC's guidance on the predicted clean sample, a
    vector-Jacobian product through the network costing about two network calls each; 0 = inpainting only."""
    guidance_max_weight: float
    """guided: largest weight of that guidance (RTC's beta)."""
