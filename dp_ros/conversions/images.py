"""Camera messages to and from HxWx3 uint8 RGB arrays.

Works on any object with the fields of sensor_msgs/Image or
sensor_msgs/CompressedImage: rclpy messages and the message objects that
``rosbags`` deserialises alike, so the nodes and the bag converter decode
images the same way.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# encoding -> (channels, conversion to RGB or None when already RGB)
_RAW_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, cv2.COLOR_BGR2RGB),  # OpenCV's default channel order
    "8UC4": (4, cv2.COLOR_BGRA2RGB),
}
SUPPORTED_ENCODINGS = tuple(_RAW_ENCODINGS)


class ImageConversionError(ValueError):
    """An image message cannot be turned into an RGB frame (the message says why)."""


def _as_bytes(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    return np.frombuffer(memoryview(data), dtype=np.uint8)


def image_to_rgb(msg: Any, copy: bool = True) -> np.ndarray:
    """sensor_msgs/Image -> (height, width, 3) uint8 RGB (a copy, safe to keep).

    With ``copy=False`` an rgb8 image may come back as a view of the message's
    buffer (for a caller that makes a new array anyway, e.g. by resizing)."""
    encoding = str(msg.encoding)
    if encoding not in _RAW_ENCODINGS:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, conversion = _RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has no pixels ({width}x{height})")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(f"image step {step} is smaller than width*channels = {row_bytes} for {encoding}")
    data = _as_bytes(msg.data)
    if data.size < step * height:
        raise ImageConversionError(
            f"image data has {data.size} bytes but {width}x{height} {encoding} with step {step} needs {step * height}")
    pixels = data[: step * height].reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(pixels).copy() if copy else pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png) -> (height, width, 3) uint8 RGB."""
    data = _as_bytes(msg.data)
    if data.size == 0:
        raise ImageConversionError(f"compressed image is empty (format {msg.format!r})")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ImageConversionError(f"cannot decode compressed image (format {msg.format!r}, {data.size} bytes)")
    if decoded.dtype != np.uint8:
        raise ImageConversionError(f"compressed image decodes to {decoded.dtype}, expected 8-bit")
    if decoded.ndim == 2:
        return cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    if decoded.shape[2] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to width x height (area interpolation when shrinking); no-op if already that size."""
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return rgb
    shrinking = rgb.shape[0] > height or rgb.shape[1] > width
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def message_to_rgb(msg: Any, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Image or CompressedImage -> RGB, resized to width x height when given."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        rgb = compressed_to_rgb(msg)
    else:
        resizing = width is not None and height is not None and (int(msg.width), int(msg.height)) != (width, height)
        rgb = image_to_rgb(msg, copy=not resizing)  # resizing makes the new array
    if width is not None and height is not None:
        rgb = resize_rgb(rgb, width, height)
    return rgb


def rgb_to_image_msg(rgb: np.ndarray, stamp: Any = None, frame_id: str = ""):
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image (rgb8)."""
    from sensor_msgs.msg import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"expected an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def rgb_to_compressed_msg(rgb: np.ndarray, stamp: Any = None, frame_id: str = "", fmt: str = "jpeg"):
    """(H, W, 3) uint8 RGB -> sensor_msgs/CompressedImage (jpeg or png)."""
    from sensor_msgs.msg import CompressedImage

    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode the frame as {fmt}")
    msg = CompressedImage()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = encoded.tobytes()
    return msg
