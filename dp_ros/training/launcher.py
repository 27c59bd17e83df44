"""LeRobot's trainer as a managed child process.

``TrainingLauncher`` checks the configuration (``preflight``), then runs
``python -m dp_ros.training.lerobot_entry <lerobot-train arguments>`` (an argument
list, no shell; under ``accelerate launch`` for several processes, see
``accelerate_launch``) in its own session, reads the events of its processes
into ``TrainingProgress`` snapshots, keeps their log in
``<output_dir>/dp_ros_train.log``, and reports how it ended:

- finished: the requested steps are done; the newest checkpoint is returned;
- stopped: ``request_stop()`` / ``stop()`` (or Ctrl-C in ``run_training``) ended it;
  the last complete checkpoint is kept and a later ``resume: true`` continues it;
- failed: the trainer exited with an error; the rank that failed, the exit code and the
  last log lines say why.

``run_training()`` is the one-call form for scripts::

    from dp_ros.training.launcher import run_training
    model_dir = run_training("config/train.yaml", overrides={"steps": 2000},
                             on_progress=lambda p: print(p.step, p.loss))
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dp_ros.node_params.train import TRAIN
from dp_ros.training.accelerate_launch import trainer_command
from dp_ros.training.config_loading import load_training_config, with_overrides
from dp_ros.training.configuration_training import (
    CHECKPOINTS_DIR,
    LAST_CHECKPOINT,
    PRETRAINED_MODEL_DIR,
    TrainingConfig,
    resolve_device,
)
from dp_ros.training.lerobot_entry import PARENT_PID_ENV, STOPPED_EXIT_CODE
from dp_ros.training.preflight import PreflightReport, run_preflight
from dp_ros.training.progress import ProgressTracker, TrainingProgress, parse_event

LOG_FILE_NAME = "dp_ros_train.log"
TRAINER_BAR_INTERVAL = "30"
"""Seconds between redraws of LeRobot's own progress bar (it only goes to the log; dp_ros shows its own)."""
ProgressCallback = Callable[[TrainingProgress], None]
LineCallback = Callable[[str], None]


class TrainingError(RuntimeError):
    """Training did not finish; ``result`` says how it ended."""

    def __init__(self, message: str, result: "TrainingResult") -> None:
        super().__init__(message)
        self.result = result


class TrainingFailed(TrainingError):
    """The trainer exited with an error."""


class TrainingStopped(TrainingError):
    """Training was stopped on request; the last checkpoint is kept."""


@dataclass
class TrainingResult:
    """How a training run ended."""

    state: str
    """finished, stopped or failed."""
    exit_code: int
    """The trainer's exit code (negative: killed by that signal)."""
    checkpoint_path: Path | None
    """The newest complete checkpoint (its pretrained_model/ folder), None if none was written."""
    progress: TrainingProgress
    """The last progress snapshot."""
    log_path: Path | None = None
    """The trainer's log file."""
    last_lines: list[str] = field(default_factory=list)
    """The trainer's last log lines (progress-bar updates left out)."""


