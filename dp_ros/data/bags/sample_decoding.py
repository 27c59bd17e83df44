"""A frame's samples, decoded: joint positions and camera images from the bag messages that a frame picked.

Only the messages that as-of sampling picks are decoded (at 10 fps from 30 Hz
cameras, one camera message in three), and a message picked by several frames
once. ``decode_every_message`` decodes every message on arrival instead, the
way a naive converter does (for comparison: the dataset is the same). With an
:class:`~dp_ros.data.bags.image_decoding.ImageDecodePool` the images are decoded
in worker processes: a frame then holds :class:`PendingImage` values until
:func:`resolved` waits for them, in frame order.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from dp_ros.conversions.commands import CommandError, parse_command
from dp_ros.conversions.images import ImageConversionError, message_to_rgb
from dp_ros.conversions.joint_state import JointOrder, JointStateError
from dp_ros.data.bags.bag_reader import BagMessage, BagReader
from dp_ros.data.bags.conversion_options import ConversionError
from dp_ros.data.bags.image_decoding import ImageDecodePool, decode_image
from dp_ros.data.bags.topic_plan import JOINT_STATE_TYPE
from dp_ros.robot_interface import Camera


@dataclass
class PendingImage:
    """An image being decoded in a worker process."""

    future: Future
    where: str
    """The bag, topic and time, for the error message."""

    def result(self) -> np.ndarray:
        try:
            return self.future.result()
        except ImageConversionError as exc:
            raise ConversionError(f"{self.where}: {exc}") from None


def resolved(values: dict[str, Any]) -> dict[str, np.ndarray]:
    """A frame's values with every :class:`PendingImage` waited for."""
    return {name: value.result() if isinstance(value, PendingImage) else value for name, value in values.items()}


class SampleDecoder:
    """Decodes the messages of one bag's streams into dataset values (see the module's docstring)."""

    def __init__(self, bag: BagReader, cameras: dict[str, Camera], order: JointOrder,
                 pool: ImageDecodePool | None = None):
        self.bag = bag
        self.cameras = cameras
        self.order = order
        self.pool = pool
        self._latest: dict[str, tuple[float, Any]] = {}

    def __call__(self, name: str, stamp: float, sample: BagMessage | np.ndarray) -> Any:
        """The value of stream ``name``'s message stamped ``stamp`` (decoded once when picked again)."""
        if isinstance(sample, np.ndarray):  # decoded on arrival (decode_every_message)
            return sample
        cached = self._latest.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if self.pool is not None and name in self.cameras:
            cam = self.cameras[name]
            value: Any = PendingImage(self.pool.submit(sample.raw, sample.msgtype, cam.width, cam.height),
                                      self._where(sample))
        else:
            value = self._guarded(self._decode, name, sample)
        self._latest[name] = (stamp, value)
        return value

    def every_message(self, name: str, message: BagMessage) -> np.ndarray:
        """``message`` decoded the plain way: deserialized in full, then converted."""
        return self._guarded(self._decode_deserialized, name, message)

    def _decode(self, name: str, message: BagMessage) -> np.ndarray:
        if name in self.cameras:
            cam = self.cameras[name]
            return decode_image(message.raw, message.msgtype, cam.width, cam.height,
                                deserialize=self.bag.decoder(message.topic))
        return self._decode_deserialized(name, message)

    def _decode_deserialized(self, name: str, message: BagMessage) -> np.ndarray:
        msg = self.bag.deserialize(message)
        if name in self.cameras:
            cam = self.cameras[name]
            return np.ascontiguousarray(message_to_rgb(msg, cam.width, cam.height))
        if message.msgtype == JOINT_STATE_TYPE:
            return self.order.positions(msg).astype(np.float32)
        return parse_command(msg, self.order).positions[0].astype(np.float32)

    def _guarded(self, decode, name: str, message: BagMessage) -> np.ndarray:
        try:
            return decode(name, message)
        except (ImageConversionError, JointStateError, CommandError) as exc:
            raise ConversionError(f"{self._where(message)}: {exc}") from None

    def _where(self, message: BagMessage) -> str:
        return f"{self.bag.path}: topic {message.topic}, message at {message.receive_ns / 1e9:.3f} s"
