"""Where a view's data comes from: a running system (live topics), a rosbag2 bag, or a LeRobot dataset."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from dp_ros.robot_interface import RobotInterface
from dp_ros.view.rerun_log import RerunLog
from dp_ros.view.ros_messages import POLICY_NAMESPACE, RosMessageLogger, SimScene, view_topics


def new_log(robot: RobotInterface, name: str, save_to: str | Path | None = None, scene: bool | None = None) -> RerunLog:
    scene = SimScene.applies(robot) if scene is None else scene
    return RerunLog(robot.joint_names, [c.name for c in robot.cameras], name=name, scene=scene, save_to=save_to)


class LiveView:
    """Subscribes to a running system's topics in a ROS context of its own (a spinning thread) and logs them.

    ``start(log)`` directs messages to a RerunLog (a served one, or one per episode saved to a file);
    ``finish()`` stops logging and returns that log; ``close()`` ends the subscriptions."""

    def __init__(self, robot: RobotInterface, policy: str = POLICY_NAMESPACE, warn: Callable[[str], None] = print):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data

        from dp_ros.conversions.commands import command_message_class

        self.robot, self.policy, self.warn = robot, policy, warn
        self._lock = threading.Lock()
        self.logger: RosMessageLogger | None = None
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("dp_ros_view", context=self.context)
        types = self._message_types(command_message_class(robot.command.type))
        sensors = {robot.joint_state_topic, *(c.topic for c in robot.cameras)}
        for topic, kind in view_topics(robot, policy).items():
            qos = qos_profile_sensor_data if topic in sensors else 50
            self.node.create_subscription(types[kind if kind != "camera" else topic], topic,
                                          lambda msg, topic=topic: self._on_message(topic, msg), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, name="dp_ros_view", daemon=True)
        self._spinner.start()

    def _message_types(self, command_class) -> dict:
        from sensor_msgs.msg import CompressedImage, Image, JointState

        from dp_ros_msgs.msg import PolicyChunk, PolicyStatus, SafetyIntervention, TaskStatus

        types = {"joint_state": JointState, "command": command_class, "chunk": PolicyChunk,
                 "intervention": SafetyIntervention, "status": PolicyStatus, "task_status": TaskStatus}
        types.update({c.topic: CompressedImage if c.type == "compressed" else Image for c in self.robot.cameras})
        return types

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown ends the spin
            pass

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_message(self, topic: str, msg) -> None:
        with self._lock:
            if self.logger is not None:
                self.logger.handle(topic, msg, self._now())

    def start(self, log: RerunLog) -> None:
        with self._lock:
            self.logger = RosMessageLogger(log, self.robot, self.policy, self.warn)

    def finish(self) -> RosMessageLogger | None:
        with self._lock:
            logger, self.logger = self.logger, None
        if logger is not None:
            logger.view.flush()
        return logger

    def close(self) -> None:
        import rclpy

        self.finish()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def replay_bag(path: str | Path, log: RerunLog, robot: RobotInterface, policy: str = POLICY_NAMESPACE,
               progress: Callable[[int], None] | None = None) -> RosMessageLogger:
    """Log every view topic a bag holds (recorder output, ``dp-ros lerobot2bag`` output, ``ros2 bag record``)."""
    from dp_ros.data.bags.bag_reader import BagReader

    logger = RosMessageLogger(log, robot, policy)
    with BagReader(path) as bag:
        wanted = [t for t in logger.topics if t in bag.topics]
        if not wanted:
            raise ValueError(f"{path} holds none of the view's topics ({', '.join(sorted(logger.topics))}); "
                             f"it has {', '.join(sorted(bag.topics)) or 'no topics'}. Pass the robot interface "
                             "the bag was recorded with (--robot-config)")
        for count, message in enumerate(bag.messages(wanted), start=1):
            logger.handle(message.topic, bag.deserialize(message), message.receive_ns * 1e-9)
            if progress is not None and count % 100 == 0:
                progress(100)
    return logger


def replay_dataset(root: str | Path, log: RerunLog, robot: RobotInterface, episodes: list[int] | None = None,
                   start_time: float = 0.0) -> int:
    """Log a LeRobot dataset's frames: observation.state as measured, action as the command, the camera images.
    Episodes follow each other on the timeline. Returns the number of frames logged."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE

    root = Path(root)
    dataset = LeRobotDataset(repo_id=root.name, root=root, episodes=episodes)
    frames, offset, previous_episode, last_time = 0, start_time, None, start_time
    for i in range(len(dataset)):
        item = dataset[i]
        episode = int(item["episode_index"])
        if episode != previous_episode and previous_episode is not None:
            offset = last_time + 1.0  # a second of gap between episodes
        previous_episode = episode
        t = offset + float(item["timestamp"])
        last_time = t
        log.joint_state(t, item[STATE_FEATURE].numpy())
        log.command(t, np.zeros(1), item[ACTION_FEATURE].numpy()[None, :])
        for cam in robot.cameras:
            if cam.feature in item:
                chw = item[cam.feature].numpy()
                log.image(t, cam.name, (np.clip(np.transpose(chw, (1, 2, 0)), 0, 1) * 255).astype(np.uint8))
        frames += 1
    return frames


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()
