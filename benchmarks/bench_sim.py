"""Cost of the simulated arm against bare MuJoCo, measured in CPU time in one process.

CPU time (time.process_time) rather than wall time, so that other programs on
a busy machine do not distort the figures. Reported:

- physics: CPU seconds per simulated second of ``SimEnvironment.step``
  (trajectory set-points, drive velocity limits, success and contact test)
  against bare ``mujoco.mj_step`` on the same model; the inverse is how many
  times faster than real time the physics thread could run;
- camera: CPU milliseconds per frame at the robot interface's size with dp_ros's
  settings (no multisampling) against MuJoCo's default offscreen settings
  (4x multisampling), and the share of one core at the camera rate;
- expert: offline expert episodes (reset, demonstration, success test) per CPU second.

Usage:
  .venv/bin/python benchmarks/bench_sim.py [--seconds 5] [--frames 100] [--episodes 20] [--output bench_sim.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import dp_ros.sim  # noqa: F401 - chooses the OpenGL backend before mujoco is imported


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated seconds per physics measurement")
    parser.add_argument("--frames", type=int, default=100, help="frames per rendering measurement")
    parser.add_argument("--episodes", type=int, default=20, help="offline expert episodes")
    parser.add_argument("--camera-rate", type=float, default=15.0, help="camera rate for the share of a core")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    return parser.parse_args()


def cpu_seconds(function) -> float:
    start = time.process_time()
    function()
    return time.process_time() - start


def physics(seconds: float) -> dict:
    import mujoco
    import numpy as np

    from dp_ros.sim.environment import SimEnvironment

    env = SimEnvironment(seed=0)
    steps = int(round(seconds / env.timestep))
    env.follow_trajectory(env.time + np.array([seconds / 2, seconds]),
                          np.stack([env.joint_positions() + 0.3, env.joint_positions() - 0.2]))
    ours = cpu_seconds(lambda: env.step(steps)) / seconds
    model, data = env.model, mujoco.MjData(env.model)

    def bare():
        for _ in range(steps):
            mujoco.mj_step(model, data)

    baseline = cpu_seconds(bare) / seconds
    env.close()
    return {"cpu_s_per_sim_s": ours, "bare_mujoco_cpu_s_per_sim_s": baseline, "overhead_ratio": ours / baseline,
            "realtime_headroom": 1.0 / ours}


def camera(frames: int, camera_rate: float) -> dict:
    import mujoco

    from dp_ros.sim.environment import SimEnvironment
    from dp_ros.sim.rendering import CameraRenderer

    env = SimEnvironment(seed=0)
    sizes = env.camera_sizes()
    name = next(iter(sizes))

    def per_frame(model) -> float:
        renderer = CameraRenderer(model, {name: sizes[name]})
        try:
            for _ in range(5):
                renderer.render(env.data.qpos, env.data.mocap_pos, name)
            return cpu_seconds(lambda: [renderer.render(env.data.qpos, env.data.mocap_pos, name)
                                        for _ in range(frames)]) / frames
        finally:
            renderer.close()

    ours = per_frame(env.model)
    default_model = mujoco.MjModel.from_xml_path(str(dp_ros.sim.kinematics.MODEL_PATH))
    default_model.vis.quality.offsamples = 4   # MuJoCo's default
    baseline = per_frame(default_model)
    env.close()
    return {"camera": name, "size": list(sizes[name]), "cpu_ms_per_frame": 1000 * ours,
            "mujoco_default_cpu_ms_per_frame": 1000 * baseline, "speedup": baseline / ours,
            "core_share_at_rate": ours * camera_rate, "camera_rate": camera_rate}


def expert(episodes: int) -> dict:
    from dp_ros.sim.expert import evaluate_expert

    results = {}
    seconds = cpu_seconds(lambda: results.update(evaluation=evaluate_expert(range(episodes))))
    evaluation = results["evaluation"]
    return {"episodes": episodes, "episodes_per_cpu_s": episodes / seconds, "success_rate": evaluation.success_rate,
            "solutions": evaluation.solution_counts()}


def main() -> int:
    import dp_ros.sim.kinematics  # noqa: F401

    args = parse_args()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
    figures = {"machine": machine, "physics": physics(args.seconds), "camera": camera(args.frames, args.camera_rate),
               "expert": expert(args.episodes)}
    p, c, e = figures["physics"], figures["camera"], figures["expert"]
    print(f"machine: {machine}")
    print(f"physics: {p['cpu_s_per_sim_s'] * 1000:.1f} ms CPU per simulated second "
          f"({p['overhead_ratio']:.1f}x bare mj_step's {p['bare_mujoco_cpu_s_per_sim_s'] * 1000:.1f} ms); "
          f"{p['realtime_headroom']:.0f}x faster than real time")
    print(f"camera {c['camera']} {c['size'][0]}x{c['size'][1]}: {c['cpu_ms_per_frame']:.1f} ms CPU per frame, "
          f"{c['speedup']:.1f}x faster than MuJoCo's default offscreen settings ({c['mujoco_default_cpu_ms_per_frame']:.1f} ms); "
          f"{100 * c['core_share_at_rate']:.0f}% of a core at {c['camera_rate']:g} Hz")
    print(f"expert: {e['episodes_per_cpu_s']:.1f} offline episodes per CPU second, success {100 * e['success_rate']:.0f}%, "
          f"solutions {e['solutions']}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
