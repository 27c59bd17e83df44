"""A stand-in for a robot's drivers, run as its own process in tests: publishes
JointState and camera images for a robot interface YAML over real DDS.

Its behaviour changes on commands read from stdin, one per line:
  stall <stream>          stop publishing joint_states, a camera name, or all
  resume <stream>         publish it again
  encoding <enc>          publish raw images in this encoding (e.g. bgr8, 32FC1)
  size <w> <h>            publish images of this size
  drop_joint <name>       leave a joint out of JointState
  nan                     publish NaN joint positions
  stamp_offset <seconds>  shift header stamps (negative: into the past)
  ok                      back to normal
Each command is acknowledged on stdout as "done <command> <wall time>".
"""
import argparse
import math
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState

from dp_ros.conversions.images import rgb_to_compressed_msg
from dp_ros.robot_interface import load_robot_interface


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("robot_config")
    parser.add_argument("--joint-rate", type=float, default=50.0)
    parser.add_argument("--camera-rate", type=float, default=30.0)
    parser.add_argument("--extra-joint", action="store_true", help="add a joint the robot interface does not list")
    parser.add_argument("--still", action="store_true",
                        help="joint positions held still, as a position-controlled arm is (default: a slow motion of "
                             "its own, 0.4 rad/s at most)")
    args = parser.parse_args()
    robot = load_robot_interface(args.robot_config)
    rclpy.init()
    node = rclpy.create_node("fake_robot_drivers")
    joint_pub = node.create_publisher(JointState, robot.joint_state_topic, qos_profile_sensor_data)
    cam_pubs = {cam.name: node.create_publisher(CompressedImage if cam.type == "compressed" else Image, cam.topic,
                                                qos_profile_sensor_data) for cam in robot.cameras}
    state = {"stalled": set(), "encoding": "rgb8", "size": None, "drop": None, "nan": False, "offset": 0.0}
    lock = threading.Lock()
    start = time.monotonic()

    def stamp():
        t = node.get_clock().now().nanoseconds * 1e-9 + state["offset"]
        sec = math.floor(t)
        return rclpy.time.Time(seconds=sec, nanoseconds=int((t - sec) * 1e9)).to_msg()

    def positions(t):
        t = 0.0 if args.still else t
        return [0.5 * math.sin(0.8 * t + k) for k in range(robot.num_joints)]

    def publish_joints():
        with lock:
            if "joint_states" in state["stalled"] or "all" in state["stalled"]:
                return
            msg = JointState()
            msg.header.stamp = stamp()
            names = list(reversed(robot.joint_names))  # a different order than the robot interface
            values = list(reversed(positions(time.monotonic() - start)))
            if args.extra_joint:
                names.append("unlisted_joint")
                values.append(0.0)
            if state["drop"] in names:
                index = names.index(state["drop"])
                del names[index], values[index]
            if state["nan"]:
                values = [float("nan")] * len(values)
            msg.name, msg.position = names, values
        joint_pub.publish(msg)

    def publish_images():
        with lock:
            for cam in robot.cameras:
                if cam.name in state["stalled"] or "all" in state["stalled"]:
                    continue
                w, h = state["size"] or (cam.width, cam.height)
                rgb = np.zeros((h, w, 3), dtype=np.uint8)
                rgb[..., 0] = int(time.monotonic() * 50) % 255
                if cam.type == "compressed":
                    msg = rgb_to_compressed_msg(rgb, stamp())
                else:
                    msg = Image(height=h, width=w, encoding=state["encoding"])
                    channels = {"mono8": 1, "rgba8": 4, "bgra8": 4, "32FC1": 4}.get(state["encoding"], 3)
                    msg.step = w * channels
                    msg.data = np.zeros(h * w * channels, dtype=np.uint8).tobytes()
                    msg.header.stamp = stamp()
                cam_pubs[cam.name].publish(msg)

    node.create_timer(1.0 / args.joint_rate, publish_joints)
    node.create_timer(1.0 / args.camera_rate, publish_images)

    def read_commands():
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            with lock:
                if words[0] == "stall":
                    state["stalled"].add(words[1])
                elif words[0] == "resume":
                    state["stalled"].discard(words[1])
                elif words[0] == "encoding":
                    state["encoding"] = words[1]
                elif words[0] == "size":
                    state["size"] = (int(words[1]), int(words[2]))
                elif words[0] == "drop_joint":
                    state["drop"] = words[1]
                elif words[0] == "nan":
                    state["nan"] = True
                elif words[0] == "stamp_offset":
                    state["offset"] = float(words[1])
                elif words[0] == "ok":
                    state.update(stalled=set(), encoding="rgb8", size=None, drop=None, nan=False, offset=0.0)
            print("done", " ".join(words), f"{time.time():.6f}", flush=True)

    threading.Thread(target=read_commands, daemon=True).start()
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
