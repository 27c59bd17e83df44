"""train_node: a LeRobot training run (lerobot-train) managed from ROS 2.

Starts LeRobot's trainer as a child process from a training YAML (see
config/train.yaml) and publishes its progress as dp_ros_msgs/TrainingStatus on
``~/status`` (transient local: a late subscriber gets the latest). ``~/stop``
(std_srvs/Trigger) stops it cleanly: a checkpoint being written is finished and
the last checkpoint is kept; start the node again with ``resume:=true`` to
continue. Stopping the node (Ctrl-C) stops the trainer the same way.
``num_processes`` > 1 trains with that many processes (GPUs) through
Hugging Face accelerate; progress comes from the main process only.

A configuration problem (a bad option, a dataset that does not match the
checkpoint to fine-tune, an output folder that already holds a run) is found
before the trainer starts: the node logs it and publishes a ``failed`` status
whose message says what to do.
"""
from __future__ import annotations

import sys
import threading

import rclpy
import rclpy.executors
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from dp_ros.bringup import run_node
from dp_ros.conversions.training_status import training_status_msg
from dp_ros.node_params import ParameterError
from dp_ros.node_params.train import TRAIN
from dp_ros.nodes.node_tools import declare_parameters, trigger_service
from dp_ros.training.config_loading import load_training_config
from dp_ros.training.configuration_training import TrainingConfigError
from dp_ros.training.distillation_launcher import DistillationLauncher, make_launcher
from dp_ros.training.launcher import TrainingLauncher
from dp_ros.training.progress import StepLines, TrainingProgress, format_step_line

class TrainNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("train_node", **node_kwargs)
        p = declare_parameters(self, TRAIN)
        self._lock = threading.Lock()
        self._progress = TrainingProgress(message="not started")
        self._published_state = ""
        self._step_lines = StepLines()
        self._logged_checkpoint = ""
        self._done_handled = False

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.status_pub = self.create_publisher(self._status_type(), "~/status", qos)
        self.create_service(Trigger, "~/stop", trigger_service(self.stop_training))
        self.create_timer(1.0 / p["status_rate"], self._on_timer)

        self.launcher: TrainingLauncher | None = None
        try:
            config = load_training_config(p["config"] or None, self._overrides(p))
            self.launcher = make_launcher(config, on_progress=self._on_progress, on_line=self._on_line,
                                          stop_timeout=p["stop_timeout"])
            report = self.launcher.start()
        except TrainingConfigError as exc:
            self.get_logger().error(f"training not started: {exc}")
            self._on_progress(TrainingProgress(state="failed", message=f"training not started: {exc}"))
            return
        for note in report.notes:
            self.get_logger().info(f"note: {note}")
        kind = "distillation" if isinstance(self.launcher, DistillationLauncher) else f"{config.mode} training"
        self.get_logger().info(f"{kind} started: {config.output_path} (log: {self.launcher.log_path}); "
                               f"~/stop stops it keeping the last checkpoint")

    @staticmethod
    def _status_type():
        from dp_ros_msgs.msg import TrainingStatus

        return TrainingStatus

    @staticmethod
    def _overrides(p: dict) -> list[str]:
        pairs = [item for item in p["overrides"] if item.strip()]
        for name, key in (("dataset_root", "dataset.root"), ("output_dir", "output_dir"),
                          ("pretrained_path", "policy.pretrained_path"), ("device", "policy.device"),
                          ("teacher", "distillation.teacher"),
                          ("accelerate_config", "accelerate.config_file")):
            if p[name]:
                pairs.append(f"{key}='" + p[name].replace("'", "''") + "'")
        for name, key in (("steps", "steps"), ("num_processes", "accelerate.num_processes")):
            if p[name] > 0:
                pairs.append(f"{key}={p[name]}")
        if p["resume"]:
            pairs.append("resume=true")
        return pairs

    # --- progress (called from the launcher's reader thread) ---------------------------
    def _on_progress(self, progress: TrainingProgress) -> None:
        with self._lock:
            self._progress = progress
            changed = progress.state != self._published_state
        log = self.get_logger()
        if self._step_lines.due(progress):
            log.info(format_step_line(progress))
        if progress.checkpoint_path and progress.checkpoint_path != self._logged_checkpoint:
            self._logged_checkpoint = progress.checkpoint_path
            log.info(f"checkpoint of step {progress.checkpoint_step}: {progress.checkpoint_path}")
        if changed:
            if progress.state == "failed":
                log.error(progress.message)
            elif progress.state in ("finished", "stopped"):
                log.info(progress.message)
            else:
                log.info(f"training {progress.state}: {progress.message}")
            self._publish_status()

    def _on_line(self, text: str) -> None:
        self.get_logger().debug(f"trainer: {text}")

    def _publish_status(self) -> TrainingProgress:
        with self._lock:
            progress = self._progress
            self._published_state = progress.state
        if rclpy.ok(context=self.context):
            self.status_pub.publish(training_status_msg(progress, self.get_clock().now().to_msg()))
        return progress

    def _on_timer(self) -> None:
        progress = self._publish_status()
        over = progress.state in ("finished", "stopped", "failed")
        if over and self.get_parameter("shutdown_when_done").value:
            if self._done_handled:  # the final status went out one period ago
                rclpy.try_shutdown(context=self.context)
            else:
                self._done_handled = True
                self.get_logger().info("training is over; shutting down (shutdown_when_done)")

    # --- services ----------------------------------------------------------------------
    def stop_training(self) -> tuple[bool, str]:
        if self.launcher is None or not self.launcher.running:
            return False, f"no training is running (state: {self._progress.state})"
        self.launcher.request_stop()
        message = ("stopping: the trainer finishes a checkpoint being written, then exits; the last checkpoint "
                   "is kept (start again with resume:=true to continue)")
        self.get_logger().info(message)
        return True, message

    def destroy_node(self):
        if self.launcher is not None and self.launcher.running:
            self.get_logger().info("node shutting down: stopping the trainer cleanly")
            self.launcher.stop()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(TrainNode, "train_node", (ParameterError,), args)


if __name__ == "__main__":
    sys.exit(main())
