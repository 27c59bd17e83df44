"""Train or fine-tune a Diffusion Policy with LeRobot's own trainer (lerobot-train).

Options come from a training YAML (see config/train.yaml: every option, its
default and what it does, by LeRobot's names); --set and the shortcuts below
override it. Checks the dataset, checkpoint and output folder before starting,
then shows a progress bar (step, loss, learning rate, ETA). Ctrl-C stops
cleanly: a checkpoint being written is finished and the last one is kept;
--resume continues from it. The result, <output_dir>/checkpoints/last/pretrained_model,
is what the policy node loads.

Several processes (GPUs, machines) run through Hugging Face accelerate, as
LeRobot's multi-GPU guide does (accelerate launch --multi_gpu --num_processes N):
--num-processes N, and for several machines an accelerate config file
(--accelerate-config) or accelerate's own options (--accelerate-arg). Each
process takes batch_size samples per step (effective batch N x batch_size).

Examples:
  dp-ros train --config my_train.yaml
  dp-ros train --dataset-root data/pick --output-dir outputs/train/pick --steps 20000 \\
      --set policy.down_dims=[128,256,512] --set batch_size=32
  dp-ros train --config my_train.yaml --pretrained-path outputs/train/pick --output-dir outputs/train/pick_ft
  dp-ros train --config my_train.yaml --resume --steps 40000
  dp-ros train --config my_train.yaml --num-processes 4        # 4 GPUs on this machine
  dp-ros train --config my_train.yaml --num-processes 16 --accelerate-arg=--num_machines=2 \\
      --accelerate-arg=--machine_rank=0 --accelerate-arg=--main_process_ip=10.0.0.1 --accelerate-arg=--main_process_port=29500

Exit codes: 0 finished, 1 trainer failed, 2 configuration problem (nothing started),
130 stopped (Ctrl-C, or SIGTERM from a job scheduler).
"""
from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="training YAML (the train: section of config/train.yaml); default: built-in defaults")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="any option by its dotted LeRobot name, value in YAML, e.g. --set policy.horizon=32 "
                             "(repeatable); unknown names pass through to lerobot-train")
    parser.add_argument("--dataset-root", default=None, help="dataset folder (meta/, data/, videos/) = dataset.root")
    parser.add_argument("--repo-id", default=None, help="dataset name = dataset.repo_id")
    parser.add_argument("--output-dir", default=None, help="run folder = output_dir")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps in total = steps")
    parser.add_argument("--batch-size", type=int, default=None, help="samples per step = batch_size")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps = policy.device")
    parser.add_argument("--pretrained-path", default=None,
                        help="fine-tune from this checkpoint (pretrained_model/ or run folder) "
                             "= policy.pretrained_path")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last checkpoint")
    parser.add_argument("--num-processes", type=int, default=None, metavar="N",
                        help="training processes in all, one per GPU (on a CPU they share the cores); more than 1 "
                             "runs through accelerate launch = accelerate.num_processes")
    parser.add_argument("--accelerate-config", default=None, metavar="FILE",
                        help="accelerate config file (from `accelerate config`), e.g. for several machines "
                             "= accelerate.config_file")
    parser.add_argument("--accelerate-arg", dest="accelerate_args", action="append", default=[], metavar="OPTION",
                        help="an `accelerate launch` option, passed unchanged, e.g. --accelerate-arg=--machine_rank=1 "
                             "(repeatable) = accelerate.launch_args")
    add_run_flags(parser, "check the configuration and print the lerobot-train command, without training")


def add_run_flags(parser: argparse.ArgumentParser, dry_run_help: str) -> None:
    """The flags of how a training run is shown (dp-ros train and dp-ros distill share them)."""
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration as YAML and exit")
    parser.add_argument("--verbose", action="store_true", help="also print the trainer's log lines")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar; one line per logged step instead")


def collect_overrides(args: argparse.Namespace) -> list[str]:
    shortcuts = {"dataset.root": args.dataset_root, "dataset.repo_id": args.repo_id, "output_dir": args.output_dir,
                 "steps": args.steps, "batch_size": args.batch_size, "policy.device": args.device,
                 "policy.pretrained_path": args.pretrained_path, "resume": True if args.resume else None,
                 "accelerate.num_processes": args.num_processes, "accelerate.config_file": args.accelerate_config}
    # Shortcut values are strings or numbers; keep paths as text (quoted YAML).
    pairs = [f"{name}={_yaml_scalar(value)}" for name, value in shortcuts.items() if value is not None]
    if args.accelerate_args:
        pairs.append("accelerate.launch_args=[" + ", ".join(_yaml_scalar(a) for a in args.accelerate_args) + "]")
    return pairs + list(args.overrides)


