"""Rerun or Foxglove's SDK for dp_ros's view: start-up, cost per chunk, offline use, measured in one run.

1. start-up: a fresh interpreter that imports the SDK and starts its live server (Rerun: gRPC data server and
   the web viewer served from the wheel; Foxglove: the WebSocket server), until it answers.
2. cost per chunk: logging one chunk as the view logs it (3 joints x 16 planned actions and four per-chunk
   figures) with each SDK, against publishing it as ROS messages (~/chunks and ~/plan, dp_ros's choice:
   the node only publishes, the view is another process). Median of many chunks, in this process.
3. offline: whether a viewer comes with the SDK (nothing to download, no account).

Run: python benchmarks/bench_view_sdks.py   (prints a table; numbers are noisy on a shared machine: compare
the ratios).
"""
from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

CHUNKS = 300
JOINTS, ACTIONS = ("shoulder_pan", "shoulder_lift", "elbow"), 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STARTUP = {
    "rerun": """
import time, urllib.request; t = time.perf_counter()
import rerun as rr
s = rr.RecordingStream("bench"); uri = s.serve_grpc(grpc_port={grpc})
rr.serve_web_viewer(web_port={web}, open_browser=False, connect_to=uri)
urllib.request.urlopen("http://127.0.0.1:{web}/").read()
print(time.perf_counter() - t)
""",
    "foxglove": """
import time, socket; t = time.perf_counter()
import foxglove
server = foxglove.start_server(port={web})
socket.create_connection(("127.0.0.1", {web})).close()
print(time.perf_counter() - t)
""",
}


def startup_seconds(sdk: str, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        code = STARTUP[sdk].format(grpc=free_port(), web=free_port())
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def chunk_data(i: int):
    times = 1000.0 + i * 0.4 + 0.1 * np.arange(ACTIONS)
    return times, np.random.default_rng(i).uniform(-1, 1, (ACTIONS, len(JOINTS)))


def rerun_cost() -> float:
    import rerun as rr

    stream = rr.RecordingStream("bench")
    stream.serve_grpc(grpc_port=free_port())
    costs = []
    for i in range(CHUNKS):
        times, actions = chunk_data(i)
        start = time.perf_counter()
        for j, joint in enumerate(JOINTS):
            rr.send_columns(f"joints/{joint}/plan/chunk_{i:04d}", indexes=[rr.TimeColumn("time", timestamp=times)],
                            columns=rr.Scalars.columns(scalars=actions[:, j]), recording=stream)
        stream.set_time("time", timestamp=times[0])
        for name in ("latency", "compute", "dropped_late", "pinned"):
            rr.log(f"chunks/{name}", rr.Scalars([1.0]), recording=stream)
        costs.append(time.perf_counter() - start)
    stream.flush()
    return statistics.median(costs)


def foxglove_cost() -> float:
    import foxglove

    server = foxglove.start_server(port=free_port())
    costs = []
    for i in range(CHUNKS):
        times, actions = chunk_data(i)
        start = time.perf_counter()
        foxglove.log("/policy_node/chunks", {"index": i, "times": times.tolist(), "positions": actions.tolist(),
                                             "latency": 1.0, "compute": 1.0, "dropped_late": 0, "pinned": 0})
        costs.append(time.perf_counter() - start)
    server.stop()
    return statistics.median(costs)


def ros_cost() -> float:
    import rclpy

    from dp_ros.conversions.plan import chunk_message, plan_message
    from dp_ros.core.plan_events import ChunkRecord, PinnedSpan

    rclpy.init()
    node = rclpy.create_node("bench_view_sdks")
    from trajectory_msgs.msg import JointTrajectory

    from dp_ros_msgs.msg import PolicyChunk

    chunks, plans = node.create_publisher(PolicyChunk, "~/chunks", 10), node.create_publisher(JointTrajectory, "~/plan", 10)
    costs = []
    for i in range(CHUNKS):
        times, actions = chunk_data(i)
        record = ChunkRecord(i, times[0], times[2], 0.1, 0.1, actions, 2, PinnedSpan(2, 3, 0.25), "guided", times,
                             actions)
        start = time.perf_counter()
        chunks.publish(chunk_message(record, JOINTS))
        plans.publish(plan_message(JOINTS, times, actions, times[2]))
        costs.append(time.perf_counter() - start)
    node.destroy_node()
    rclpy.shutdown()
    return statistics.median(costs)


def main() -> int:
    ros = ros_cost()
    results = {
        "rerun": {"startup_s": startup_seconds("rerun"), "per_chunk_ms": rerun_cost() * 1000,
                  "offline_viewer": "yes: the web viewer is served from the rerun-sdk wheel"},
        "foxglove": {"startup_s": startup_seconds("foxglove"), "per_chunk_ms": foxglove_cost() * 1000,
                     "offline_viewer": "no viewer in the SDK: the Foxglove app (web app online, or the desktop "
                                       "app, installed separately, with a Foxglove account)"},
        "ros_publish": {"per_chunk_ms": ros * 1000},
    }
    print(f"{'':10} {'start-up':>10} {'per chunk':>12}  offline")
    for name, r in results.items():
        startup = f"{r['startup_s']:.2f} s" if "startup_s" in r else "-"
        print(f"{name:10} {startup:>10} {r['per_chunk_ms']:9.3f} ms  {r.get('offline_viewer', 'node side of dp_ros')}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
