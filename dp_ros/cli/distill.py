"""Distil a trained Diffusion Policy into a consistency student that acts in 1-4 network calls.

Consistency distillation along the teacher's probability-flow ODE: the student
is the teacher's own LeRobot network, warm-started from its weights, trained
with LeRobot's trainer on the teacher's dataset so that its one-step map takes
a noised demonstration to the end of the teacher's ODE trajectory from it (the
teacher's DDIM solver over skipped timesteps, run to the boundary; or, with
--target target-network, LCM's single teacher step and the student's moving
average as target). The teacher's image encoder is kept. The result,
<output_dir>/checkpoints/last/pretrained_model, is a LeRobot checkpoint of the
same architecture (LeRobot's from_pretrained loads it) that records its sampler
(consistency, --student-steps steps): the policy node, `dp-ros eval` and
`dp-ros bench` use it unless told otherwise.

Progress bar, Ctrl-C (a checkpoint being written is finished), --resume and the
checks before start work as for `dp-ros train`, and so does every training
option (--set, or a training YAML with a distillation: section).

Examples:
  dp-ros distill --teacher outputs/train/pick --dataset-root data/pick --output-dir outputs/distill/pick
  dp-ros distill --output-dir outputs/distill/pick --resume --steps 2000

Exit codes: 0 finished, 1 trainer failed, 2 configuration problem (nothing started),
130 stopped (Ctrl-C, or SIGTERM from a job scheduler).
"""
from __future__ import annotations

import argparse
import sys

from dp_ros.cli.train import _yaml_scalar, add_run_flags
from dp_ros.training.configuration_distillation import RUN_DEFAULTS as DEFAULTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default=None, help="the trained checkpoint to distil (pretrained_model/, a "
                        "checkpoint or a training run's folder) = distillation.teacher; not needed with --resume")
    parser.add_argument("--dataset-root", default=None, help="the teacher's dataset (meta/, data/, videos/) = dataset.root")
    parser.add_argument("--output-dir", default=None, help="run folder = output_dir (the student: "
                        "<output_dir>/checkpoints/last/pretrained_model)")
    parser.add_argument("--steps", type=int, default=None, help=f"optimisation steps in total (default {DEFAULTS['steps']})")
    parser.add_argument("--batch-size", type=int, default=None, help=f"samples per step (default {DEFAULTS['batch_size']})")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps = policy.device (default auto)")
    parser.add_argument("--student-steps", type=int, default=None,
                        help="consistency sampler steps the student records as its default, 1-4 (default 3)")
    parser.add_argument("--target", default=None, choices=("teacher-ode", "target-network"),
                        help="what the student's map is pulled to: the end of the teacher's DDIM trajectory "
                        "(teacher-ode, default) or, LCM-style, the student's moving average one teacher step on "
                        "(target-network)")
    parser.add_argument("--teacher-steps", type=int, default=None,
                        help="teacher-ode: the teacher's solver spacing, as a DDIM sampler of this many steps; "
                        "must divide num_train_timesteps (default 10)")
    parser.add_argument("--train-encoder", action="store_true", default=None,
                        help="train the student's image encoder too (about 3x the time per step; default: the "
                        "teacher's encoder is kept)")
    parser.add_argument("--solver-intervals", type=int, default=None,
                        help="intervals of the grid the noised chunks' timesteps are drawn from (and, with "
                        "target-network, of the teacher's step); must divide num_train_timesteps (default 20)")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="target-network: decay of the target network's average (default 0.95)")
    parser.add_argument("--loss", default=None, choices=("pseudo-huber", "weighted-l2"),
                        help="distance between student and target (default pseudo-huber, LCM's)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate = policy.optimizer_lr (default 1e-4)")
    parser.add_argument("--resume", action="store_true", help="continue the distillation in output_dir from its last "
                        "checkpoint (raise --steps to distil longer)")
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="training YAML (config/train.yaml's train: section, with a distillation: section)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="any training option by its dotted name, e.g. --set num_workers=0 (repeatable)")
    add_run_flags(parser, "check everything and print the trainer's command")


def collect_overrides(args: argparse.Namespace) -> list[str]:
    values = {"distillation.teacher": args.teacher, "dataset.root": args.dataset_root, "output_dir": args.output_dir,
              "steps": args.steps, "batch_size": args.batch_size, "policy.device": args.device,
              "distillation.student_steps": args.student_steps, "distillation.solver_intervals": args.solver_intervals,
              "distillation.target": args.target, "distillation.teacher_steps": args.teacher_steps,
              "distillation.train_encoder": args.train_encoder,
              "distillation.ema_decay": args.ema_decay, "distillation.loss": args.loss,
              "policy.optimizer_lr": args.lr, "resume": True if args.resume else None}
    if args.config is None and not args.resume:
        values = {**DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
    return [f"{name}={_yaml_scalar(value)}" for name, value in values.items() if value is not None] + list(args.overrides)


def run(args: argparse.Namespace) -> int:
    from dp_ros.cli.train import run_config
    from dp_ros.training.config_loading import load_training_config
    from dp_ros.training.configuration_distillation import distillation_settings
    from dp_ros.training.configuration_training import TrainingConfigError

    try:
        config = load_training_config(args.config, collect_overrides(args))
        if distillation_settings(config) is None:
            raise TrainingConfigError("nothing to distil: pass --teacher (or --resume a distillation's output_dir)")
    except TrainingConfigError as exc:
        print(f"dp-ros distill: {exc}", file=sys.stderr)
        return 2
    return run_config(config, args, "distill")
