"""Training throughput: `dp-ros train` against plain `lerobot-train`, with 1 and with N processes, in one run.

Four ways to run LeRobot's trainer on the same dataset with the same options
(the argument list `dp-ros train` builds from its config), in alternation so that
a busy machine slows all of them alike:

- `lerobot-train` (one process);
- `accelerate launch <the options dp-ros passes> lerobot-train` (N processes), as
  LeRobot's multi-GPU guide runs it;
- `dp-ros train` and `dp-ros train --num-processes N`.

Throughput is samples per second of all processes together (N x batch_size per step),
from the trainer's own step timings in its log lines (update + data loading, the
slowest rank), leaving out the first log window (warm-up); reported as medians over
the repeats, with the ratios that matter: dp-ros against LeRobot run the same way
(the wrapper's cost), and N processes against one.

Usage:
  .venv/bin/python benchmarks/bench_training.py [--dataset-root DIR] [--steps 40] [--repeats 2]
      [--processes 2] [--batch-size 8] [--image-size 32] [--down-dims 32,64,128] [--device cpu]
      [--set NAME=VALUE ...] [--output bench_training.json]
Without --dataset-root a synthetic dataset (LeRobot v3.0) is written to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))  # the synthetic dataset writer of the test fixtures

METRICS = re.compile(r"step:\S+ .*loss:\S+ .*updt_s:([\d.]+) data_s:([\d.]+)")
"""LeRobot's log line of a log window: the slowest rank's mean update and data-loading seconds per step."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-root", default=None, help="LeRobot dataset to train on (default: synthetic)")
    parser.add_argument("--steps", type=int, default=40, help="optimisation steps per run")
    parser.add_argument("--log-freq", type=int, default=10, help="steps per log window")
    parser.add_argument("--repeats", type=int, default=2, help="runs per way (alternating)")
    parser.add_argument("--processes", type=int, default=2, help="processes of the multi-process runs")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per process and step")
    parser.add_argument("--image-size", type=int, default=32, help="synthetic dataset: camera width and height")
    parser.add_argument("--down-dims", default="32,64,128", help="U-Net channels, comma-separated")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loading workers per process")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="any further training option, as for dp-ros train --set (repeatable)")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    return parser.parse_args()


def synthetic_dataset(folder: Path, size: int) -> Path:
    from lerobot_fixtures import make_dataset, tiny_robot

    return make_dataset(folder / "dataset", tiny_robot(size=size), episodes=4, frames=40)


def training_overrides(args: argparse.Namespace, dataset_root: Path) -> list[str]:
    info = json.loads((dataset_root / "meta" / "info.json").read_text())
    height = next(f["shape"][0] for k, f in info["features"].items() if k.startswith("observation.images."))
    crop = int(height * 0.875)
    return [f"dataset.root={dataset_root}", f"steps={args.steps}", f"batch_size={args.batch_size}",
            f"num_workers={args.num_workers}", f"log_freq={args.log_freq}", "save_checkpoint=false",
            f"policy.device={args.device}", f"policy.down_dims=[{args.down_dims}]", f"policy.crop_shape=[{crop},{crop}]",
            *args.overrides]


@dataclass
class Way:
    """One way to run the trainer."""

    name: str
    command: list[str]
    processes: int
    log: Path | None
    """dp-ros train keeps LeRobot's log lines in its log file; the others print them."""


def ways(args: argparse.Namespace, overrides: list[str], out: Path) -> list[Way]:
    """The four ways, each writing into its own folder under ``out``."""
    from dp_ros.training.accelerate_launch import accelerate_arguments
    from dp_ros.training.config_loading import load_training_config
    from dp_ros.training.launcher import LOG_FILE_NAME

    bin_dir = Path(sys.executable).parent
    n = args.processes

    def lerobot(name: str, processes: int) -> Way:
        config = load_training_config(None, [*overrides, f"output_dir={out / name}",
                                             f"accelerate.num_processes={processes}"])
        command = [str(bin_dir / "lerobot-train"), *config.lerobot_arguments(args.device)]
        if processes > 1:
            command = [str(bin_dir / "accelerate"), "launch", *accelerate_arguments(config.accelerate, args.device),
                       *command]
        return Way(f"accelerate launch lerobot-train (x{processes})" if processes > 1 else "lerobot-train",
                   command, processes, None)

    def dp_ros(name: str, processes: int) -> Way:
        sets = [a for o in [*overrides, f"output_dir={out / name}"] for a in ("--set", o)]
        command = [str(bin_dir / "dp-ros"), "train", "--num-processes", str(processes), "--no-progress", *sets]
        return Way("dp-ros train" + (f" --num-processes {processes}" if processes > 1 else ""), command, processes,
                   out / name / LOG_FILE_NAME)

    return [lerobot("lerobot", 1), lerobot("accelerate_lerobot", n), dp_ros("dp_ros", 1), dp_ros("dp_ros_n", n)]


