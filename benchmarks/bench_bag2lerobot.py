"""Speed and memory of rosbag2 -> LeRobot conversion (dp-ros bag2lerobot) against a naive converter, in one run.

Each bag holds 2 cameras (sensor_msgs/Image rgb8, 640x480, 30 Hz), joint states
(100 Hz, joints in another order than the robot interface) and a leader arm
(100 Hz), converted for a robot interface with both cameras at --size x --size
and --fps frames per second. Two storage formats of the same content:

- sqlite3: a rosbag2 folder written by rosbags (uncompressed);
- mcap-zstd: one MCAP file written by the ``mcap`` library with its defaults
  (zstd-compressed 1 MiB chunks).

For each, in fresh processes that first convert a 1 s bag (so that importing
LeRobot, torch and the codecs is not counted as conversion time):

- dp_ros: ``convert_bags`` with the defaults a user gets;
- naive: a ~40-line converter built on rosbags' AnyReader and
  ``LeRobotDataset.add_frame`` (every message decoded, the latest of each stream
  taken at each frame time), the baseline the issue measured against.

Reported: x real time (bag seconds / conversion seconds, wall), CPU seconds per
bag second (all threads; robust on a busy machine), peak memory, and the ratio
dp_ros / naive. Then ``--jobs``: the same --job-bags bags converted with 1 and
with N worker processes, throughput ratio and peak memory of each job.

Usage:
  .venv/bin/python benchmarks/bench_bag2lerobot.py [--seconds 30] [--storage sqlite3 mcap-zstd]
      [--jobs 2] [--job-bags 4] [--job-seconds 10] [--size 96] [--fps 10] [--output bench.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))  # the bag writer shared with the tests
STORAGES = {"sqlite3": {"storage": "sqlite3"}, "mcap-zstd": {"storage": "mcap", "writer": "mcap"}}


def robot_interface(size: int, fps: int):
    from dp_ros.robot_interface import parse_robot_interface

    return parse_robot_interface({
        "name": "bench_arm", "control_rate": fps, "command_rate": 50, "joint_state_topic": "/joint_states",
        "joints": [{"name": f"joint_{k}", "position_limits": [-3, 3], "velocity_limit": 2} for k in range(6)],
        "cameras": [{"name": name, "topic": f"/camera/{name}/image_raw", "type": "image", "width": size,
                     "height": size} for name in ("front", "wrist")],
        "command": {"topic": "/arm_controller/joint_trajectory", "type": "joint_trajectory"},
        "action": {"source": "leader", "topic": "/leader/joint_states"},
    }, source="benchmark")


def write_bench_bag(path: Path, seconds: float, storage: str, size: int, fps: int, start: float = 1000.0) -> None:
    from bag_fixtures import BagSpec, write_bag

    write_bag(path, robot_interface(size, fps), spec=BagSpec(seconds=seconds, start=start, state_rate=100,
                                                             leader_rate=100, camera_rate=30, image_size=(640, 480)),
              **STORAGES[storage])


def peak_rss_mb() -> float:
    from dp_ros.data.bags.parallel_conversion import peak_rss_mb as measure

    return measure()


def naive_convert(bag: Path, output: Path, robot) -> int:
    """The baseline: every message decoded with AnyReader, the latest of each stream at each frame time."""
    import cv2
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from rosbags.highlevel import AnyReader

    files = [bag] if bag.is_file() or (bag / "metadata.yaml").exists() else sorted(bag.glob("*.mcap"))
    dataset = LeRobotDataset.create(repo_id="local/naive", fps=robot.fps, features=robot.lerobot_features(),
                                    root=output, use_videos=True)
    latest, next_frame, frames = {}, None, 0
    topics = {robot.joint_state_topic: "observation.state", robot.action.topic: "action",
              **{cam.topic: cam.feature for cam in robot.cameras}}
    with AnyReader(files) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, timestamp, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            key = topics[connection.topic]
            if key.startswith("observation.images."):
                image = msg.data.reshape(msg.height, msg.width, 3)
                latest[key] = cv2.resize(image, (robot.cameras[0].width, robot.cameras[0].height),
                                         interpolation=cv2.INTER_AREA)
            else:
                order = [list(msg.name).index(name) for name in robot.joint_names]
                latest[key] = np.asarray(msg.position, dtype=np.float32)[order]
            next_frame = timestamp if next_frame is None else next_frame
            while timestamp >= next_frame and len(latest) == len(topics):
                dataset.add_frame({**latest, "task": "demonstration"})
                frames += 1
                next_frame += int(1e9 / robot.fps)
    dataset.save_episode()
    dataset.finalize()
    return frames


def convert(kind: str, bags: list[str], output: str, robot, jobs: int) -> tuple[int, list]:
    from dp_ros.data.bags.bag_conversion import convert_bags

    if kind == "naive":
        return naive_convert(Path(bags[0]), Path(output), robot), []
    report = convert_bags(bags, output, robot, progress=False, jobs=jobs)
    return report.frames, report.jobs


def child(kind: str, bags: list[str], output: str, size: int, fps: int, jobs: int, warm_up: str) -> None:
    """One conversion, measured in its own process; prints the figures as JSON.

    A short bag is converted first (with the same jobs), so that what LeRobot, PyAV and the codecs load on
    first use is not counted as conversion time (for either converter, with any number of jobs)."""
    from dp_ros.data.bags.bag_reader import BagReader

    bag_seconds = 0.0
    for bag in bags:
        with BagReader(bag) as reader:
            bag_seconds += reader.duration
    robot = robot_interface(size, fps)
    convert(kind, [warm_up] * min(jobs, 2), output + "_warm_up", robot, jobs)  # with jobs: starts the worker server
    shutil.rmtree(output + "_warm_up")
    rss_imported = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    frames, job_memory = convert(kind, bags, output, robot, jobs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"bag_seconds": bag_seconds, "frames": frames, "wall_s": wall, "cpu_s": cpu,
                      "x_real_time": bag_seconds / wall, "cpu_s_per_bag_s": cpu / bag_seconds,
                      "peak_rss_mb": peak_rss_mb(), "imported_rss_mb": rss_imported, "jobs": job_memory}))


def measure(kind: str, bags: list[Path], workdir: Path, size: int, fps: int, jobs: int = 1) -> dict:
    output = workdir / f"dataset_{kind}"
    shutil.rmtree(output, ignore_errors=True)
    warm_up = workdir / "warm_up"
    if not warm_up.exists():
        write_bench_bag(warm_up, 1.0, "sqlite3", size, fps)
    proc = subprocess.run([sys.executable, __file__, "--child", kind, str(output), str(warm_up), *map(str, bags),
                           "--size", str(size), "--fps", str(fps), "--jobs", str(jobs)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} conversion of {bags} failed:\n{proc.stdout}\n{proc.stderr}")
    shutil.rmtree(output, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="bag length for the dp_ros vs naive comparison")
    parser.add_argument("--storage", nargs="*", choices=list(STORAGES), default=list(STORAGES),
                        help="storage formats for the dp_ros vs naive comparison (none: only --jobs)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the --jobs comparison (0: skip it)")
    parser.add_argument("--job-bags", type=int, default=4, help="bags converted with 1 and with --jobs processes")
    parser.add_argument("--job-seconds", type=float, default=10.0, help="length of each of those bags")
    parser.add_argument("--size", type=int, default=96, help="camera width and height in the dataset")
    parser.add_argument("--fps", type=int, default=10, help="dataset fps (the robot interface's control_rate)")
    parser.add_argument("--workdir", default="/tmp/bench_bag2lerobot", help="where bags and datasets are written")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--child", nargs="+", metavar=("KIND", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[3:], args.child[1], args.size, args.fps, args.jobs, args.child[2])
        return

    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    load = os.getloadavg()[0]
    print(f"bag2lerobot benchmark: 2 cameras 640x480 rgb8 @ 30 Hz + joint states and leader @ 100 Hz -> "
          f"{args.size}x{args.size} @ {args.fps} fps; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}),"
          f" load average {load:.1f} at the start")
    figures: dict = {"cpus": os.cpu_count(), "load_average_start": load, "storages": {}}
    print(f"{'storage':10s} {'converter':9s} {'bag s':>6s} {'frames':>6s} {'wall s':>7s} {'x real time':>11s} "
          f"{'CPU s/bag s':>11s} {'peak MB':>8s}")
    for storage in args.storage:
        bag = workdir / f"bag_{storage}"
        write_bench_bag(bag, args.seconds, storage, args.size, args.fps)
        results = {kind: measure(kind, [bag], workdir, args.size, args.fps) for kind in ("dp_ros", "naive")}
        for kind, r in results.items():
            print(f"{storage:10s} {kind:9s} {r['bag_seconds']:6.1f} {r['frames']:6d} {r['wall_s']:7.2f} "
                  f"{r['x_real_time']:10.1f}x {r['cpu_s_per_bag_s']:11.3f} {r['peak_rss_mb']:8.0f}")
        ratio = results["dp_ros"]["x_real_time"] / results["naive"]["x_real_time"]
        print(f"{storage:10s} dp_ros / naive: {ratio:.2f}x the throughput")
        figures["storages"][storage] = {**results, "ratio_to_naive": ratio}
        shutil.rmtree(bag, ignore_errors=True)

    if args.jobs > 1:
        bags = [workdir / f"fleet_{k}" for k in range(args.job_bags)]
        for k, bag in enumerate(bags):
            write_bench_bag(bag, args.job_seconds, "mcap-zstd", args.size, args.fps, start=1000.0 + 100 * k)
        serial = measure("dp_ros", bags, workdir, args.size, args.fps, jobs=1)
        parallel = measure("dp_ros", bags, workdir, args.size, args.fps, jobs=args.jobs)
        print(f"--jobs: {len(bags)} mcap-zstd bags of {args.job_seconds:g} s: 1 job {serial['wall_s']:.1f} s "
              f"({serial['x_real_time']:.1f}x real time, peak {serial['peak_rss_mb']:.0f} MB); {args.jobs} jobs "
              f"{parallel['wall_s']:.1f} s ({parallel['x_real_time']:.1f}x real time): "
              f"{serial['wall_s'] / parallel['wall_s']:.2f}x faster")
        for job in parallel["jobs"]:
            print(f"  job {job['job']}: {job['bags']} bags, {job['cpu_s']:.1f} CPU s, peak memory {job['peak_rss_mb']:.0f} MB")
        parallel_cpu = parallel["cpu_s"] + sum(job["cpu_s"] for job in parallel["jobs"])
        print(f"  CPU s per bag s: 1 job {serial['cpu_s_per_bag_s']:.3f}, {args.jobs} jobs (all processes) "
              f"{parallel_cpu / parallel['bag_seconds']:.3f}")
        figures["jobs"] = {"bags": len(bags), "seconds_each": args.job_seconds, "serial": serial, "parallel": parallel,
                           "speedup": serial["wall_s"] / parallel["wall_s"]}
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(workdir, ignore_errors=True)
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
