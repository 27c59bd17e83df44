"""Decoding only what a frame uses, straight from the message buffer, and in worker processes, changes nothing:
the frames equal those of decoding every message in full, and the datasets are the same."""
from __future__ import annotations

import numpy as np
import pytest

from bag_fixtures import BagSpec, load_dataset, write_bag
from lerobot_fixtures import tiny_robot

from dp_ros.conversions.images import message_to_rgb
from dp_ros.data.bags.bag_conversion import convert_bags
from dp_ros.data.bags.bag_episodes import in_frame_order
from dp_ros.data.bags.bag_reader import BagReader
from dp_ros.data.bags.bag_sync import BagSynchronizer, Frame
from dp_ros.data.bags.conversion_options import ConversionError, ConversionOptions
from dp_ros.data.bags.image_decoding import ImageDecodePool, decode_image, image_fields
from dp_ros.data.bags.topic_plan import plan_topics

FORMATS = {"front": "rgb8", "wrist": "bgr8", "side": "jpeg"}


def _robot():
    return tiny_robot(cameras=tuple(FORMATS), size=32)


def _bag(tmp_path, storage="mcap", **spec):
    robot = _robot()
    write_bag(tmp_path / "bag", robot, storage, BagSpec(seconds=2.0, camera_rate=30.0, image_size=(64, 48),
                                                        camera_formats=FORMATS, **spec))
    return robot, tmp_path / "bag"


def _frames(bag_path, robot, options, pool=None):
    with BagReader(bag_path) as bag:
        events = BagSynchronizer(bag, plan_topics(robot, options), robot, options, pool=pool).events()
        if pool is not None:
            events = in_frame_order(events, window=4)
        return [(e.time, e.values) for e in events if isinstance(e, Frame)]


def _assert_same_frames(first, second):
    assert len(first) == len(second) > 10
    for (t1, values1), (t2, values2) in zip(first, second):
        assert t1 == t2 and values1.keys() == values2.keys()
        for name in values1:
            assert values1[name].dtype == values2[name].dtype
            np.testing.assert_array_equal(values1[name], values2[name], err_msg=f"{name} at {t1}")


def test_the_buffer_fast_path_reads_the_fields_a_deserializer_reads(tmp_path):
    robot, path = _bag(tmp_path)
    with BagReader(path) as bag:
        for cam in robot.cameras:
            for message in list(bag.messages([cam.topic]))[:3]:
                fields, msg = image_fields(message.raw, message.msgtype), bag.deserialize(message)
                assert fields is not None
                np.testing.assert_array_equal(np.frombuffer(fields.data, np.uint8), np.asarray(msg.data))
                np.testing.assert_array_equal(decode_image(message.raw, message.msgtype, 32, 32),
                                              message_to_rgb(msg, 32, 32))
    assert image_fields(b"\x00\x00" + bytes(40), "sensor_msgs/msg/Image") is None  # big-endian: deserialized


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_decoding_only_the_picked_messages_equals_decoding_every_message(tmp_path, storage):
    robot, path = _bag(tmp_path, storage, camera_gaps=[(0.8, 1.1)])
    selective = _frames(path, robot, ConversionOptions())
    _assert_same_frames(selective, _frames(path, robot, ConversionOptions(decode_every_message=True)))

    convert_bags([path], tmp_path / "selective", robot, ConversionOptions(min_frames=3), progress=False)
    convert_bags([path], tmp_path / "every", robot, ConversionOptions(min_frames=3, decode_every_message=True),
                 progress=False)
    _assert_same_datasets(tmp_path / "selective", tmp_path / "every")


def test_decoding_one_bag_in_worker_processes_equals_the_serial_result(tmp_path):
    robot, path = _bag(tmp_path, camera_gaps=[(0.8, 1.1)])
    pool = ImageDecodePool(2)
    try:
        _assert_same_frames(_frames(path, robot, ConversionOptions()), _frames(path, robot, ConversionOptions(), pool))
    finally:
        pool.close()
    options = ConversionOptions(min_frames=3)
    serial = convert_bags([path], tmp_path / "serial", robot, options, progress=False)
    parallel = convert_bags([path], tmp_path / "parallel", robot, options, progress=False, jobs=2)
    assert [(e.label, e.frames) for e in serial.episodes] == [(e.label, e.frames) for e in parallel.episodes]
    assert len(serial.saved) == 2  # the camera gap split the bag
    _assert_same_datasets(tmp_path / "serial", tmp_path / "parallel")


def test_an_undecodable_image_in_a_worker_names_the_topic_and_writes_nothing(tmp_path):
    robot, path = _bag(tmp_path, encoding_override="yuv422")
    with pytest.raises(ConversionError, match=r"topic /camera/\w+/image_raw, message at .*yuv422"):
        convert_bags([path], tmp_path / "out", robot, ConversionOptions(min_frames=3), progress=False, jobs=2)
    assert not (tmp_path / "out").exists()


def _assert_same_datasets(first, second):
    a, b = load_dataset(first), load_dataset(second)
    assert (a.num_episodes, len(a)) == (b.num_episodes, len(b))
    for i in range(len(a)):
        x, y = a[i], b[i]
        for key in x:
            if hasattr(x[key], "numpy"):
                np.testing.assert_array_equal(x[key].numpy(), y[key].numpy(), err_msg=f"{key} of frame {i}")
            else:
                assert x[key] == y[key], key
