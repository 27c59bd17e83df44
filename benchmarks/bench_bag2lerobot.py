"""Speed and memory of rosbag2 -> LeRobot conversion (dp-ros bag2lerobot) on generated bags.

Each bag holds 2 cameras (sensor_msgs/Image rgb8, 640x480, 30 Hz), joint states
(100 Hz, joints in another order than the robot interface) and a leader arm
(100 Hz). They are converted for a robot interface with both cameras at
--size x --size and --fps frames per second, each conversion in a fresh
process. Reported per bag length:

- x real time (wall): bag seconds / conversion seconds (LeRobot and torch
  imported beforehand; dataset creation, video encoding and the final move included);
- CPU s per bag s: CPU time of all threads per bag second (robust on a busy machine);
- peak memory: the process's peak RSS, and how much of it the conversion added
  on top of the imported libraries. Bags are read as a stream, so the peak must
  not grow with the bag length: the ratio long/short is printed.

Usage:
  .venv/bin/python benchmarks/bench_bag2lerobot.py [--seconds 10 40] [--storage sqlite3|mcap]
      [--size 96] [--fps 10] [--workdir /tmp/bench_bag2lerobot] [--output bench.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))  # the bag writer shared with the tests


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


def write_bench_bag(path: Path, seconds: float, storage: str, size: int, fps: int) -> float:
    from bag_fixtures import BagSpec, write_bag

    start = time.perf_counter()
    write_bag(path, robot_interface(size, fps), storage,
              BagSpec(seconds=seconds, state_rate=100, leader_rate=100, camera_rate=30, image_size=(640, 480)))
    return time.perf_counter() - start


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(bag: str, output: str, size: int, fps: int) -> None:
    """Convert one bag and print the measurements as JSON (run in its own process)."""
    import lerobot.datasets.lerobot_dataset  # noqa: F401 - import cost is not conversion cost

    from dp_ros.data.bag_conversion import convert_bags
    from dp_ros.data.bag_reader import BagReader

    with BagReader(bag) as reader:
        bag_seconds, bag_bytes = reader.duration, sum(p.stat().st_size for p in Path(bag).iterdir())
    rss_imported = peak_rss_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    report = convert_bags([bag], output, robot_interface(size, fps), progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = peak_rss_bytes()
    print(json.dumps({"bag_seconds": bag_seconds, "bag_mb": bag_bytes / 1e6, "frames": report.frames,
                      "dropped": report.dropped, "wall_s": wall, "cpu_s": cpu, "x_real_time": bag_seconds / wall,
                      "cpu_s_per_bag_s": cpu / bag_seconds, "peak_rss_mb": peak / 2**20,
                      "imported_rss_mb": rss_imported / 2**20, "conversion_rss_mb": (peak - rss_imported) / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 40.0], help="bag lengths to convert")
    parser.add_argument("--storage", choices=["sqlite3", "mcap"], default="sqlite3", help="rosbag2 storage format")
    parser.add_argument("--size", type=int, default=96, help="camera width and height in the dataset")
    parser.add_argument("--fps", type=int, default=10, help="dataset fps (the robot interface's control_rate)")
    parser.add_argument("--workdir", default="/tmp/bench_bag2lerobot", help="where bags and datasets are written")
    parser.add_argument("--keep", action="store_true", help="keep the generated bags for another run")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--child", nargs=2, metavar=("BAG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.size, args.fps)
        return

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"bag2lerobot benchmark: 2 cameras 640x480 rgb8 @ 30 Hz + joint states and leader @ 100 Hz "
          f"({args.storage}) -> {args.size}x{args.size} @ {args.fps} fps; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    results = []
    for seconds in args.seconds:
        bag = workdir / f"bag_{args.storage}_{seconds:g}s"
        if not bag.exists():
            took = write_bench_bag(bag, seconds, args.storage, args.size, args.fps)
            print(f"  wrote {bag} in {took:.1f} s")
        output = workdir / f"dataset_{seconds:g}s"
        shutil.rmtree(output, ignore_errors=True)
        proc = subprocess.run([sys.executable, __file__, "--child", str(bag), str(output), "--size", str(args.size),
                               "--fps", str(args.fps)], capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(f"conversion of {bag} failed:\n{proc.stdout}\n{proc.stderr}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        shutil.rmtree(output, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(bag, ignore_errors=True)

    print(f"{'bag':>7s} {'MB':>7s} {'frames':>7s} {'wall s':>7s} {'x real time':>12s} {'CPU s/bag s':>12s} "
          f"{'peak RSS MB':>12s} {'added MB':>9s}")
    for r in results:
        print(f"{r['bag_seconds']:6.1f}s {r['bag_mb']:7.0f} {r['frames']:7d} {r['wall_s']:7.2f} {r['x_real_time']:11.1f}x "
              f"{r['cpu_s_per_bag_s']:12.3f} {r['peak_rss_mb']:12.0f} {r['conversion_rss_mb']:9.0f}")
    if len(results) >= 2:
        short, long = results[0], results[-1]
        print(f"peak memory, {long['bag_seconds']:.0f} s bag / {short['bag_seconds']:.0f} s bag: "
              f"{long['peak_rss_mb'] / short['peak_rss_mb']:.2f}x for {long['bag_mb'] / short['bag_mb']:.1f}x the data")
    if args.output:
        Path(args.output).write_text(json.dumps({"storage": args.storage, "size": args.size, "fps": args.fps,
                                                 "cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
