"""Camera messages of a bag to resized RGB frames, straight from the serialized message, in or out of process.

A sensor_msgs/Image of 640x480 is 900 KB; deserializing it copies the pixels
into a new array before they are resized to the dataset's size. Here the few
fields in front of the pixels are read from the little-endian CDR buffer and
the image is resized from a view of the buffer itself
(:func:`dp_ros.conversions.images.message_to_rgb` on those fields: the same
conversion as for a deserialized message). Anything else (big-endian CDR, a
buffer that does not parse) is deserialized as before.

:class:`ImageDecodePool` decodes in worker processes, so that decoding one bag
overlaps with the video encoding of its earlier frames; a frame's result is the
same function's result, only computed elsewhere.
"""
from __future__ import annotations

import struct
from concurrent.futures import Future, ProcessPoolExecutor
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from dp_ros.conversions.images import message_to_rgb

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
_U32 = struct.Struct("<I")


class _Cursor:
    """Reads a little-endian CDR payload (alignment counted from after the 4-byte encapsulation header)."""

    def __init__(self, raw: memoryview):
        self.raw = raw
        self.position = 4

    def u32(self) -> int:
        self.position += -(self.position - 4) % 4
        (value,) = _U32.unpack_from(self.raw, self.position)
        self.position += 4
        return value

    def u8(self) -> int:
        value = self.raw[self.position]
        self.position += 1
        return value

    def take(self, size: int) -> memoryview:
        if self.position + size > len(self.raw):
            raise ValueError("the message ends inside a field")
        view = self.raw[self.position:self.position + size]
        self.position += size
        return view

    def string(self) -> str:
        return bytes(self.take(self.u32())).rstrip(b"\0").decode()


def image_fields(raw: bytes | memoryview, msgtype: str) -> SimpleNamespace | None:
    """The fields of a serialized Image or CompressedImage, pixels as a view of ``raw``; None when it is not
    little-endian CDR or does not parse (then the caller deserializes it)."""
    raw = memoryview(raw)
    if len(raw) < 16 or not raw[1] & 1:
        return None
    cursor = _Cursor(raw)
    try:
        cursor.take(8)  # header stamp
        cursor.string()  # header frame_id
        if msgtype == COMPRESSED_TYPE:
            image_format = cursor.string()
            return SimpleNamespace(format=image_format, data=cursor.take(cursor.u32()))
        height, width, encoding = cursor.u32(), cursor.u32(), cursor.string()
        cursor.u8()  # is_bigendian: 8-bit encodings only
        step = cursor.u32()
        return SimpleNamespace(height=height, width=width, encoding=encoding, step=step, data=cursor.take(cursor.u32()))
    except (ValueError, struct.error, UnicodeDecodeError, IndexError):
        return None


def decode_image(raw: bytes | memoryview, msgtype: str, width: int, height: int,
                 deserialize: Callable[[Any], Any] | None = None) -> np.ndarray:
    """A camera message -> (height, width, 3) uint8 RGB; ``deserialize`` for a message the fast path cannot read
    (default: ROS 2 Jazzy's definition of the standard type)."""
    fields = image_fields(raw, msgtype)
    if fields is None:
        if deserialize is None:
            from dp_ros.data.bags.bag_types import standard_store

            fields = standard_store().deserialize_cdr(raw, msgtype)
        else:
            fields = deserialize(raw)
    return np.ascontiguousarray(message_to_rgb(fields, width, height))


class ImageDecodePool:
    """``jobs`` worker processes decoding camera messages (started from a clean interpreter: forkserver)."""

    def __init__(self, jobs: int):
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["dp_ros.data.bags.image_decoding"])
        self.jobs = jobs
        self._executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context)

    def submit(self, raw: bytes | memoryview, msgtype: str, width: int, height: int) -> Future:
        return self._executor.submit(decode_image, bytes(raw), msgtype, width, height)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
