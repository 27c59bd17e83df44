"""Training throughput of `dp-ros train` against plain `lerobot-train`, same config, same run.

Both run LeRobot's trainer with the same argument list (the one `dp-ros train`
builds from the config); runs alternate (lerobot-train, dp-ros train, ...) so
that a busy machine slows both alike. Reported per tool, as medians over the
repeats:

- training throughput: samples per second over the optimisation steps, from the
  trainer's own per-step timings (update + data loading) in its log lines,
  leaving out the first log window (warm-up);
- wall time of the whole command (start-up, training, checkpoint, exit).

The ratio dp-ros / lerobot-train is the wrapper's cost (goal: within 5%).

Usage:
  .venv/bin/python benchmarks/bench_training.py [--dataset-root DIR] [--steps 60] [--repeats 2]
      [--image-size 32] [--down-dims 32,64,128] [--device cpu] [--output bench_training.json]
Without --dataset-root a synthetic dataset (LeRobot v3.0) is written to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))  # the synthetic dataset writer of the test fixtures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-root", default=None, help="LeRobot dataset to train on (default: synthetic)")
    parser.add_argument("--steps", type=int, default=60, help="optimisation steps per run")
    parser.add_argument("--log-freq", type=int, default=10, help="steps per log window")
    parser.add_argument("--repeats", type=int, default=2, help="runs per tool (alternating)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32, help="synthetic dataset: camera width and height")
    parser.add_argument("--down-dims", default="32,64,128", help="U-Net channels, comma-separated")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    return parser.parse_args()


def synthetic_dataset(folder: Path, size: int) -> Path:
    from lerobot_fixtures import make_dataset, tiny_robot

    return make_dataset(folder / "dataset", tiny_robot(size=size), episodes=4, frames=40)


def training_config(args: argparse.Namespace, dataset_root: Path, output_dir: Path):
    from dp_ros.training.configuration_training import load_training_config

    size = json.loads((dataset_root / "meta" / "info.json").read_text())
    image_height = next(f["shape"][0] for k, f in size["features"].items() if k.startswith("observation.images."))
    crop = int(image_height * 0.875)
    return load_training_config(None, {
        "dataset.root": str(dataset_root), "output_dir": str(output_dir), "steps": args.steps,
        "batch_size": args.batch_size, "num_workers": args.num_workers, "log_freq": args.log_freq,
        "save_freq": args.steps, "policy.device": args.device,
        "policy.down_dims": [int(d) for d in args.down_dims.split(",")], "policy.crop_shape": [crop, crop],
    })


def throughput(output: str, batch_size: int) -> float:
    """Samples per second from the trainer's log lines, first window left out."""
    from dp_ros.training.progress import parse_metrics

    windows = []
    for line in output.replace("\r", "\n").splitlines():
        metrics = parse_metrics(line)
        if metrics and metrics.get("update_s", 0) + metrics.get("data_s", 0) > 0:
            windows.append(metrics["update_s"] + metrics["data_s"])
    if len(windows) < 2:
        raise RuntimeError("too few log windows to measure; raise --steps or lower --log-freq")
    return batch_size / statistics.mean(windows[1:])


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env=dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled"))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return elapsed, proc.stdout


def main() -> int:
    args = parse_args()
    from dp_ros.training.configuration_training import resolve_device

    args.device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="dp_ros_bench_training_"))
    try:
        dataset_root = Path(args.dataset_root) if args.dataset_root else synthetic_dataset(work, args.image_size)
        venv_bin = Path(sys.executable).parent
        runs: dict[str, list[tuple[float, float]]] = {"lerobot-train": [], "dp-ros train": []}
        for repeat in range(args.repeats):
            for tool in runs:
                out = work / f"{tool.replace(' ', '_')}_{repeat}"
                config = training_config(args, dataset_root, out)
                if tool == "lerobot-train":
                    command = [str(venv_bin / "lerobot-train"), *config.lerobot_arguments(device=args.device)]
                else:
                    command = [str(venv_bin / "dp-ros"), "train", "--dataset-root", str(dataset_root),
                               "--output-dir", str(out), *sum((["--set", f"{k}={v}"] for k, v in
                                                              _overrides(config).items()), [])]
                wall, output = timed(command)
                if tool == "dp-ros train":  # its progress bar replaces the trainer's lines; they are in its log
                    output = (out / "dp_ros_train.log").read_text()
                runs[tool].append((throughput(output, args.batch_size), wall))
                print(f"  run {repeat + 1}/{args.repeats} {tool:<14} {runs[tool][-1][0]:7.2f} samples/s, "
                      f"{wall:6.1f} s wall", flush=True)
                shutil.rmtree(out, ignore_errors=True)
        report = summarise(runs, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


def _overrides(config) -> dict[str, str]:
    """The benchmark's options as dp-ros train --set values (YAML)."""
    return {"steps": config.steps, "batch_size": config.batch_size, "num_workers": config.num_workers,
            "log_freq": config.log_freq, "save_freq": config.save_freq, "policy.device": config.policy.device,
            "policy.down_dims": json.dumps(config.policy.down_dims),
            "policy.crop_shape": json.dumps(config.policy.crop_shape)}


def summarise(runs: dict, args: argparse.Namespace) -> dict:
    def median(tool: str, index: int) -> float:
        return statistics.median(r[index] for r in runs[tool])

    base, ours = "lerobot-train", "dp-ros train"
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, device {args.device}",
        "steps": args.steps, "batch_size": args.batch_size, "repeats": args.repeats,
        "samples_per_second": {base: median(base, 0), ours: median(ours, 0)},
        "wall_seconds": {base: median(base, 1), ours: median(ours, 1)},
        "throughput_ratio": median(ours, 0) / median(base, 0),
        "wall_ratio": median(ours, 1) / median(base, 1),
        "runs": {tool: [{"samples_per_second": s, "wall_seconds": w} for s, w in values]
                 for tool, values in runs.items()},
    }


def print_report(report: dict) -> None:
    base, ours = "lerobot-train", "dp-ros train"
    print(f"\ntraining throughput, {report['steps']} steps, batch {report['batch_size']}, "
          f"median of {report['repeats']} runs each ({report['machine']})")
    print(f"  {'':<14}{'samples/s':>12}{'wall s':>10}")
    for tool in (base, ours):
        print(f"  {tool:<14}{report['samples_per_second'][tool]:>12.2f}{report['wall_seconds'][tool]:>10.1f}")
    overhead = (1 - report["throughput_ratio"]) * 100
    print(f"  ratio dp-ros/lerobot: throughput {report['throughput_ratio']:.3f} ({overhead:+.1f}% overhead), "
          f"wall time {report['wall_ratio']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