def throughput(output: str, samples_per_step: int) -> float:
    """Samples per second from the trainer's log windows, the first left out."""
    windows = [float(u) + float(d) for u, d in METRICS.findall(output.replace("\r", "\n"))]
    if len(windows) < 2:
        raise RuntimeError("too few log windows to measure; raise --steps or lower --log-freq")
    return samples_per_step / statistics.mean(windows[1:])


def run(way: Way) -> tuple[float, str]:
    """Wall seconds and LeRobot's log lines of one run."""
    start = time.perf_counter()
    proc = subprocess.run(way.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env=dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled"))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{way.name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return elapsed, way.log.read_text() if way.log is not None else proc.stdout


def main() -> int:
    args = parse_args()
    from dp_ros.training.configuration_training import resolve_device

    args.device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="dp_ros_bench_training_"))
    load = []
    try:
        dataset_root = Path(args.dataset_root).resolve() if args.dataset_root else synthetic_dataset(work, args.image_size)
        overrides = training_overrides(args, dataset_root)
        runs: dict[str, list[tuple[float, float]]] = {}
        for repeat in range(args.repeats):
            out = work / f"runs_{repeat}"
            for way in ways(args, overrides, out):
                load.append(os.getloadavg()[0])
                wall, output = run(way)
                runs.setdefault(way.name, []).append((throughput(output, way.processes * args.batch_size), wall))
                print(f"  run {repeat + 1}/{args.repeats} {way.name:<38} {runs[way.name][-1][0]:7.2f} samples/s, "
                      f"{wall:6.1f} s wall", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        report = summarise(runs, args, load)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


def summarise(runs: dict, args: argparse.Namespace, load: list[float]) -> dict:
    speed = {way: statistics.median(r[0] for r in values) for way, values in runs.items()}
    one, acc_n, ours_one, ours_n = list(speed)
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, device {args.device}",
        "load_average": {"min": min(load), "max": max(load)},
        "steps": args.steps, "batch_size_per_process": args.batch_size, "processes": args.processes,
        "repeats": args.repeats,
        "samples_per_second": speed,
        "wall_seconds": {way: statistics.median(r[1] for r in values) for way, values in runs.items()},
        "ratios": {"dp-ros / lerobot-train (1 process)": speed[ours_one] / speed[one],
                   f"dp-ros / accelerate launch lerobot-train ({args.processes} processes)": speed[ours_n] / speed[acc_n],
                   f"{args.processes} processes / 1 (dp-ros)": speed[ours_n] / speed[ours_one],
                   f"{args.processes} processes / 1 (LeRobot)": speed[acc_n] / speed[one]},
        "runs": {way: [{"samples_per_second": s, "wall_seconds": w} for s, w in values]
                 for way, values in runs.items()},
    }


def print_report(report: dict) -> None:
    print(f"\ntraining throughput, {report['steps']} steps, batch {report['batch_size_per_process']} per process, "
          f"median of {report['repeats']} runs each ({report['machine']}, load average "
          f"{report['load_average']['min']:.1f}-{report['load_average']['max']:.1f})")
    print(f"  {'':<40}{'samples/s':>12}{'wall s':>10}")
    for way, speed in report["samples_per_second"].items():
        print(f"  {way:<40}{speed:>12.2f}{report['wall_seconds'][way]:>10.1f}")
    for name, ratio in report["ratios"].items():
        print(f"  {name}: {ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main())
