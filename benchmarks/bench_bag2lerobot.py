"""Speed and memory of rosbag2 -> LeRobot conversion (dp-ros bag2lerobot) against a naive converter, in one run.

Each bag holds 2 cameras (sensor_msgs/Image rgb8, 640x480, 30 Hz), joint states
(100 Hz, joints in another order than the robot interface) and a leader arm
(100 Hz), converted for a robot interface with both cameras at --size x --size
and --fps frames per second. Two storage formats of the same content:

- sqlite3: a rosbag2 folder written by rosbags (uncompressed);
- mcap-zstd: one MCAP file written by the ``mcap`` library with its defaults
  (zstd-compressed 1 MiB chunks).

In one run, for each storage format:

- conversion only: ``convert_bags`` (dp_ros, defaults) and a naive ~40-line converter built on rosbags'
  AnyReader and ``LeRobotDataset.add_frame`` (every message decoded, the latest of each stream taken at
  each frame time), each in a fresh process after converting a 1 s bag first (imports not counted);
- whole process, as a user runs it (imports included): ``dp-ros bag2lerobot`` with ``--jobs 1`` and
  ``--jobs 2`` (one bag: its images decoded in two worker processes), and the naive converter;
- peak memory of each (the main process; workers are listed apart);
- for MCAP, the per-stage profile (benchmarks/profile_bag2lerobot.py).

Then the peak memory of a ``--long-seconds`` MCAP bag against the short one, and ``--jobs`` across
``--job-bags`` bags (1 job against N).

Usage:
  .venv/bin/python benchmarks/bench_bag2lerobot.py [--seconds 30] [--storage sqlite3 mcap-zstd]
      [--long-seconds 300] [--jobs 2] [--job-bags 4] [--job-seconds 10] [--size 96] [--fps 10] [--output bench.json]
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
sys.path.insert(0, str(REPO / "benchmarks"))
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


def whole_process(kind: str, bag: Path, workdir: Path, robot_yaml: Path, jobs: int = 1) -> dict:
    """One conversion as a user runs it, imports included: wall seconds and the process's peak memory."""
    output = workdir / f"whole_{kind}_{jobs}"
    shutil.rmtree(output, ignore_errors=True)
    if kind == "naive":
        command = [sys.executable, __file__, "--naive", str(bag), str(output), "--robot-yaml", str(robot_yaml)]
    else:
        command = [str(Path(sys.executable).parent / "dp-ros"), "bag2lerobot", str(bag), "-o", str(output),
                   "--robot-config", str(robot_yaml), "--no-progress", "--jobs", str(jobs)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.decode()}\n{err.decode()}")
    shutil.rmtree(output, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def run_profile(bag: Path, workdir: Path, size: int, fps: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--profile", str(bag), "--size", str(size), "--fps", str(fps),
                           "--workdir", str(workdir)], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"profile failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_profile(stages: dict, bag_seconds: float) -> None:
    counts = stages.pop("frames")
    print(f"  profile ({counts['count']} frames; {counts['picked_images']} of {counts['image_messages']} camera "
          f"messages picked):")
    for name, figures in stages.items():
        count = f" ({figures['count']})" if "count" in figures else ""
        print(f"    {name:42s} {figures['wall_s']:6.2f} s wall {figures['cpu_s']:6.2f} s CPU "
              f"{bag_seconds / max(figures['wall_s'], 1e-9):7.1f}x real time{count}")
    stages["frames"] = counts


def compare_storage(storage: str, args, workdir: Path, robot_yaml: Path) -> dict:
    bag = workdir / f"bag_{storage}"
    write_bench_bag(bag, args.seconds, storage, args.size, args.fps)
    results = {kind: measure(kind, [bag], workdir, args.size, args.fps) for kind in ("dp_ros", "naive")}
    for kind, r in results.items():
        print(f"{storage:10s} {kind:9s} conversion only {r['wall_s']:6.2f} s {r['x_real_time']:5.1f}x real time "
              f"{r['cpu_s_per_bag_s']:.3f} CPU s/bag s, peak {r['peak_rss_mb']:.0f} MB")
    whole = {f"dp_ros_jobs{j}": whole_process("dp_ros", bag, workdir, robot_yaml, j) for j in (1, 2)}
    whole["naive"] = whole_process("naive", bag, workdir, robot_yaml)
    for kind, r in whole.items():
        print(f"{storage:10s} {kind:12s} whole process {r['wall_s']:6.2f} s {args.seconds / r['wall_s']:5.1f}x real "
              f"time, {r['cpu_s']:.1f} CPU s, peak {r['peak_rss_mb']:.0f} MB (main process)")
    ratio = whole["naive"]["wall_s"] / whole["dp_ros_jobs1"]["wall_s"]
    print(f"{storage:10s} whole process, dp_ros (--jobs 1) against naive: {ratio:.2f}x faster; conversion only "
          f"{results['dp_ros']['x_real_time'] / results['naive']['x_real_time']:.2f}x")
    figures = {**results, "whole_process": whole, "whole_ratio_to_naive": ratio}
    if storage == "mcap-zstd" and not args.no_profile:
        figures["profile"] = run_profile(bag, workdir, args.size, args.fps)
        print_profile(figures["profile"], args.seconds)
    shutil.rmtree(bag, ignore_errors=True)
    return figures


def long_bag_memory(args, workdir: Path, robot_yaml: Path, short_peak: float) -> dict:
    bag = workdir / "bag_long"
    write_bench_bag(bag, args.long_seconds, "mcap-zstd", args.size, args.fps)
    long = whole_process("dp_ros", bag, workdir, robot_yaml)
    print(f"memory: {args.long_seconds:g} s mcap-zstd bag peak {long['peak_rss_mb']:.0f} MB against "
          f"{short_peak:.0f} MB for {args.seconds:g} s: {long['peak_rss_mb'] / short_peak:.2f}x "
          f"(whole process {long['wall_s']:.1f} s, {args.long_seconds / long['wall_s']:.1f}x real time)")
    shutil.rmtree(bag, ignore_errors=True)
    return {**long, "ratio_to_short": long["peak_rss_mb"] / short_peak}


def main() -> None:
    args = parse_arguments()
    if args.child:
        child(args.child[0], args.child[3:], args.child[1], args.size, args.fps, args.jobs, args.child[2])
        return
    if args.naive:
        from dp_ros.robot_interface import load_robot_interface

        naive_convert(Path(args.naive[0]), Path(args.naive[1]), load_robot_interface(args.robot_yaml))
        return
    if args.profile:
        from profile_bag2lerobot import profile

        print(json.dumps(profile(Path(args.profile), robot_interface(args.size, args.fps), Path(args.workdir))))
        return
    from dp_ros.robot_interface import save_robot_interface

    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    robot_yaml = save_robot_interface(robot_interface(args.size, args.fps), workdir / "robot.yaml")
    load = os.getloadavg()
    print(f"bag2lerobot benchmark: {args.seconds:g} s bags, 2 cameras 640x480 rgb8 @ 30 Hz + joint states and leader "
          f"@ 100 Hz -> {args.size}x{args.size} @ {args.fps} fps; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    figures: dict = {"cpus": os.cpu_count(), "load_average_start": load, "storages": {}}
    for storage in args.storage:
        figures["storages"][storage] = compare_storage(storage, args, workdir, robot_yaml)
    if args.long_seconds > 0 and "mcap-zstd" in figures["storages"]:
        short_peak = figures["storages"]["mcap-zstd"]["whole_process"]["dp_ros_jobs1"]["peak_rss_mb"]
        figures["long_bag"] = long_bag_memory(args, workdir, robot_yaml, short_peak)
    if args.jobs > 1 and args.job_bags > 1:
        figures["jobs"] = across_bags(args, workdir)
    figures["load_average_end"] = os.getloadavg()
    print(f"load average at the end: {figures['load_average_end'][0]:.1f}")
    shutil.rmtree(workdir, ignore_errors=True)
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2))


