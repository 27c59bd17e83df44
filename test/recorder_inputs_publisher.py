"""A robot's drivers and a leader arm, run as their own process in the recorder tests.

Publishes, for a robot interface YAML, JointState (joints reversed plus an
unlisted one), the leader arm's JointState (leader_value: state_value + 0.05,
from the same instant) and every camera (Image rgb8, or CompressedImage jpeg for
``type: compressed``), stamped with the publishing time. Commands on stdin:
``stall <camera name|joints|leader>``, ``resume <...>``, ``bad_encoding`` (raw
images get an unsupported encoding), ``bad_joints`` (JointState lacks a joint),
``ok``. Each is acknowledged with "done <command>".
"""
import sys
import threading

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState

from bag_fixtures import leader_value, state_value
from dp_ros.conversions.images import rgb_to_compressed_msg, rgb_to_image_msg
from dp_ros.robot_interface import load_robot_interface


def main():
    robot = load_robot_interface(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("recorder_test_inputs")
    joints = node.create_publisher(JointState, robot.joint_state_topic, qos_profile_sensor_data)
    leader = node.create_publisher(JointState, robot.action.topic, qos_profile_sensor_data)
    cameras = {cam.name: node.create_publisher(CompressedImage if cam.type == "compressed" else Image, cam.topic,
                                               qos_profile_sensor_data) for cam in robot.cameras}
    state = {"stalled": set(), "bad_encoding": False, "bad_joints": False}
    lock = threading.Lock()

    def joint_msg(names, fn, t, stamp):
        msg = JointState()
        msg.header.stamp = stamp
        values = {name: fn(t, k) for k, name in enumerate(robot.joint_names)}
        values["unlisted_joint"] = 0.0
        if state["bad_joints"]:
            del values[robot.joint_names[0]]
        msg.name = [n for n in reversed(robot.joint_names + ["unlisted_joint"]) if n in values]
        msg.position = [values[n] for n in msg.name]
        return msg

    def publish_joints():
        now = node.get_clock().now()
        t, stamp = now.nanoseconds * 1e-9, now.to_msg()
        with lock:
            if "joints" not in state["stalled"]:
                joints.publish(joint_msg(robot.joint_names, state_value, t, stamp))
            if "leader" not in state["stalled"]:
                leader.publish(joint_msg(robot.joint_names, leader_value, t, stamp))

    def publish_images():
        now = node.get_clock().now()
        level = int(now.nanoseconds * 1e-9 * 80) % 200 + 20
        with lock:
            for cam in robot.cameras:
                if cam.name in state["stalled"]:
                    continue
                rgb = np.empty((cam.height * 2, cam.width * 2, 3), dtype=np.uint8)
                rgb[..., 0], rgb[..., 1], rgb[..., 2] = level, 255 - level, 60
                if cam.type == "compressed":
                    msg = rgb_to_compressed_msg(rgb, now.to_msg())
                else:
                    msg = rgb_to_image_msg(rgb, now.to_msg())
                    if state["bad_encoding"]:
                        msg.encoding = "32FC1"
                cameras[cam.name].publish(msg)

    node.create_timer(0.02, publish_joints)
    node.create_timer(1 / 15, publish_images)

    def read_commands():
        for line in sys.stdin:
            words = line.split()
            with lock:
                if words[:1] == ["stall"]:
                    state["stalled"].add(words[1])
                elif words[:1] == ["resume"]:
                    state["stalled"].discard(words[1])
                elif words[:1] in (["bad_encoding"], ["bad_joints"]):
                    state[words[0]] = True
                elif words[:1] == ["ok"]:
                    state.update(stalled=set(), bad_encoding=False, bad_joints=False)
            print("done", " ".join(words), flush=True)

    threading.Thread(target=read_commands, daemon=True).start()
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
