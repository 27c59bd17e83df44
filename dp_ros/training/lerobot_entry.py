"""LeRobot's own ``lerobot-train``, with a stop that never cuts a checkpoint in half.

The launcher runs ``python -m dp_ros.training.lerobot_entry <lerobot-train arguments>``.
This calls ``lerobot.scripts.lerobot_train.main()`` unchanged (LeRobot's real
training loop) after three additions that cost nothing per step:

- SIGINT or SIGTERM asks for a stop. It takes effect at once, except while a
  checkpoint is being written: then it waits until the checkpoint is complete
  and ``checkpoints/last`` points to it. The process exits with STOPPED_EXIT_CODE.
- After each checkpoint a line ``dp_ros checkpoint saved: step=N path=...`` tells
  the launcher which checkpoint is complete.
- When the launching process dies, the trainer stops the same clean way
  instead of training on as an orphan.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

STOPPED_EXIT_CODE = 130
STOP_MESSAGE = "dp_ros: training stopped on request"
CHECKPOINT_MARKER = "dp_ros checkpoint saved:"
PARENT_PID_ENV = "DP_ROS_TRAIN_PARENT_PID"


class CheckpointGuard:
    """Defers a stop request while a checkpoint is written."""

    def __init__(self) -> None:
        self.writing = False
        self.stop_pending = False

    def on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.writing:
            if not self.stop_pending:
                print("dp_ros: stop requested while a checkpoint is written; stopping once it is complete",
                      file=sys.stderr, flush=True)
            self.stop_pending = True
            return
        raise KeyboardInterrupt

    def wrap_save(self, save_checkpoint):
        def guarded_save(*args, **kwargs):
            self.writing = True
            try:
                return save_checkpoint(*args, **kwargs)
            except BaseException:
                self._leave()
                raise
        return guarded_save

    def wrap_update_last(self, update_last_checkpoint):
        def guarded_update(checkpoint_dir, *args, **kwargs):
            try:
                result = update_last_checkpoint(checkpoint_dir, *args, **kwargs)
                step = checkpoint_dir.name.lstrip("0") or "0"
                print(f"{CHECKPOINT_MARKER} step={step} path={checkpoint_dir / 'pretrained_model'}",
                      file=sys.stderr, flush=True)
                return result
            finally:
                self._leave()
        return guarded_update

    def _leave(self) -> None:
        self.writing = False
        if self.stop_pending:
            raise KeyboardInterrupt


def watch_parent(parent_pid: int, period: float = 1.0) -> None:
    """Ask this process to stop when ``parent_pid`` is no longer its parent."""
    def watch() -> None:
        while True:
            time.sleep(period)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="dp_ros_parent_watch", daemon=True).start()


def main() -> int:
    from lerobot.scripts import lerobot_train

    guard = CheckpointGuard()
    lerobot_train.save_checkpoint = guard.wrap_save(lerobot_train.save_checkpoint)
    lerobot_train.update_last_checkpoint = guard.wrap_update_last(lerobot_train.update_last_checkpoint)
    signal.signal(signal.SIGINT, guard.on_signal)
    signal.signal(signal.SIGTERM, guard.on_signal)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and parent.isdigit():
        watch_parent(int(parent))
    try:
        lerobot_train.main()
    except KeyboardInterrupt:
        print(STOP_MESSAGE, file=sys.stderr, flush=True)
        return STOPPED_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
