"""Progress of a LeRobot training run, read from the trainer's output.

``lerobot-train`` prints a tqdm bar (``Training:  33%|...| 2/6 [00:01<00:02,  1.64step/s]``,
exact step and speed), a metrics line every ``log_freq`` steps
(``step:200 smpl:13K ... loss:0.123 grdn:1.234 lr:1.0e-04 updt_s:0.250 data_s:0.010 smp/s:250``)
and ``Checkpoint policy after step N``; dp_ros's entry adds
``dp_ros checkpoint saved: step=N path=...`` once a checkpoint is complete.
Lines may hold a bar update and a log message glued together.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from dp_ros.training.lerobot_entry import CHECKPOINT_MARKER, STOP_MESSAGE

STATES = ("idle", "starting", "training", "finished", "stopped", "failed")

_TQDM = re.compile(r"Training:\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([^\]<]*)<([^,\]]*),\s*([^\]]*)\]")
_RATE = re.compile(r"([\d.]+)\s*(step/s|s/step)")
_METRIC = re.compile(r"(?:^|\s)(step|smpl|ep|epch|loss|grdn|lr|updt_s|data_s|smp/s):(\S+)")
_CHECKPOINT_STARTED = re.compile(r"Checkpoint policy after step (\d+)")
_CHECKPOINT_SAVED = re.compile(re.escape(CHECKPOINT_MARKER) + r" step=(\d+) path=(.+?)\s*$")
_LOG_RECORD = re.compile(r"(?:^|\]|\s)(INFO|WARNING|ERROR|CRITICAL|DEBUG) \d{4}-\d\d-\d\d ")
_END = "End of training"


@dataclass(frozen=True)
class TrainingProgress:
    """A snapshot of a training run, as TrainingStatus publishes it."""

    state: str = "idle"
    """idle, starting, training, finished, stopped or failed."""
    step: int = 0
    """Optimisation steps done (absolute, also when resuming)."""
    total_steps: int = 0
    """Optimisation steps requested."""
    loss: float = math.nan
    """Training loss averaged over the last log window."""
    learning_rate: float = math.nan
    """Learning rate at the last logged step."""
    grad_norm: float = math.nan
    """Gradient norm averaged over the last log window."""
    samples_per_second: float = math.nan
    """Training throughput over the last log window."""
    eta_seconds: float = math.nan
    """Estimated time left."""
    checkpoint_path: str = ""
    """The newest complete checkpoint (a pretrained_model/ folder), empty if none yet."""
    checkpoint_step: int = 0
    """The step of that checkpoint."""
    message: str = ""
    """What happened, in words."""

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


def parse_bar(line: str) -> tuple[int, int, float | None] | None:
    """(steps done in this run, steps of this run, steps per second) from a tqdm update."""
    match = _TQDM.search(line)
    if not match:
        return None
    done, total = int(match.group(1)), int(match.group(2))
    rate = _RATE.search(match.group(5))
    steps_per_second = None
    if rate:
        value = float(rate.group(1))
        steps_per_second = value if rate.group(2) == "step/s" else (1.0 / value if value > 0 else None)
    return done, total, steps_per_second


def parse_metrics(line: str) -> dict[str, float] | None:
    """LeRobot's metrics line as numbers: step, loss, grad_norm, lr, update_s, data_s, samples_per_s.

    ``step`` is left out from 1000 on, where LeRobot abbreviates it (1K).
    """
    if "loss:" not in line or "step:" not in line:
        return None
    names = {"step": "step", "loss": "loss", "grdn": "grad_norm", "lr": "lr", "updt_s": "update_s",
             "data_s": "data_s", "smp/s": "samples_per_s"}
    metrics = {}
    for key, value in _METRIC.findall(line):
        if key in names:
            if key == "step" and not value.isdigit():
                continue
            try:
                metrics[names[key]] = float(value)
            except ValueError:
                continue
    return metrics if "loss" in metrics else None


def is_log_record(line: str) -> bool:
    """True for a line of LeRobot's logging (LEVEL date time ...), printed once its arguments parsed."""
    return bool(_LOG_RECORD.search(line))


def is_bar_only(line: str) -> bool:
    """True for a line that holds nothing but tqdm bar updates."""
    return bool(_TQDM.search(line)) and not _TQDM.sub("", line).strip()


class ProgressTracker:
    """Turns trainer output lines into TrainingProgress snapshots."""

    def __init__(self, total_steps: int, batch_size: int, initial_step: int = 0) -> None:
        self.initial_step = initial_step
        self.batch_size = batch_size
        self.progress = TrainingProgress(state="starting", step=initial_step, total_steps=total_steps,
                                         message="trainer starting: loading LeRobot, the dataset and the model")

    def feed(self, line: str) -> bool:
        """Read one output line; True when the progress changed."""
        before = self.progress
        p = self.progress
        bar = parse_bar(line)
        if bar is not None:
            done, run_total, steps_per_second = bar
            step = self.initial_step + done
            eta = p.eta_seconds
            if steps_per_second:
                eta = max(0, run_total - done) / steps_per_second
            if done == run_total:
                eta = 0.0
            p = replace(p, state="training", step=step, eta_seconds=eta,
                        message=p.message if p.state == "training" else "training")
        metrics = parse_metrics(line)
        if metrics is not None:
            speed = p.samples_per_second
            step_time = metrics.get("update_s", 0.0) + metrics.get("data_s", 0.0)
            if step_time > 0:
                speed = self.batch_size / step_time
            elif "samples_per_s" in metrics:
                speed = metrics["samples_per_s"]
            # The bar may lag (tqdm redraws at most every 0.1 s); the metrics line has the exact step.
            step = max(p.step, int(metrics.get("step", 0)))
            p = replace(p, state="training", step=step, loss=metrics["loss"],
                        grad_norm=metrics.get("grad_norm", p.grad_norm),
                        learning_rate=metrics.get("lr", p.learning_rate), samples_per_second=speed)
        saved = _CHECKPOINT_SAVED.search(line)
        if saved:
            step = int(saved.group(1))
            p = replace(p, checkpoint_path=saved.group(2), checkpoint_step=step,
                        message=f"checkpoint of step {step} saved")
        elif _CHECKPOINT_STARTED.search(line):
            p = replace(p, message=f"writing the checkpoint of step {_CHECKPOINT_STARTED.search(line).group(1)}")
        if _END in line:
            p = replace(p, eta_seconds=0.0, message="training loop done")
        if STOP_MESSAGE in line:
            p = replace(p, message="stopped on request")
        self.progress = p
        return p != before

    def finish(self, state: str, message: str) -> TrainingProgress:
        self.progress = replace(self.progress, state=state, message=message,
                                eta_seconds=0.0 if state == "finished" else self.progress.eta_seconds)
        return self.progress