def _yaml_scalar(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value).lower() if isinstance(value, bool) else str(value)


class ProgressDisplay:
    """A tqdm bar driven by TrainingProgress snapshots (called from the launcher's reader thread)."""

    def __init__(self, total: int, initial: int, use_bar: bool, verbose: bool) -> None:
        from dp_ros.training.progress import StepLines

        self.total, self.initial, self.use_bar, self.verbose = total, initial, use_bar, verbose
        self.bar = None
        self.last_checkpoint = ""
        self.step_lines = StepLines()
        self.state = ""

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def on_line(self, text: str) -> None:
        if self.verbose:
            self.write(text)

    def on_progress(self, p) -> None:
        from dp_ros.training.progress import format_duration, format_step_line

        if p.state != self.state:
            self.state = p.state
            if p.state == "starting":
                self.write("starting LeRobot's trainer (loading the dataset and building the model)...")
            elif p.state == "training":
                self.write(f"training: step {p.step} of {p.total_steps}")
                if self.use_bar:
                    from tqdm import tqdm

                    self.bar = tqdm(total=self.total, initial=self.initial, unit="step", dynamic_ncols=True,
                                    desc="train", bar_format="{desc} {percentage:3.0f}%|{bar}| {n}/{total} "
                                                             "[{elapsed}{postfix}]")
        if self.bar is not None and p.state == "training":
            if p.step > self.bar.n:
                self.bar.update(p.step - self.bar.n)
            loss = f"{p.loss:.4f}" if math.isfinite(p.loss) else "-"
            lr = f"{p.learning_rate:.1e}" if math.isfinite(p.learning_rate) else "-"
            self.bar.set_postfix_str(f"loss {loss}, lr {lr}, ETA {format_duration(p.eta_seconds)}", refresh=True)
        elif not self.use_bar and self.step_lines.due(p):
            self.write(format_step_line(p))
        if p.checkpoint_path and p.checkpoint_path != self.last_checkpoint:
            self.last_checkpoint = p.checkpoint_path
            self.write(f"checkpoint of step {p.checkpoint_step}: {p.checkpoint_path}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace) -> int:
    from dp_ros.training.config_loading import load_training_config
    from dp_ros.training.configuration_training import TrainingConfigError

    try:
        config = load_training_config(args.config, collect_overrides(args))
    except TrainingConfigError as exc:
        print(f"dp-ros train: {exc}", file=sys.stderr)
        return 2
    return run_config(config, args, "train")


def run_config(config, args: argparse.Namespace, command: str) -> int:
    """Print, dry-run or run a training (or distillation) config with a progress display; the exit code."""
    from dp_ros.training.configuration_training import TrainingConfigError
    from dp_ros.training.distillation_launcher import make_launcher

    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    display = ProgressDisplay(config.steps, 0, use_bar=not args.no_progress, verbose=args.verbose)
    try:
        launcher = make_launcher(config, on_progress=display.on_progress, on_line=display.on_line)
        if args.dry_run:
            command_line = launcher.lerobot_command()
            for note in launcher.report.notes:
                print(f"note: {note}")
            print(shlex.join(command_line))
            return 0
        report = launcher.start()
    except TrainingConfigError as exc:
        print(f"dp-ros {command}: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # a job scheduler's stop: the same clean stop as Ctrl-C
    display.initial, display.total = report.resume_step, report.total_steps
    for note in report.notes:
        display.write(f"note: {note}")
    try:
        result = launcher.wait()
    except KeyboardInterrupt:
        display.write("stopping: the trainer finishes a checkpoint being written, then exits "
                      "(Ctrl-C again kills it at once)")
        try:
            result = launcher.stop()
        except KeyboardInterrupt:
            launcher.stop(timeout=0)
            result = launcher.wait()
    display.close()
    return report_result(result, launcher.config, command)


def _interrupt(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def report_result(result, config, command: str = "train") -> int:
    if result.state == "finished":
        print(f"finished: step {result.progress.step} of {result.progress.total_steps}.")
        if result.checkpoint_path:
            print(f"policy: {config.final_model_dir}  (-> {result.checkpoint_path})")
            print(f"run it: dp-ros run-policy --checkpoint {config.final_model_dir}")
            print(f"evaluate it: dp-ros eval --checkpoint {config.final_model_dir} --dataset-root <held-out data>")
        return 0
    if result.state == "stopped":
        print(result.progress.message, file=sys.stderr)
        if result.checkpoint_path:
            print(f"continue with: dp-ros {command} --output-dir {config.output_path} --resume", file=sys.stderr)
        return 130
    print(f"dp-ros {command}: {'distillation' if command == 'distill' else 'training'} failed: "
          f"{result.progress.message}", file=sys.stderr)
    return 1
