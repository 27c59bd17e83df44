"""Where the time of a bag conversion goes, stage by stage, in one process (used by bench_bag2lerobot.py).

Each stage is run on its own over the whole bag and timed (wall and CPU seconds, all threads):

- read: the storage file into memory (MCAP: every chunk's compressed bytes; sqlite3: rosbags' reader);
- decompress: those chunks, zstd (MCAP only);
- deserialize every message (what a naive converter does) / only the messages the frames pick;
- image decode: the picked images as RGB at full size, from the message buffer;
- resize: those images to the dataset size, from the message buffer (decode and resize in one pass);
- sync: stamps, reordering and the as-of pick of every frame (a conversion's event stream with decoding
  timed apart and taken out, and reading taken out);
- encode + write: the frames, already decoded, through dp_ros's dataset writer (LeRobot, AV1 video).
"""
from __future__ import annotations

import time
from pathlib import Path


class Clock:
    def __init__(self):
        self.stages: dict[str, dict[str, float]] = {}

    def run(self, name: str, work, count_of=None):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        self.stages[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        if count_of is not None:
            self.stages[name]["count"] = count_of(result)
        return result


def _mcap_chunks(path: Path) -> list[tuple[bytes, object]]:
    from dp_ros.data.bags.mcap_chunks import chunk_index

    chunks = []
    with open(path, "rb") as stream:
        for chunk in chunk_index(path):
            stream.seek(chunk.chunk_start_offset + 1 + 8 + 8 + 8 + 8 + 4 + 4 + len(chunk.compression) + 8)
            chunks.append((stream.read(chunk.compressed_size), chunk))
    return chunks


def _picked_messages(bag, robot, options):
    """The frames' picked (stream name, message) pairs, and the sync's own time: events with decoding stubbed."""
    from dp_ros.data.bags.bag_sync import BagSynchronizer, Frame
    from dp_ros.data.bags.topic_plan import plan_topics

    picked: dict[tuple[str, float], object] = {}
    sync = BagSynchronizer(bag, plan_topics(robot, options), robot, options)

    def remember(name, stamp, message):
        picked.setdefault((name, stamp), message)
        return None

    sync.decode = remember
    frames = sum(isinstance(event, Frame) for event in sync.events())
    return frames, picked


def profile(bag_path: Path, robot, workdir: Path) -> dict[str, dict[str, float]]:
    from dp_ros.data.bags.bag_reader import BagReader
    from dp_ros.data.bags.conversion_options import ConversionOptions
    from dp_ros.data.bags.image_decoding import decode_image, image_fields
    from dp_ros.data.bags.mcap_chunks import zstd_module
    from dp_ros.conversions.images import message_to_rgb
    from dp_ros.data.datasets.dataset_writer import EpisodeWriter

    clock, options = Clock(), ConversionOptions()
    cameras = {cam.feature: cam for cam in robot.cameras}
    mcap = next(iter([bag_path] if bag_path.suffix == ".mcap" else sorted(bag_path.glob("*.mcap"))), None)
    with BagReader(bag_path) as bag:
        topics = [robot.joint_state_topic, robot.action.topic] + [cam.topic for cam in robot.cameras]
        if mcap is not None:
            chunks = clock.run("read", lambda: _mcap_chunks(mcap), len)
            clock.run("decompress", lambda: [zstd_module().decompress(data) for data, _ in chunks], len)
            del chunks
        else:
            clock.run("read", lambda: sum(1 for _ in bag.messages(topics)), lambda n: n)
        clock.run("read + decompress + parse records", lambda: sum(1 for _ in bag.messages(topics)), lambda n: n)
        clock.run("deserialize every message", lambda: sum(1 for m in bag.messages(topics) if bag.deserialize(m)),
                  lambda n: n)
        frames, picked = clock.run("read + sync (decoding stubbed)", lambda: _picked_messages(bag, robot, options),
                                   lambda r: r[0])
        images = [(name, m) for (name, _), m in picked.items() if name in cameras]
        clock.run("deserialize picked messages", lambda: [bag.deserialize(m) for m in picked.values()], len)
        clock.run("image decode (full size, from buffer)",
                  lambda: [message_to_rgb(image_fields(m.raw, m.msgtype)) for _, m in images], len)
        clock.run("image decode + resize (from buffer)",
                  lambda: [decode_image(m.raw, m.msgtype, cameras[n].width, cameras[n].height) for n, m in images], len)
        frame_values = _frames_for_writing(bag, robot, options)
    writer_root = workdir / "profile_dataset"

    def write():
        writer = EpisodeWriter(writer_root, robot, repo_id="local/profile", image_writer_threads=2)
        for values in frame_values:
            writer.add_frame(values, "demonstration")
        writer.save_episode()
        writer.close()
        return len(frame_values)

    clock.run("encode + write (decoded frames)", write, lambda n: n)
    stages = clock.stages
    stages["sync (derived)"] = {k: stages["read + sync (decoding stubbed)"][k] - stages["read + decompress + parse records"][k]
                                for k in ("wall_s", "cpu_s")}
    stages["frames"] = {"count": frames, "picked_messages": len(picked), "picked_images": len(images),
                        "image_messages": int(sum(bag_topic_count(bag_path, cam.topic) for cam in robot.cameras))}
    return stages


def bag_topic_count(bag_path: Path, topic: str) -> int:
    from dp_ros.data.bags.bag_reader import BagReader

    with BagReader(bag_path) as bag:
        return bag.topics[topic].count


def _frames_for_writing(bag, robot, options) -> list[dict]:
    from dp_ros.data.bags.bag_sync import BagSynchronizer, Frame
    from dp_ros.data.bags.topic_plan import plan_topics

    sync = BagSynchronizer(bag, plan_topics(robot, options), robot, options)
    return [event.values for event in sync.events() if isinstance(event, Frame)]
