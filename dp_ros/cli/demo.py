"""The end-to-end demo: from demonstrations to a policy that succeeds in closed loop.

On the simulated arm (MuJoCo, behind the same ROS interface as a real robot),
over real ROS topics and services:
  1. record demonstrations of the scripted expert with the recording node;
  2. train a Diffusion Policy on them with LeRobot, through dp_ros's launcher;
  3. run the policy node in closed loop for fresh task instances;
  4. write a report (report.md, report.json) and plots into the output folder.
The task has two equally good solutions (around the pillar on the left or the
right), chosen at random by the expert. Outputs of earlier runs are reused
unless --redo names the stage. The defaults took 37 minutes on a busy
2-core CPU (32 of them training; see the README).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from dp_ros.demo.pipeline import DemoSettings

STAGES = ("record", "train", "evaluate")


def _demo_errors() -> tuple[type[BaseException], ...]:
    from dp_ros.demo.client import DemoClientError
    from dp_ros.demo.processes import DemoProcessError
    from dp_ros.training.configuration_training import TrainingConfigError
    from dp_ros.training.launcher import TrainingError

    return (DemoClientError, DemoProcessError, TrainingConfigError, TrainingError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoSettings()
    parser.add_argument("--output", default=str(d.output), help=f"output folder (default {d.output})")
    parser.add_argument("--robot-config", default="", help="robot interface YAML (default: dp_ros's config/robot.yaml)")
    parser.add_argument("--episodes", type=int, default=d.episodes, help=f"demonstrations to record (default {d.episodes})")
    parser.add_argument("--eval-episodes", type=int, default=d.eval_episodes,
                        help=f"closed-loop episodes of the trained policy (default {d.eval_episodes})")
    parser.add_argument("--train-steps", type=int, default=d.train_steps,
                        help=f"optimisation steps (default {d.train_steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"samples per step (default {d.batch_size})")
    parser.add_argument("--down-dims", type=int, nargs="+", default=list(d.down_dims),
                        help=f"U-Net channels per stage (default {' '.join(map(str, d.down_dims))})")
    parser.add_argument("--backbone-size", type=int, default=d.backbone_size,
                        help=f"frames are resized to this size for the policy's ResNet (default {d.backbone_size})")
    parser.add_argument("--lr", type=float, default=d.learning_rate, help=f"learning rate (default {d.learning_rate})")
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                        help=f"learning-rate warm-up steps (default {d.warmup_steps})")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=d.ema,
                        help="keep an exponential moving average of the weights and deploy it (ema.* of dp-ros train; "
                             f"default {'on' if d.ema else 'off'})")
    parser.add_argument("--processes", type=int, default=d.processes,
                        help=f"training processes through accelerate, sharing the batch (default {d.processes})")
    parser.add_argument("--cpu-threads", type=int, default=d.cpu_threads,
                        help="threads per training process on a CPU (default: torch's, all cores)")
    parser.add_argument("--sampler", default=d.sampler,
                        help=f"sampler:steps of the policy node in closed loop (default {d.sampler})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of the recorded tasks and training (default {d.seed})")
    parser.add_argument("--device", default=d.device,
                        help=f"auto (CUDA when available), cpu or cuda: training and the policy node (default {d.device})")
    parser.add_argument("--policy-param", action="append", default=None, metavar="NAME=VALUE",
                        help="a policy_node parameter for the closed loop, e.g. transition=ensemble (repeatable; "
                             f"default: {' '.join(d.policy_params) or 'none, the node defaults'})")
    parser.add_argument("--distill", type=int, default=d.distill_steps, metavar="STEPS", dest="distill_steps",
                        help="distil the trained policy into a consistency student with this many steps "
                             "(`dp-ros distill`; into <output>/distill) and close the loop with the student and its "
                             f"own sampler (--sampler then applies to nothing); default {d.distill_steps}: the "
                             "teacher (the README says why)")
    parser.add_argument("--redo", nargs="+", default=[], choices=[*STAGES, "all"],
                        help="stages to redo although their outputs exist")


def settings_from(args: argparse.Namespace) -> DemoSettings:
    redo = STAGES if "all" in args.redo else tuple(args.redo)
    return DemoSettings(output=Path(args.output), robot_config=args.robot_config, episodes=args.episodes,
                        eval_episodes=args.eval_episodes, train_steps=args.train_steps, batch_size=args.batch_size,
                        down_dims=tuple(args.down_dims), backbone_size=args.backbone_size, learning_rate=args.lr,
                        warmup_steps=args.warmup_steps, ema=args.ema, processes=args.processes, cpu_threads=args.cpu_threads,
                        sampler=args.sampler, seed=args.seed, redo=redo, device=args.device,
                        distill_steps=args.distill_steps,
                        policy_params=tuple(args.policy_param) if args.policy_param is not None
                        else DemoSettings().policy_params)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dp_ros.core.choices import SamplerChoice, SamplerChoiceError
    from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    settings = settings_from(args)
    if settings.distill_steps < 0:
        print("dp-ros demo: --distill: the distillation's steps must be 0 (off) or more", file=sys.stderr)
        return 2
    try:
        SamplerChoice.parse(settings.sampler)  # refused now, not after recording and training
    except SamplerChoiceError as exc:
        print(f"dp-ros demo: --sampler: {exc}", file=sys.stderr)
        return 2
    robot_config = settings.robot_config or str(default_robot_config_path())
    robot = load_robot_interface(robot_config)
    settings.output.mkdir(parents=True, exist_ok=True)
    print(f"dp_ros demo -> {settings.output} (logs of the nodes in {settings.logs})")

    try:
        return _run_stages(settings, robot, robot_config, tqdm)
    except KeyboardInterrupt:
        print("\ndp-ros demo: interrupted; finished stages are kept and reused by the next run")
        return 130
    except _demo_errors() as exc:
        print(f"\ndp-ros demo: {exc}\n(the logs of the nodes are in {settings.logs})")
        return 1


def _run_stages(settings, robot, robot_config, tqdm) -> int:
    from dp_ros.demo import evaluation, pipeline
    from dp_ros.demo.report import format_summary, summarize, write_report

    timings: dict[str, float] = {}
    conditions = machine_conditions(settings)
    started = time.monotonic()
    recording = pipeline.record(settings, robot, tqdm)
    timings["record"] = recording.seconds if recording.reused else time.monotonic() - started
    conditions["load_average_after"]["record"] = os.getloadavg()[0]
    note = " (reused)" if recording.reused else ""
    split = f", {recording.splits} split at dropped frames" if recording.splits else ""
    print(f"1/3 dataset: {settings.dataset}: {recording.episodes} episodes{note} from {len(recording.solutions)} "
          f"demonstrations{split}, left {recording.solutions.count('left')}, "
          f"right {recording.solutions.count('right')}")

    checkpoint, timings["train"], reused = pipeline.train(settings, robot_config, tqdm)
    conditions["load_average_after"]["train"] = os.getloadavg()[0]
    print(f"2/3 checkpoint: {checkpoint}{' (reused)' if reused else ''}")
    if settings.distill_steps > 0:
        checkpoint, timings["distill"], reused = pipeline.distill(settings, checkpoint, tqdm)
        conditions["load_average_after"]["distill"] = os.getloadavg()[0]
        print(f"2/3 student: {checkpoint}{' (reused)' if reused else ''}, closing the loop with its own sampler")
        settings = dataclasses.replace(settings, sampler="checkpoint")

    started = time.monotonic()
    results = evaluation.evaluate(settings, robot, checkpoint, tqdm)
    timings["evaluate"] = time.monotonic() - started
    conditions["load_average_after"]["evaluate"] = os.getloadavg()[0]
    report, plots = write_report(settings.output, settings, recording, results, timings, checkpoint,
                                 robot.joint_names, conditions)
    print("\n" + format_summary(summarize(results, recording), timings, recording, conditions))
    print(f"\nreport: {report}\nplots: {', '.join(str(p) for p in plots)}")
    return 0


def machine_conditions(settings) -> dict:
    """What the stage times depend on: cores, the device, and how busy the machine was (1-minute load average)."""
    from dp_ros.training.configuration_training import resolve_device

    return {"cpu_count": os.cpu_count(), "device": resolve_device(settings.device),
            "load_average_before": os.getloadavg()[0], "load_average_after": {}}