def across_bags(args, workdir: Path) -> dict:
    bags = [workdir / f"fleet_{k}" for k in range(args.job_bags)]
    for k, bag in enumerate(bags):
        write_bench_bag(bag, args.job_seconds, "mcap-zstd", args.size, args.fps, start=1000.0 + 100 * k)
    serial = measure("dp_ros", bags, workdir, args.size, args.fps, jobs=1)
    parallel = measure("dp_ros", bags, workdir, args.size, args.fps, jobs=args.jobs)
    print(f"--jobs across bags: {len(bags)} mcap-zstd bags of {args.job_seconds:g} s: 1 job {serial['wall_s']:.1f} s "
          f"({serial['x_real_time']:.1f}x real time); {args.jobs} jobs {parallel['wall_s']:.1f} s "
          f"({parallel['x_real_time']:.1f}x real time): {serial['wall_s'] / parallel['wall_s']:.2f}x faster")
    for bag in bags:
        shutil.rmtree(bag, ignore_errors=True)
    return {"bags": len(bags), "seconds_each": args.job_seconds, "serial": serial, "parallel": parallel,
            "speedup": serial["wall_s"] / parallel["wall_s"]}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="bag length for the dp_ros vs naive comparison")
    parser.add_argument("--storage", nargs="*", choices=list(STORAGES), default=list(STORAGES),
                        help="storage formats for the dp_ros vs naive comparison")
    parser.add_argument("--long-seconds", type=float, default=300.0,
                        help="length of the long mcap-zstd bag whose peak memory is compared (0: skip)")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-stage profile")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for --jobs across bags (0: skip it)")
    parser.add_argument("--job-bags", type=int, default=4, help="bags converted with 1 and with --jobs processes")
    parser.add_argument("--job-seconds", type=float, default=10.0, help="length of each of those bags")
    parser.add_argument("--size", type=int, default=96, help="camera width and height in the dataset")
    parser.add_argument("--fps", type=int, default=10, help="dataset fps (the robot interface's control_rate)")
    parser.add_argument("--workdir", default="/tmp/bench_bag2lerobot", help="where bags and datasets are written")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--child", nargs="+", metavar=("KIND", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--naive", nargs=2, metavar=("BAG", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--robot-yaml", default="", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="", metavar="BAG", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
