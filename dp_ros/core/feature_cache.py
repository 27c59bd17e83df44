"""Encode each camera frame once: image features reused by the next chunks.

With ``n_obs_steps: 2`` every chunk sees the newest frame and the one before;
the one before was the newest of the previous chunk, so half of every chunk's
images were already encoded. Diffusion Policy's encoder in inference (centre
crop, eval-mode normalisation) is a pure function of one frame, so a frame's
features can be kept, keyed by the frame's content (a hash of its pixels and
the camera), and reused exactly.

The observation encoding is assembled as LeRobot 0.6.1's
``DiffusionModel._prepare_global_conditioning`` does (state, then the cameras'
features per observation step, then the environment state, flattened); the
test ``test_feature_cache`` checks it equals LeRobot's own on the same input.
The cache is cleared on a reset and when the watchdog finds a sensor gap
(``PolicyRuntime.forget_frames``). ROS-free.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch


def frame_key(camera: str, frame: np.ndarray) -> tuple:
    """A key for one raw frame: its camera, shape and a 128-bit hash of its pixels."""
    digest = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()
    return camera, frame.shape, digest


class FrameFeatureCache:
    """The encoder's features of recently seen frames (least recently used ones dropped)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._features: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._features)

    def clear(self) -> None:
        self._features.clear()

    def get(self, key: tuple) -> torch.Tensor | None:
        features = self._features.get(key)
        if features is not None:
            self._features.move_to_end(key)
        return features

    def put(self, key: tuple, features: torch.Tensor) -> None:
        self._features[key] = features
        self._features.move_to_end(key)
        while len(self._features) > self.capacity:
            self._features.popitem(last=False)

    def conditioning(self, diffusion, state: torch.Tensor, images: torch.Tensor, keys: Sequence[Sequence[tuple]],
                     env_state: torch.Tensor | None = None) -> torch.Tensor:
        """The (1, global_cond_dim) encoding of one history; frames not cached yet are encoded in one call.

        ``state`` (1, S, d), ``images`` (1, S, N, C, H, W) preprocessed, ``keys[s][n]`` the key of the frame
        of camera n at observation step s.
        """
        steps, cameras = images.shape[1], images.shape[2]
        missing = [(s, n) for s in range(steps) for n in range(cameras) if self.get(keys[s][n]) is None]
        self.hits += steps * cameras - len(missing)
        self.misses += len(missing)
        if missing:
            for (s, n), features in zip(missing, self._encode(diffusion, images, missing)):
                self.put(keys[s][n], features)
        per_step = [torch.cat([self._features[keys[s][n]] for n in range(cameras)], dim=-1) for s in range(steps)]
        parts = [state, torch.stack(per_step)[None]]
        if env_state is not None:
            parts.append(env_state)
        return torch.cat(parts, dim=-1).flatten(start_dim=1)

    @staticmethod
    def _encode(diffusion, images: torch.Tensor, which: list[tuple[int, int]]) -> list[torch.Tensor]:
        if diffusion.config.use_separate_rgb_encoder_per_camera:
            return [diffusion.rgb_encoder[n](images[0, s, n][None])[0] for s, n in which]
        batch = torch.stack([images[0, s, n] for s, n in which])
        return list(diffusion.rgb_encoder(batch))
