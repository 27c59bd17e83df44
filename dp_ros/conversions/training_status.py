"""TrainingStatus messages from a training run's progress snapshot."""
from __future__ import annotations

from dp_ros.training.progress import STATES, TrainingProgress


def training_status_msg(progress: TrainingProgress, stamp=None):
    """A dp_ros_msgs/TrainingStatus for ``progress`` (unknown numbers stay NaN)."""
    from dp_ros_msgs.msg import TrainingStatus

    msg = TrainingStatus()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.state = STATES.index(progress.state)
    msg.state_name = progress.state
    msg.message = progress.message
    msg.step = max(0, int(progress.step))
    msg.total_steps = max(0, int(progress.total_steps))
    msg.loss = float(progress.loss)
    msg.learning_rate = float(progress.learning_rate)
    msg.grad_norm = float(progress.grad_norm)
    msg.samples_per_second = float(progress.samples_per_second)
    msg.eta_seconds = float(progress.eta_seconds)
    msg.checkpoint_path = progress.checkpoint_path
    return msg
