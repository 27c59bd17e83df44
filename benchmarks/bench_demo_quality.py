"""Closed-loop success against training time: which training configuration gives the demo the most per minute.

For each configuration (the demo's training options, dp_ros.demo.pipeline.training_overrides,
with some changed) the benchmark trains once on a recorded demo dataset, saving checkpoints along
the way, then runs every checkpoint in the lock-step closed loop of benchmarks/closed_loop.py
(bench_transitions.run_cell: the policy node's controller with its defaults, the simulated arm,
simulated time, so the machine's load changes no figure) on the same task instances. With
``--raw`` the raw weights an EMA run keeps beside each checkpoint's average are run too: the same
training without the average, at no extra training cost. An existing run (``--existing NAME=DIR``,
e.g. the checkpoints of `dp-ros demo`) joins as one more curve.

Task instances: ``--seed-set tuning`` (default) draws them from run indices no demo, test or other
benchmark uses; choose a configuration on those, then confirm it with ``--seed-set evaluation``
(other instances, never used for a choice).

Training time: each checkpoint records the steps, the trainer's wall-clock seconds and the load
average; the plot's minutes are steps x the configuration's seconds per step on a quiet machine
(``--quiet-step-seconds`` for the demo's options, scaled by the configuration's measured update
time relative to the demo's in the same conditions, ``--cost-ratio NAME=R``), because on a shared
machine the wall clock measures the neighbours. Results go to ``<output>/quality.json`` and
``quality.md`` and the plot to ``quality.png``; an interrupted run continues where it stopped.

Usage (after `dp-ros demo`):
  .venv/bin/python benchmarks/bench_demo_quality.py --dataset outputs/demo/dataset \\
      [--config ema-short --config ema-short-obs1] [--existing "demo defaults=outputs/demo/train"] [--raw] \\
      [--episodes 20] [--output outputs/demo_quality]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_transitions import run_cell  # noqa: E402 - the closed loop and its task instances
from dp_ros.core.checkpoint_sampler import DEFAULT_CHOICE  # noqa: E402
from dp_ros.core.choices import SamplerChoice  # noqa: E402

# name -> (what it changes, training-config overrides over the demo's)
CONFIGS: dict[str, tuple[str, dict]] = {
    "demo": ("the demo's training options, no weight average", {"ema.enable": False}),
    "ema": ("the demo's options with the weight average", {"ema.enable": True}),
    "ema-short": ("weight average; 500 steps (10 quiet minutes), peak lr 1e-3 after 50 warm-up steps, cosine to "
                  "step 500", {"ema.enable": True, "steps": 500, "policy.optimizer_lr": 1e-3,
                               "policy.scheduler_warmup_steps": 50}),
    "ema-short-obs1": ("ema-short with one observation per sample (n_obs_steps 1)",
                       {"ema.enable": True, "steps": 500, "policy.optimizer_lr": 1e-3,
                        "policy.scheduler_warmup_steps": 50, "policy.n_obs_steps": 1}),
    "ema-obs1": ("the demo's options (1500 steps) with the weight average and one observation per sample "
                 "(n_obs_steps 1: 0.64x the CPU time per step)", {"ema.enable": True, "policy.n_obs_steps": 1}),
}
TUNING_RUNS = (2001, 2002, 2003)
"""Run indices of the task instances choices are made on (evaluation_seeds(run, episodes))."""
EVALUATION_RUNS = (3001, 3002, 3003)
"""Run indices of the task instances a chosen configuration is confirmed on, never used for a choice."""
QUIET_STEP_SECONDS = 1.2
"""Seconds per training step of the demo's options on a quiet 2-core machine (fresh-clone run, issue 22)."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="a dataset recorded by `dp-ros demo`")
    parser.add_argument("--output", default="outputs/demo_quality", help="folder of the runs and the results")
    parser.add_argument("--config", action="append", default=None, choices=list(CONFIGS),
                        help="configuration to train and run (repeatable; default: ema-short and ema-short-obs1)")
    parser.add_argument("--existing", action="append", default=[], metavar="NAME=DIR",
                        help="an existing training run folder to run the checkpoints of, as curve NAME")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a training option over every trained configuration (e.g. steps=4 for a smoke test)")
    parser.add_argument("--checkpoints", type=int, default=4, help="checkpoints per training run (evenly spaced)")
    parser.add_argument("--raw", action="store_true", help="also run the raw weights kept beside each average")
    parser.add_argument("--episodes", type=int, default=20, help="closed-loop episodes per checkpoint")
    parser.add_argument("--seed-set", choices=("tuning", "evaluation"), default="tuning",
                        help="task instances: tuning (choose on these) or evaluation (confirm a choice)")
    parser.add_argument("--runs", type=int, default=1, help="runs of --episodes per checkpoint (each its own instances)")
    parser.add_argument("--only-steps", type=int, nargs="+", default=None,
                        help="run only the checkpoints of these steps (default: all)")
    parser.add_argument("--sampler", default=DEFAULT_CHOICE.text,
                        help="sampler:steps of the policy (default %(default)s: the node's and the demo's)")
    parser.add_argument("--quiet-step-seconds", type=float, default=QUIET_STEP_SECONDS,
                        help="seconds per step of the demo's options on a quiet machine (the plot's time scale)")
    parser.add_argument("--cost-ratio", action="append", default=[], metavar="NAME=R",
                        help="a curve's seconds per step relative to the demo's (default 1)")
    parser.add_argument("--reference", action="append", default=[], metavar="LABEL=MINUTES:PERCENT",
                        help="a result measured elsewhere, drawn as a cross (e.g. an earlier demo run)")
    parser.add_argument("--skip-training", action="store_true", help="only run the checkpoints there are")
    parser.add_argument("--skip-closed-loop", action="store_true", help="only train")
    parser.add_argument("--tiny", action="store_true", help="a tiny network (tests)")
    return parser.parse_args(argv)


