"""LeRobot's own ``lerobot-train``, reporting its progress and stopping without cutting a checkpoint in half.

The launcher runs ``python -m dp_ros.training.lerobot_entry <lerobot-train arguments>``,
directly for one process or under ``accelerate launch`` for several (one per rank).
It calls ``lerobot.scripts.lerobot_train.main()`` unchanged (LeRobot's real
training loop) after additions that cost nothing per step:

- Events: one JSON line on stdout per event, after ``EVENT_PREFIX``
  (``started`` and ``ended`` from every rank; ``step`` and ``checkpoint`` from
  the main rank). ``dp_ros.training.progress`` reads them; nothing scrapes logs.
- SIGINT or SIGTERM asks for a stop. It takes effect at once, except while a
  checkpoint is being written: then it waits until the checkpoint is complete
  and ``checkpoints/last`` points to it. The process exits with STOPPED_EXIT_CODE.
- When the launching process (``PARENT_PID_ENV``) dies, the trainer stops the
  same clean way instead of training on as an orphan.

- The weight average (``dp_ros.training.ema_hooks``), from ``--dp_ros.ema.*``
  arguments taken out of the list before LeRobot parses it.

LeRobot's internals are reached in ``dp_ros.lerobot_compat.hook_training_loop`` and
``hook_weight_average`` (module-level functions of ``lerobot.scripts.lerobot_train`` wrapped).
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

from dp_ros.lerobot_compat import hook_training_loop, hook_weight_average
from dp_ros.training.ema_hooks import EmaTrainingHooks, resumed_checkpoint, take_ema_arguments

STOPPED_EXIT_CODE = 130
EVENT_PREFIX = "dp_ros.train.event "
PARENT_PID_ENV = "DP_ROS_TRAIN_PARENT_PID"
STEP_EVENT_PERIOD = 0.5
"""Seconds between step events (the last step is always reported)."""
_MAX_ERROR_CHARS = 1500


def rank_and_world_size() -> tuple[int, int]:
    """This process's global rank and the number of processes (set by accelerate's launcher; 0 and 1 alone)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def emit(event: str, **fields: Any) -> None:
    """Write one event line in a single write (lines of several ranks never interleave)."""
    line = EVENT_PREFIX + json.dumps({"event": event, **fields}, allow_nan=False, default=str) + "\n"
    os.write(sys.stdout.fileno(), line.encode())


