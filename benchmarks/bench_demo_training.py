"""Where the demo's training time goes: throughput of its training configuration and of variants, in one run.

Runs `dp-ros train` with the demo's own training options (dp_ros.demo.pipeline.training_overrides)
on a recorded demo dataset, then with one lever changed at a time, in alternation (a busy
machine slows all alike), and prints samples per second as ratios to the demo's defaults.
Levers: threads and processes (the same samples per step in all), data-loading workers, image size, network size, batch size,
the video decoder, and the dataset's video codec or image storage (as copies of the dataset
re-encoded with LeRobot's own tools). Samples/s come from the trainer's step timings
(update + data loading), first log window left out; the steps a configuration needs for a
good policy are a separate question (closed-loop runs of the demo answer it).

Usage (after `make demo`, or with any demo dataset):
  .venv/bin/python benchmarks/bench_demo_training.py [--dataset-root outputs/demo/dataset] [--steps 30]
      [--repeats 2] [--variants NAME ...] [--output bench_demo_training.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import throughput  # noqa: E402 - the same reading of LeRobot's step timings

# name -> (training overrides on top of the demo's, environment, dataset storage)
VARIANTS: dict[str, tuple[dict, dict, str]] = {
    "demo defaults": ({}, {}, "as recorded"),
    "1 thread": ({"cpu_threads": 1}, {}, "as recorded"),
    "2 threads": ({"cpu_threads": 2}, {}, "as recorded"),
    "2 threads, passive wait": ({"cpu_threads": 2}, {"OMP_WAIT_POLICY": "PASSIVE"}, "as recorded"),
    "2 processes, 1 thread": ({"accelerate.num_processes": 2, "batch_size": 16, "cpu_threads": 1}, {},
                              "as recorded"),
    "no data worker": ({"num_workers": 0}, {}, "as recorded"),
    "2 data workers": ({"num_workers": 2}, {}, "as recorded"),
    "images 32x32": ({"policy.resize_shape": [32, 32]}, {}, "as recorded"),
    "images 48x48": ({"policy.resize_shape": [48, 48]}, {}, "as recorded"),
    "images 64x64": ({"policy.resize_shape": [64, 64]}, {}, "as recorded"),
    "U-Net 32/64/128": ({"policy.down_dims": [32, 64, 128]}, {}, "as recorded"),
    "pyav decoder": ({"dataset.video_backend": "pyav"}, {}, "as recorded"),
    "h264 video": ({}, {}, "h264"),
    "png images": ({}, {}, "images"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-root", default="outputs/demo/dataset", help="a dataset recorded by the demo")
    parser.add_argument("--steps", type=int, default=30, help="optimisation steps per run")
    parser.add_argument("--log-freq", type=int, default=5, help="steps per log window")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant (alternating)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to run; the first is the baseline of the ratios")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    return parser.parse_args()


def dataset_copy(source: Path, storage: str, work: Path) -> Path:
    """The dataset as recorded, or a copy with its camera frames stored another way (LeRobot's own writers)."""
    if storage == "as recorded":
        return source
    target = work / f"dataset_{storage}"
    if target.exists():
        return target
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if storage == "h264":
        from lerobot.configs.video import RGBEncoderConfig
        from lerobot.datasets.dataset_tools import reencode_dataset

        shutil.copytree(source, target)
        reencode_dataset(LeRobotDataset("local/dp_ros_demo", root=target), rgb_encoder=RGBEncoderConfig(vcodec="h264"))
        return target
    recorded = LeRobotDataset("local/dp_ros_demo", root=source)
    features = {k: {**v, "dtype": "image"} if v["dtype"] == "video" else v for k, v in recorded.meta.features.items()
                if k not in ("timestamp", "frame_index", "episode_index", "index", "task_index")}
    for feature in features.values():
        feature.pop("info", None)
    copy = LeRobotDataset.create("local/dp_ros_demo", fps=recorded.fps, features=features, root=target,
                                 robot_type=recorded.meta.robot_type, use_videos=False, image_writer_threads=2)
    episodes = recorded.meta.episodes
    for episode in range(recorded.meta.total_episodes):
        for index in range(episodes["dataset_from_index"][episode], episodes["dataset_to_index"][episode]):
            item = recorded[index]
            frame = {k: (item[k].permute(1, 2, 0) * 255).round().byte().numpy() if features[k]["dtype"] == "image"
                     else item[k].numpy() for k in features}
            copy.add_frame({**frame, "task": item["task"]})
        copy.save_episode()
    copy.finalize()
    return target


def demo_overrides(dataset_root: Path, out: Path, steps: int, log_freq: int) -> dict:
    from dp_ros.demo.pipeline import DemoSettings, training_overrides

    overrides = training_overrides(DemoSettings(), robot_config="")
    overrides.pop("robot_config")
    overrides.update({"dataset.root": str(dataset_root), "output_dir": str(out), "steps": steps,
                      "log_freq": log_freq, "save_checkpoint": False})
    return overrides


def run_variant(name: str, dataset_root: Path, out: Path, args: argparse.Namespace) -> tuple[float, float]:
    from dp_ros.training.config_loading import load_training_config
    from dp_ros.training.launcher import LOG_FILE_NAME

    changes, env, _ = VARIANTS[name]
    overrides = {**demo_overrides(dataset_root, out, args.steps, args.log_freq), **changes}
    config = load_training_config(None, overrides)
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "dp-ros"), "train", "--no-progress", *sets],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env=dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", **env))
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    processes = config.accelerate.num_processes or 1
    return throughput((out / LOG_FILE_NAME).read_text(), processes * config.batch_size), wall


def main() -> int:
    args = parse_args()
    source = Path(args.dataset_root).resolve()
    work = Path(tempfile.mkdtemp(prefix="dp_ros_bench_demo_training_"))
    speeds: dict[str, list[float]] = {name: [] for name in args.variants}
    load = []
    try:
        roots = {name: dataset_copy(source, VARIANTS[name][2], work) for name in args.variants}
        for repeat in range(args.repeats):
            for name in args.variants:
                load.append(os.getloadavg()[0])
                speed, wall = run_variant(name, roots[name], work / f"run_{repeat}_{len(load)}", args)
                speeds[name].append(speed)
                print(f"  run {repeat + 1}/{args.repeats} {name:<22} {speed:7.2f} samples/s ({wall:5.0f} s wall, "
                      f"load {load[-1]:.1f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(speeds[args.variants[0]])
    report = {"steps": args.steps, "repeats": args.repeats, "cores": os.cpu_count(),
              "load_average": {"min": min(load), "max": max(load)},
              "samples_per_second": {n: statistics.median(v) for n, v in speeds.items()},
              "ratio_to_baseline": {n: statistics.median(v) / base for n, v in speeds.items()},
              "runs": speeds}
    print(f"\ndemo training throughput, {args.steps} steps, median of {args.repeats} runs, {os.cpu_count()} cores, "
          f"load average {min(load):.1f}-{max(load):.1f}")
    for name in args.variants:
        print(f"  {name:<22} {report['samples_per_second'][name]:7.2f} samples/s   x{report['ratio_to_baseline'][name]:.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
