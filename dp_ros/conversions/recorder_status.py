"""RecorderStatus messages from a recording session's status snapshot."""
from __future__ import annotations

from dp_ros.data.recording import STATE_CODES, RecorderStatus


def recorder_status_msg(status: RecorderStatus, stamp=None):
    """A dp_ros_msgs/RecorderStatus for ``status``."""
    from dp_ros_msgs.msg import RecorderStatus as RecorderStatusMsg

    msg = RecorderStatusMsg()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.state = STATE_CODES[status.state]
    msg.state_name = status.state
    msg.message = status.message
    msg.dataset_root = status.dataset_root
    msg.episode_index = int(status.episode_index)
    msg.episodes_saved = int(status.episodes_saved)
    msg.frames_in_episode = int(status.frames_in_episode)
    msg.frames_dropped = int(status.frames_dropped)
    msg.disk_bytes = int(status.disk_bytes)
    return msg
