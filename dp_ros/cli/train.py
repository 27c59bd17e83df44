"""Train or fine-tune a Diffusion Policy with LeRobot's own trainer (lerobot-train).

Options come from a training YAML (see config/train.yaml: every option, its
default and what it does, by LeRobot's names); --set and the shortcuts below
override it. Checks the dataset, checkpoint and output folder before starting,
then shows a progress bar (step, loss, learning rate, ETA). Ctrl-C stops
cleanly: a checkpoint being written is finished and the last one is kept;
--resume continues from it. The result, <output_dir>/checkpoints/last/pretrained_model,
is what the policy node loads.

Examples:
  dp-ros train --config my_train.yaml
  dp-ros train --dataset-root data/pick --output-dir outputs/train/pick --steps 20000 \\
      --set policy.down_dims=[128,256,512] --set batch_size=32
  dp-ros train --config my_train.yaml --pretrained-path outputs/train/pick --output-dir outputs/train/pick_ft
  dp-ros train --config my_train.yaml --resume --steps 40000

Exit codes: 0 finished, 1 trainer failed, 2 configuration problem (nothing started),
130 stopped (Ctrl-C).
"""
from __future__ import annotations

import argparse
import math
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
    parser.add_argument("--dry-run", action="store_true",
                        help="check the configuration and print the lerobot-train command, without training")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration as YAML and exit")
    parser.add_argument("--verbose", action="store_true", help="also print the trainer's log lines")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar; one line per logged step instead")


def collect_overrides(args: argparse.Namespace) -> list[str]:
    shortcuts = {"dataset.root": args.dataset_root, "dataset.repo_id": args.repo_id, "output_dir": args.output_dir,
                 "steps": args.steps, "batch_size": args.batch_size, "policy.device": args.device,
                 "policy.pretrained_path": args.pretrained_path, "resume": True if args.resume else None}
    # Shortcut values are strings or numbers; keep paths as text (quoted YAML).
    pairs = [f"{name}={_yaml_scalar(value)}" for name, value in shortcuts.items() if value is not None]
    return pairs + list(args.overrides)


def _yaml_scalar(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value).lower() if isinstance(value, bool) else str(value)


def format_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:d}:{rest % 60:02d}"


class ProgressDisplay:
    """A tqdm bar driven by TrainingProgress snapshots (called from the launcher's reader thread)."""

    def __init__(self, total: int, initial: int, use_bar: bool, verbose: bool) -> None:
        self.total, self.initial, self.use_bar, self.verbose = total, initial, use_bar, verbose
        self.bar = None
        self.last_checkpoint = ""
        self.last_logged_loss = None
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
        elif not self.use_bar and p.state == "training" and math.isfinite(p.loss) and p.loss != self.last_logged_loss:
            self.last_logged_loss = p.loss
            self.write(f"step {p.step}/{p.total_steps} loss {p.loss:.4f} lr {p.learning_rate:.1e} "
                       f"{p.samples_per_second:.1f} samples/s ETA {format_duration(p.eta_seconds)}")
        if p.checkpoint_path and p.checkpoint_path != self.last_checkpoint:
            self.last_checkpoint = p.checkpoint_path
            self.write(f"checkpoint of step {p.checkpoint_step}: {p.checkpoint_path}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace) -> int:
    from dp_ros.training.configuration_training import TrainingConfigError, load_training_config
    from dp_ros.training.launcher import TrainingLauncher

    try:
        config = load_training_config(args.config, collect_overrides(args))
    except TrainingConfigError as exc:
        print(f"dp-ros train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    display = ProgressDisplay(config.steps, 0, use_bar=not args.no_progress, verbose=args.verbose)
    launcher = TrainingLauncher(config, on_progress=display.on_progress, on_line=display.on_line)
    try:
        if args.dry_run:
            command = launcher.lerobot_command()
            for note in launcher.report.notes:
                print(f"note: {note}")
            print(" ".join(command))
            return 0
        report = launcher.start()
    except TrainingConfigError as exc:
        print(f"dp-ros train: {exc}", file=sys.stderr)
        return 2
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
    return report_result(result, config)


def report_result(result, config) -> int:
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
            print(f"continue with: dp-ros train --output-dir {config.output_path} --resume", file=sys.stderr)
        return 130
    print(f"dp-ros train: training failed: {result.progress.message}", file=sys.stderr)
    return 1