class StepReporter:
    """Step events from the main rank: the newest step, its loss and learning rate, the throughput."""

    def __init__(self, world_size: int, enabled: bool, period: float = STEP_EVENT_PERIOD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.world_size = world_size
        self.enabled = enabled
        self.period = period
        self.clock = clock
        self.step = 0
        self._losses: list[float] = []
        self._samples = 0
        self._last: dict[str, float] = {}
        self._window_start = clock()
        self._last_emit = -math.inf

    def on_step(self, step: int, loss: float, lr: float, grad_norm: float, batch_size: int) -> None:
        """Called after each optimisation step (``step`` counts from 1, absolute when resuming)."""
        if not self.enabled:
            return
        self.step = step
        self._losses.append(loss)
        self._samples += batch_size * self.world_size
        self._last = {"lr": lr, "grad_norm": grad_norm}
        if self.clock() - self._last_emit >= self.period:
            self.flush()

    def flush(self) -> None:
        """Report the steps done since the previous event (loss averaged over them)."""
        if not self._losses:
            return
        now = self.clock()
        elapsed = now - self._window_start
        emit("step", step=self.step, loss=_finite(sum(self._losses) / len(self._losses)), lr=_finite(self._last["lr"]),
             grad_norm=_finite(self._last["grad_norm"]),
             samples_per_second=_finite(self._samples / elapsed) if elapsed > 0 else None)
        self._losses.clear()
        self._samples = 0
        self._window_start = self._last_emit = now


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class CheckpointGuard:
    """Defers a stop request while a checkpoint is written."""

    def __init__(self) -> None:
        self.writing = False
        self.stop_pending = False

    def on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        print(f"dp_ros: {signal.Signals(signum).name} received", file=sys.stderr, flush=True)
        if self.writing:
            if not self.stop_pending:
                print("dp_ros: stop requested while a checkpoint is written; stopping once it is complete",
                      file=sys.stderr, flush=True)
            self.stop_pending = True
            return
        raise KeyboardInterrupt

    def begin(self) -> None:
        self.writing = True

    def end(self) -> None:
        self.writing = False
        if self.stop_pending:
            raise KeyboardInterrupt


def install_hooks(lerobot_train, guard: CheckpointGuard, reporter: StepReporter,
                  ema: EmaTrainingHooks | None = None) -> None:
    """The weight average (if any), progress events after each step, and the stop guard around each
    checkpoint being written (the average's files included)."""
    if ema is not None and ema.active:
        hook_weight_average(lerobot_train, ema.before_update, ema.after_update, ema.saving)
    def checkpoint_linked(checkpoint_dir) -> None:
        reporter.flush()
        emit("checkpoint", step=int(checkpoint_dir.name), path=str(checkpoint_dir / "pretrained_model"))

    hook_training_loop(lerobot_train, on_step=reporter.on_step, on_save_start=guard.begin,
                       on_save_end=guard.end, on_checkpoint_linked=checkpoint_linked)


def watch_parent(parent_pid: int, guard: CheckpointGuard, period: float = 1.0, grace: float = 30.0) -> None:
    """Stop this process when the launching process ``parent_pid`` is gone.

    First the clean way (SIGTERM: a checkpoint being written is finished); a rank blocked in a
    collective operation with a peer that is gone never runs that handler, so after ``grace``
    seconds without a checkpoint being written the process exits at once.
    """
    def watch() -> None:
        while _alive(parent_pid):
            time.sleep(period)
        print(f"dp_ros: the launching process (pid {parent_pid}) is gone; stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        idle_since = time.monotonic()
        while True:
            time.sleep(period)
            if guard.writing:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > grace:
                os._exit(STOPPED_EXIT_CODE)

    threading.Thread(target=watch, name="dp_ros_parent_watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(prepare: Callable[[Any], None] | None = None) -> int:
    """Run LeRobot's trainer; ``prepare(lerobot_train)`` may hook it further first (distillation does)."""
    rank, world_size = rank_and_world_size()
    emit("started", rank=rank, world_size=world_size, pid=os.getpid())
    guard = CheckpointGuard()
    reporter = StepReporter(world_size, enabled=rank == 0)
    signal.signal(signal.SIGINT, guard.on_signal)
    signal.signal(signal.SIGTERM, guard.on_signal)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and parent.isdigit():
        watch_parent(int(parent), guard)
    state, error, code = "finished", "", 0
    try:
        from lerobot.scripts import lerobot_train

        sys.argv[1:], ema_settings = take_ema_arguments(sys.argv[1:])
        ema = EmaTrainingHooks(ema_settings, resumed_checkpoint(sys.argv[1:]), keeps_average=rank == 0)
        install_hooks(lerobot_train, guard, reporter, ema)
        if prepare is not None:
            prepare(lerobot_train)
        lerobot_train.main()
    except KeyboardInterrupt:
        state, code = "stopped", STOPPED_EXIT_CODE
        print("dp_ros: training stopped on request", file=sys.stderr, flush=True)
    except SystemExit as exc:  # LeRobot's argument parser exits on a bad option
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code:
            state, error = "failed", f"exited with code {code}" + (f": {exc.code}" if isinstance(exc.code, str) else "")
    except BaseException as exc:  # noqa: BLE001 - reported with the rank, then the process fails
        traceback.print_exc()
        state, error, code = "failed", f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS], 1
    reporter.flush()
    emit("ended", rank=rank, state=state, error=error)
    return code


if __name__ == "__main__":
    sys.exit(main())