# --- training -------------------------------------------------------------------------------------
TINY_POLICY = {"policy.down_dims": [16, 32, 64], "policy.spatial_softmax_num_keypoints": 8,
               "policy.diffusion_step_embed_dim": 16, "policy.resize_shape": [32, 32], "batch_size": 4,
               "num_workers": 0}


def training_overrides(name: str, dataset: Path, run_dir: Path, args: argparse.Namespace) -> dict:
    """The demo's training options for ``dataset``, changed as configuration ``name`` says, then by --set."""
    from dp_ros.demo.pipeline import DemoSettings
    from dp_ros.demo.pipeline import training_overrides as demo_overrides
    from dp_ros.training.config_loading import parse_overrides

    overrides = demo_overrides(DemoSettings(), "")
    overrides.update({"dataset.root": str(dataset.resolve()), "output_dir": str(run_dir.resolve()),
                      "job_name": f"quality_{name}", "robot_config": None})
    overrides.update(CONFIGS[name][1])
    if args.tiny:
        overrides.update(TINY_POLICY)
    overrides.update(parse_overrides(args.set))
    overrides["save_freq"] = max(1, int(overrides["steps"]) // max(1, args.checkpoints))
    return overrides


def train(name: str, args: argparse.Namespace, output: Path) -> Path:
    """Train configuration ``name`` (unless its run is complete); returns its run folder."""
    import shutil

    from tqdm import tqdm

    from dp_ros.demo.pipeline import _default_train_config
    from dp_ros.training.launcher import run_training

    run_dir = output / "runs" / name
    record_path = run_dir / "quality_checkpoints.json"
    if record_path.is_file() and json.loads(record_path.read_text()).get("finished"):
        return run_dir
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run: start over
    overrides = training_overrides(name, Path(args.dataset), run_dir, args)
    record = {"config": name, "overrides": overrides, "checkpoints": [], "finished": False}
    started = time.monotonic()
    with tqdm(total=int(overrides["steps"]), desc=f"training {name}", unit="step") as bar:
        def on_progress(progress) -> None:
            bar.update(max(0, progress.step - bar.n))
            steps = [c["step"] for c in record["checkpoints"]]
            if progress.checkpoint_step and progress.checkpoint_step not in steps:
                record["checkpoints"].append({"step": progress.checkpoint_step,
                                              "wall_seconds": time.monotonic() - started,
                                              "load_1min": os.getloadavg()[0]})

        run_training(_default_train_config(), overrides=overrides, on_progress=on_progress)
    record.update(finished=True, wall_seconds=time.monotonic() - started, update_seconds=update_seconds(run_dir))
    record_path.write_text(json.dumps(record, indent=1))
    return run_dir


def update_seconds(run_dir: Path) -> float | None:
    """The mean of LeRobot's logged update and data-loading seconds per step (first log window left out)."""
    import re

    log = run_dir / "dp_ros_train.log"
    if not log.is_file():
        return None
    windows = [float(u) + float(d) for u, d in
               re.findall(r"updt_s:(\d+\.\d+) data_s:(\d+\.\d+)", log.read_text(errors="replace"))]
    windows = windows[1:] or windows
    return sum(windows) / len(windows) if windows else None


def checkpoints_of(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, step folder) of every complete checkpoint of a run, by step."""
    folder = run_dir / "checkpoints"
    found = [(int(p.name), p) for p in folder.iterdir() if p.name.isdigit() and not p.is_symlink()
             and (p / "pretrained_model" / "model.safetensors").is_file()] if folder.is_dir() else []
    return sorted(found)


def raw_weights_model(step_dir: Path, scratch: Path) -> Path | None:
    """A pretrained_model/ folder with the raw weights an EMA checkpoint keeps (None: it has none)."""
    import shutil

    from dp_ros.training.weight_average import saved_average

    saved = saved_average(step_dir)
    if saved is None:
        return None
    target = scratch / f"{step_dir.parent.parent.name}_{step_dir.name}_raw"
    if not (target / "model.safetensors").is_file():
        shutil.copytree(step_dir / "pretrained_model", target, dirs_exist_ok=True)
        shutil.copyfile(saved.raw_weights, target / "model.safetensors")
    return target


# --- closed loop ----------------------------------------------------------------------------------
def evaluate(model_dir: Path, args: argparse.Namespace, robot) -> list[dict]:
    """The checkpoint in the closed loop on --runs runs of --episodes task instances; one summary per run."""
    from dp_ros.core.policy_runtime import PolicyRuntime

    sampler = SamplerChoice.parse(args.sampler)
    runtime = PolicyRuntime.load(model_dir, device="cpu", noise_scheduler=sampler.name,
                                 num_inference_steps=sampler.steps, seed=0)
    runtime.warm_up()
    runs = TUNING_RUNS if args.seed_set == "tuning" else EVALUATION_RUNS
    summaries = []
    for run in runs[:args.runs]:
        cell = run_cell(runtime, robot, "defaults", 0.0, run, args.episodes)
        episodes = cell["episodes"]
        summaries.append({"run": run, "episodes": len(episodes), "successes": sum(e["success"] for e in episodes),
                          "collisions": sum(e["collided"] for e in episodes),
                          "left": sum(e["success"] and e["solution"] == "left" for e in episodes),
                          "right": sum(e["success"] and e["solution"] == "right" for e in episodes),
                          "limit_violations": sum(e["limit_violations"] for e in episodes),
                          "seconds": cell["seconds"], "load_1min": cell["load_1min"]})
    return summaries


def curves_to_run(args: argparse.Namespace, output: Path) -> list[tuple[str, Path]]:
    """(curve name, run folder): the trained configurations, then the existing runs."""
    curves = [(name, output / "runs" / name) for name in (args.config or ["ema-short", "ema-short-obs1"])]
    for item in args.existing:
        name, sep, folder = item.partition("=")
        if not sep:
            raise SystemExit(f"--existing {item!r}: expected NAME=DIR")
        curves.append((name, Path(folder)))
    return curves


def measure(args: argparse.Namespace, output: Path, results: dict, results_path: Path) -> None:
    """Run every checkpoint of every curve not measured yet (and its raw weights with --raw)."""
    from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

    robot = load_robot_interface(default_robot_config_path())
    scratch = output / "raw_models"
    for name, run_dir in curves_to_run(args, output):
        for step, step_dir in checkpoints_of(run_dir):
            if args.only_steps and step not in args.only_steps:
                continue
            variants = [(name, step_dir / "pretrained_model")]
            raw = raw_weights_model(step_dir, scratch) if args.raw else None
            if raw is not None:
                variants.append((f"{name} (raw weights)", raw))
            for curve, model_dir in variants:
                key = f"{curve}|{step}|{args.seed_set}|{args.episodes}"
                if key in results["points"]:
                    continue
                print(f"{curve}, step {step}: {args.runs} x {args.episodes} episodes ({args.seed_set} instances)")
                results["points"][key] = {"curve": curve, "run_dir": str(run_dir), "step": step,
                                          "seed_set": args.seed_set, "runs": evaluate(model_dir, args, robot)}
                results_path.write_text(json.dumps(results, indent=1))


def run_records(args: argparse.Namespace, output: Path) -> dict:
    """Per curve: its training record (steps, wall seconds, load, update seconds), if it has one."""
    records = {}
    for name, run_dir in curves_to_run(args, output):
        path = run_dir / "quality_checkpoints.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        record.setdefault("update_seconds", update_seconds(run_dir))
        records[name] = record
    return records


def cost_ratios(args: argparse.Namespace) -> dict[str, float]:
    ratios = {}
    for item in args.cost_ratio:
        name, _, value = item.partition("=")
        ratios[name] = float(value)
    return ratios


def quiet_minutes(curve: str, step: int, args: argparse.Namespace) -> float:
    base = curve.removesuffix(" (raw weights)")
    return step * args.quiet_step_seconds * cost_ratios(args).get(base, 1.0) / 60.0


def table(results: dict, args: argparse.Namespace) -> str:
    lines = ["| curve | step | quiet-machine minutes | instances | success per run | all | collisions | left/right | "
             "limit violations | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for point in sorted(results["points"].values(), key=lambda p: (p["curve"], p["seed_set"], p["step"])):
        runs = point["runs"]
        wins, total = sum(r["successes"] for r in runs), sum(r["episodes"] for r in runs)
        load = sum(sum(r["load_1min"]) / 2 for r in runs) / len(runs)
        lines.append(f"| {point['curve']} | {point['step']} | {quiet_minutes(point['curve'], point['step'], args):.1f} | "
                     f"{point['seed_set']} | {', '.join(f'{r['successes']}/{r['episodes']}' for r in runs)} | "
                     f"**{100 * wins / max(1, total):.0f}%** | {sum(r['collisions'] for r in runs)} | "
                     f"{sum(r['left'] for r in runs)}/{sum(r['right'] for r in runs)} | "
                     f"{sum(r['limit_violations'] for r in runs)} | {load:.1f} |")
    return "\n".join(lines)


def plot(results: dict, args: argparse.Namespace, path: Path) -> None:
    """Success against quiet-machine training minutes, one line per curve (tuning and evaluation instances)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    curves = sorted({(p["curve"], p["seed_set"]) for p in results["points"].values()})
    for curve, seed_set in curves:
        points = sorted((p for p in results["points"].values() if p["curve"] == curve and p["seed_set"] == seed_set),
                        key=lambda p: p["step"])
        xs = [quiet_minutes(curve, p["step"], args) for p in points]
        ys = [100 * sum(r["successes"] for r in p["runs"]) / max(1, sum(r["episodes"] for r in p["runs"]))
              for p in points]
        style = "--" if "raw weights" in curve else "-"
        marker = "o" if seed_set == "tuning" else "*"
        ax.plot(xs, ys, style, marker=marker, markersize=8 if marker == "*" else 5,
                label=f"{curve} ({seed_set} instances)")
        for x, y, p in zip(xs, ys, points):
            ax.annotate(str(p["step"]), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    for item in args.reference:
        label, _, point = item.partition("=")
        minutes, _, percent = point.partition(":")
        ax.plot([float(minutes)], [float(percent)], "kx", markersize=8)
        ax.annotate(label, (float(minutes), float(percent)), textcoords="offset points", xytext=(-10, -12),
                    fontsize=7, ha="right")
    ax.axhline(90, color="grey", linewidth=0.8, linestyle=":")
    ax.axvline(15 - 3.3 - 1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"training minutes on a quiet 2-core machine (steps x {args.quiet_step_seconds} s x cost ratio)")
    ax.set_ylabel("closed-loop success (%)")
    ax.set_ylim(-3, 103)
    ax.set_title("Demo policy: success per minute of training (labels: steps)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the closed loop's compute times are CPU times of one thread, as in the node
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results_path = output / "quality.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"points": {}}
    if not args.skip_training:
        for name in args.config or ["ema-short", "ema-short-obs1"]:
            train(name, args, output)
    if not args.skip_closed_loop:
        measure(args, output, results, results_path)
    if results_path.is_file():  # points another process (an evaluation while this one trained) added meanwhile
        results["points"] = {**json.loads(results_path.read_text()).get("points", {}), **results["points"]}
    results["runs"] = run_records(args, output)
    results["machine"] = {"cpus": os.cpu_count(), "load_1min_end": os.getloadavg()[0], "sampler": args.sampler,
                          "quiet_step_seconds": args.quiet_step_seconds, "cost_ratios": cost_ratios(args)}
    results_path.write_text(json.dumps(results, indent=1))
    report = table(results, args)
    (output / "quality.md").write_text(report + "\n")
    plot(results, args, output / "quality.png")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