class TrainingLauncher:
    """Start, watch and stop one LeRobot training run (one process, or one per rank through accelerate)."""

    def __init__(self, config: TrainingConfig, on_progress: ProgressCallback | None = None,
                 on_line: LineCallback | None = None, python: str = sys.executable, tail_lines: int = 40,
                 stop_timeout: float = TRAIN["stop_timeout"].default) -> None:
        self.config = config
        self.on_progress = on_progress
        self.on_line = on_line
        self.python = python
        self.stop_timeout = stop_timeout
        self.report: PreflightReport | None = None
        self.command: list[str] = []
        self.result: TrainingResult | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._tracker = ProgressTracker(config.steps)
        self._tracker.progress = TrainingProgress(state="idle", total_steps=config.steps, message="not started")
        self._proc: subprocess.Popen | None = None
        self._done = threading.Event()
        self._stop_requested = False
        self._killed = False
        self._log_file = None
        self._log_buffer: list[str] = []
        self._lock = threading.Lock()

    # --- state -------------------------------------------------------------------
    @property
    def progress(self) -> TrainingProgress:
        return self._tracker.progress

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._done.is_set()

    @property
    def log_path(self) -> Path:
        return self.config.output_path / LOG_FILE_NAME

    def lerobot_command(self) -> list[str]:
        """The trainer's command line (after the preflight checks; for display and dry runs)."""
        if self.report is None:
            self.report = run_preflight(self.config)
        device = resolve_device(self.config.policy.device)
        return trainer_command(self.config, self.python, device, self.report.pretrained_model_dir)

    # --- control -------------------------------------------------------------------
    def start(self) -> PreflightReport:
        """Check everything, then start the trainer. Raises PreflightError before anything starts."""
        if self._proc is not None:
            raise RuntimeError("this launcher already started a run; make a new TrainingLauncher")
        self.report = run_preflight(self.config)
        self.command = self.lerobot_command()
        out = self.config.output_path
        if self.report.owns_output_dir and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # LeRobot refuses an existing output folder, even an empty one
        self._tracker = ProgressTracker(self.report.total_steps, self.report.resume_step)
        if self.config.mode == "resume":
            self._open_log()
        self._write_log(f"dp_ros: {self.config.mode} training: {' '.join(self.command)}")
        for note in self.report.notes:
            self._write_log(f"dp_ros: note: {note}")
        env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL=TRAINER_BAR_INTERVAL,
                   **{PARENT_PID_ENV: str(os.getpid())})
        if self.config.cpu_threads:
            env["OMP_NUM_THREADS"] = str(self.config.cpu_threads)
        self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1, env=env,
                                      start_new_session=True)
        readers = [threading.Thread(target=self._read, args=(stream,), name=f"dp_ros_train_{name}", daemon=True)
                   for name, stream in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr))]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._wait_exit, args=(readers,), name="dp_ros_train_wait", daemon=True).start()
        self._emit()
        return self.report

    def request_stop(self) -> None:
        """Ask the trainer to stop (it finishes a checkpoint being written first); returns at once.

        The main rank (rank 0, the one that writes checkpoints) is asked; with several processes
        accelerate then ends the others. Before the ranks have started, accelerate is asked.
        """
        with self._lock:
            self._stop_requested = True
            if self._proc is None or self._proc.poll() is not None:
                return
            main_rank = self._tracker.ranks.pid(0)
            try:
                os.kill(main_rank if main_rank else self._proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float | None = None) -> TrainingResult:
        """Stop cleanly and wait; kill every process of the run if it has not exited after ``timeout`` seconds."""
        if self._proc is None:
            raise RuntimeError("training was not started")
        self.request_stop()
        timeout = self.stop_timeout if timeout is None else timeout
        if not self._done.wait(timeout):
            self._write_log(f"dp_ros: the trainer did not stop within {timeout:.0f} s; killing it")
            self._killed = True
            for pid in [self._proc.pid, *self._tracker.ranks.running_pids()]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._done.wait()
        assert self.result is not None
        return self.result

    def wait(self, timeout: float | None = None) -> TrainingResult | None:
        """Wait for the run to end; None if ``timeout`` passed first."""
        if self._proc is None:
            raise RuntimeError("training was not started")
        if not self._done.wait(timeout):
            return None
        return self.result

    # --- output ------------------------------------------------------------------
    def _read(self, stream) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            event = parse_event(line)
            if event is not None:
                with self._lock:
                    changed = self._tracker.feed(event)
                    if self._log_file is None and event["event"] == "step":
                        self._open_log()  # every rank has accepted output_dir: it is safe to create it now
                if changed:
                    self._emit()
                continue
            with self._lock:
                self._tail.append(line)
                self._write_log(line)
            if self.on_line is not None:
                _call_safely(self.on_line, line)

    def _wait_exit(self, readers: list[threading.Thread]) -> None:
        for reader in readers:
            reader.join()  # the pipes close once every process of the run (ranks, data workers) has exited
        self._finish(self._proc.wait())

    def _finish(self, exit_code: int) -> None:
        checkpoint = self._newest_checkpoint()
        ranks = self._tracker.ranks
        stopped = self._stop_requested and (exit_code == STOPPED_EXIT_CODE or self._killed or ranks.any_stopped())
        if exit_code == 0:
            state = "finished"
            message = f"finished {self.report.total_steps} steps" + (f"; checkpoint {checkpoint}" if checkpoint else "")
        elif stopped:
            state = "stopped"
            message = (f"stopped on request at step {self.progress.step}; " +
                       (f"last checkpoint kept: {checkpoint}; set resume: true to continue" if checkpoint
                        else "no checkpoint had been written yet"))
        else:
            state = "failed"
            how = (f"was killed by signal {signal.Signals(-exit_code).name}" if exit_code < 0
                   else f"exited with code {exit_code}")
            failure = ranks.failure() if ranks.world_size > 1 else ""
            message = (f"{failure}; the trainer {how}" if failure else f"the trainer {how}") + ". Its last lines:\n"
            message += "\n".join([t for t in self._tail if not t.startswith("dp_ros: note")][-15:])
            if self._log_file is not None:
                message += f"\n(full log: {self.log_path})"
        self._write_log(f"dp_ros: {message}")
        if checkpoint is not None:
            from dataclasses import replace

            step = _checkpoint_step(checkpoint)
            progress = self._tracker.progress
            self._tracker.progress = replace(progress, checkpoint_path=str(checkpoint),
                                             checkpoint_step=step if step is not None else progress.checkpoint_step)
        progress = self._tracker.finish(state, message)
        self.result = TrainingResult(state=state, exit_code=exit_code, checkpoint_path=checkpoint, progress=progress,
                                     log_path=self.log_path if self._log_file else None, last_lines=list(self._tail))
        if self._log_file is not None:
            self._log_file.close()
        self._emit()
        self._done.set()

    def _newest_checkpoint(self) -> Path | None:
        """The complete checkpoint ``checkpoints/last`` points to (LeRobot moves the link only after a full save)."""
        last = self.config.output_path / CHECKPOINTS_DIR / LAST_CHECKPOINT
        model_dir = last.resolve() / PRETRAINED_MODEL_DIR
        if last.is_symlink() and (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file():
            return model_dir
        return None

    def _emit(self) -> None:
        if self.on_progress is not None:
            _call_safely(self.on_progress, self._tracker.progress)

    def _open_log(self) -> None:
        self.config.output_path.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in _finish
        for text in self._log_buffer:
            self._log_file.write(text + "\n")
        self._log_buffer.clear()
        self._log_file.flush()

    def _write_log(self, text: str) -> None:
        if self._log_file is None:
            self._log_buffer.append(text)
        else:
            self._log_file.write(text + "\n")
            self._log_file.flush()


def _call_safely(callback: Callable[[Any], None], value: Any) -> None:
    """Run a user callback from the reader thread; its errors must not stop the output reading."""
    try:
        callback(value)
    except Exception as exc:  # noqa: BLE001 - report and go on
        print(f"dp_ros: training callback {callback!r} raised {exc!r}", file=sys.stderr)


def _checkpoint_step(model_dir: Path) -> int | None:
    name = model_dir.parent.name
    return int(name) if name.isdigit() else None


def run_training(config: TrainingConfig | str | Path, overrides: Mapping[str, Any] | Sequence[str] | None = None,
                 on_progress: ProgressCallback | None = None, on_line: LineCallback | None = None,
                 launcher_for: Callable[..., TrainingLauncher] | None = None) -> Path | None:
    """Train until done and return the final checkpoint's pretrained_model/ folder.

    ``config``: a TrainingConfig or the path of a training YAML; ``overrides``: dotted options
    ({"steps": 2000, "dataset.root": "/data/sim"}). ``on_progress`` receives TrainingProgress
    snapshots (from a reader thread). Raises TrainingConfigError (bad config, nothing started),
    TrainingFailed (exit code and last log lines in the message) or TrainingStopped (Ctrl-C:
    the trainer stops cleanly first, keeping its last checkpoint). Returns None only when
    save_checkpoint is false. ``launcher_for(config, on_progress=, on_line=)`` makes the launcher (default
    TrainingLauncher; ``distillation_launcher.make_launcher`` distils a config with a distillation section).
    """
    if isinstance(config, TrainingConfig):
        config = with_overrides(config, overrides)
    else:
        config = load_training_config(config, overrides)
    launcher = (launcher_for or TrainingLauncher)(config, on_progress=on_progress, on_line=on_line)
    launcher.start()
    try:
        result = launcher.wait()
    except KeyboardInterrupt:
        result = launcher.stop()
    assert result is not None
    if result.state == "failed":
        raise TrainingFailed(result.progress.message, result)
    if result.state == "stopped":
        raise TrainingStopped(result.progress.message, result)
    return result.checkpoint_path
