"""Closed-loop benchmark of the policy node's chunk transitions on the simulated arm.

Every cell runs the demo's own closed-loop evaluation (dp_ros.demo.pipeline.evaluate:
`dp-ros sim` and the policy node as processes over ROS, unseen task instances, each
episode ending at success, collision or the time limit) with one transition
configuration and one added delivery delay (the policy node's benchmark-only
``chunk_delivery_delay``: each chunk is held that long before it is merged, as a
slower model or computer would). Run ``r`` uses the task instances of evaluation
seed ``r``, the same for every configuration. Reported per cell:

- success rate per run, collisions, time to success, the sides of the pillar taken;
- inference latency (compute) and actions dropped as late;
- smoothness at chunk boundaries: the largest joint acceleration and jerk of the
  commands the node published within +-2 policy steps of a chunk's arrival, against
  the same outside those windows (median over episodes of each episode's largest);
- per-chunk inference cost of the guided transition against the same sampler
  without it, measured in this process on a real observation of the simulator.

A chunk's arrival is known from the node's PolicyStatus (``chunks_produced``, at the
20 Hz status rate the demo asks for), so boundary windows are widened by one status
period. Figures are noisy on a shared machine: the 1-minute load average is recorded
with every cell. Results go to ``<demo>/transitions.json`` and ``transitions.md``; an
interrupted run continues where it stopped.

Usage (after `dp-ros demo`):
  .venv/bin/python benchmarks/bench_transitions.py [--runs 3] [--episodes 20] [--delays 0 0.15 0.3]
      [--config blend --config ensemble --config transition=replace,replan_steps=3 --config transition=guided]
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

DEMO_DIR = Path("outputs/demo")
DEFAULT_CONFIGS = ("transition=blend", "transition=ensemble", "transition=replace,replan_steps=3",
                   "transition=guided")
STATUS_PERIOD = 0.05  # the demo's evaluation asks the node for status_rate=20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", default=str(DEMO_DIR), help="output folder of `dp-ros demo` (its checkpoint)")
    parser.add_argument("--config", action="append", default=None,
                        help="policy_node parameters of one configuration, comma-separated name=value "
                             "(repeatable; default: blend, ensemble, replace with replan_steps=3, guided). "
                             "'defaults' = the node's defaults")
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.15, 0.3],
                        help="added chunk delivery delays in seconds (default 0 0.15 0.3)")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell, each on its own task instances")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per run (default 20)")
    parser.add_argument("--sampler", default="sde-dpmsolver++:5", help="sampler:steps (default: the demo's)")
    parser.add_argument("--cost-chunks", type=int, default=30, help="chunks timed per variant for the cost ratio")
    parser.add_argument("--skip-closed-loop", action="store_true", help="only measure the per-chunk cost")
    parser.add_argument("--output", default=None, help="JSON results (default <demo>/transitions.json)")
    return parser.parse_args()


def config_params(config: str) -> list[str]:
    return [] if config == "defaults" else [p.strip() for p in config.split(",") if p.strip()]


# --- watching the node --------------------------------------------------------------------------
class Observer:
    """Records the policy node's commands, its chunk arrivals and the task episode each falls in."""

    def __init__(self, robot):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from dp_ros.conversions.commands import command_message_class, parse_command
        from dp_ros.conversions.joint_state import JointOrder
        from dp_ros.demo.client import POLICY, TASK_STATUS_TOPIC
        from dp_ros_msgs.msg import PolicyStatus, TaskStatus

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("dp_ros_transition_bench", context=self.context)
        order = JointOrder(robot.joint_names)
        self.episode = 0
        self.commands: list[tuple[float, int, np.ndarray]] = []
        self.arrivals: list[tuple[float, int]] = []
        self._chunks = None
        self._lock = threading.Lock()

        def on_command(msg):
            positions = parse_command(msg, order).positions[0]
            with self._lock:
                self.commands.append((time.time(), self.episode, positions))

        def on_status(msg):
            with self._lock:
                if self._chunks is not None and msg.chunks_produced > self._chunks:
                    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                    self.arrivals.append((stamp, self.episode))
                self._chunks = msg.chunks_produced

        def on_task(msg):
            with self._lock:
                self.episode = msg.episode

        self.node.create_subscription(command_message_class(robot.command.type), robot.command.topic, on_command, 100)
        self.node.create_subscription(PolicyStatus, f"{POLICY}/status", on_status, 50)
        self.node.create_subscription(TaskStatus, TASK_STATUS_TOPIC, on_task, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()

    def take(self) -> tuple[list, list]:
        with self._lock:
            commands, arrivals = self.commands, self.arrivals
            self.commands, self.arrivals, self._chunks = [], [], None
        return commands, arrivals

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def boundary_smoothness(commands: list, arrivals: list, command_period: float, policy_period: float) -> list[dict]:
    """Per task episode: the largest |acceleration| and |jerk| of the commands near chunk arrivals and elsewhere.

    Differences use the nominal command period and skip any span with a missing command. The first chunk of
    an episode (nothing to continue yet) is not a boundary.
    """
    episodes = sorted({e for _, e, _ in commands})
    results = []
    for episode in episodes:
        times = np.array([t for t, e, _ in commands if e == episode])
        q = np.array([p for _, e, p in commands if e == episode])
        if len(times) < 8:
            continue
        starts = times[0] + 2 * policy_period
        boundaries = np.array([t for t, e in arrivals if e == episode and t > starts])
        regular = np.diff(times) < 1.5 * command_period
        accel = (q[2:] - 2 * q[1:-1] + q[:-2]) / command_period**2
        accel_ok = regular[1:] & regular[:-1]
        jerk = (accel[1:] - accel[:-1]) / command_period
        jerk_ok = accel_ok[1:] & accel_ok[:-1]
        near = np.zeros(len(times), bool)
        for b in boundaries:
            near |= (times >= b - STATUS_PERIOD - 2 * policy_period) & (times <= b + 2 * policy_period)
        row = {"episode": int(episode), "boundaries": int(boundaries.size)}
        for name, values, ok, at in (("accel", accel, accel_ok, near[1:-1]), ("jerk", jerk, jerk_ok, near[1:-2])):
            magnitude = np.abs(values).max(axis=1)
            for where, mask in (("boundary", ok & at), ("within", ok & ~at)):
                row[f"{name}_{where}"] = float(magnitude[mask].max()) if mask.any() else None
        results.append(row)
    return results


# --- closed loop ----------------------------------------------------------------------------------
def run_cell(demo: Path, robot, checkpoint: Path, observer: Observer, config: str, delay: float, run: int,
             episodes: int, sampler: str) -> dict:
    from tqdm import tqdm

    from dp_ros.demo.pipeline import DemoSettings, RecordingResult, evaluate
    from dp_ros.demo.report import summarize

    params = tuple(config_params(config)) + (f"chunk_delivery_delay={delay}",)
    settings = DemoSettings(output=demo / "transition_bench", eval_episodes=episodes, seed=run, sampler=sampler,
                            policy_params=params)
    observer.take()
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    results = evaluate(settings, robot, checkpoint, tqdm)
    commands, arrivals = observer.take()
    summary = summarize(results, RecordingResult(0, 0))
    smooth = boundary_smoothness(commands, arrivals, 1.0 / robot.command_rate, robot.control_period)
    return {"config": config, "delay": delay, "run": run, "summary": summary, "smoothness": smooth,
            "seconds": time.monotonic() - started, "load_1min": [load_before, os.getloadavg()[0]],
            "episodes": [{"seed": r.seed, "success": r.success, "collided": r.collided, "solution": r.solution,
                          "time": r.episode_time} for r in results]}


def median_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.median(values)) if values else None


def table(cells: list[dict], configs: list[str], delays: list[float]) -> str:
    lines = ["| added delay | configuration | success per run | time to success | left/right | latency p50 | "
             "late actions | accel boundary/within | jerk boundary/within | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for delay in delays:
        for config in configs:
            runs = [c for c in cells if c["config"] == config and c["delay"] == delay]
            if not runs:
                continue
            summaries = [c["summary"] for c in runs]
            wins = sum(s["successes"] for s in summaries)
            total = sum(s["episodes"] for s in summaries)
            per_run = ", ".join(f"{s['successes']}/{s['episodes']}" for s in summaries)
            times = [e["time"] for c in runs for e in c["episodes"] if e["success"]]
            left = sum(s["policy_solutions"]["left"] for s in summaries)
            right = sum(s["policy_solutions"]["right"] for s in summaries)
            latency = np.median([s["inference_latency_ms"]["p50"] for s in summaries
                                 if s["inference_latency_ms"]["p50"] is not None] or [np.nan])
            smooth = [row for c in runs for row in c["smoothness"]]
            accel = f"{median_of(smooth, 'accel_boundary') or 0:.0f} / {median_of(smooth, 'accel_within') or 0:.0f}"
            jerk = f"{median_of(smooth, 'jerk_boundary') or 0:.0f} / {median_of(smooth, 'jerk_within') or 0:.0f}"
            load = np.mean([np.mean(c["load_1min"]) for c in runs])
            lines.append(f"| +{delay * 1000:.0f} ms | {config} | {per_run} (**{100 * wins / max(total, 1):.0f}%**) | "
                         f"{np.mean(times) if times else float('nan'):.2f} s | {left}/{right} | {latency:.0f} ms | "
                         f"{sum(s['actions_dropped_late'] for s in summaries)} | {accel} | {jerk} | {load:.1f} |")
    return "\n".join(lines)


# --- per-chunk cost -------------------------------------------------------------------------------
def chunk_cost(checkpoint: Path, samplers: list[str], chunks: int) -> list[dict]:
    """Median seconds per chunk with and without guidance, alternating, on a real observation of the simulator."""
    import torch

    from dp_ros.core.chunk_guidance import ChunkGuide
    from dp_ros.core.policy_runtime import PolicyRuntime
    from dp_ros.sim.environment import SimEnvironment

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # as the policy node
    env = SimEnvironment(seed=10_001)
    history = []
    for _ in range(2):
        history.append({"observation.state": env.joint_positions().astype(np.float32),
                        "observation.images.front": env.render()})
        env.run(0.1)
    rows = []
    for spec in samplers:
        name, _, steps = spec.partition(":")
        runtime = PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler=name, num_inference_steps=int(steps),
                                     seed=0)
        plan = runtime.predict_chunk(history, guide=ChunkGuide())
        variants = {"unguided": None}
        for key, gradient_steps in (("inpaint", 0), ("gradient", runtime.num_inference_steps - 1)):
            variants[key] = ChunkGuide(steps=np.arange(len(plan)) - 2.0, actions=plan, delay=2.0,
                                       gradient_steps=gradient_steps)
        times = {key: [] for key in variants}
        runtime.warm_up(history)
        for _ in range(chunks):
            for key, guide in variants.items():
                start = time.perf_counter()
                runtime.predict_chunk(history) if guide is None else runtime.predict_chunk(history, guide=guide)
                times[key].append(time.perf_counter() - start)
        base = float(np.median(times["unguided"]))
        rows.append({"sampler": spec, "unguided_ms": 1000 * base,
                     **{f"{k}_ms": 1000 * float(np.median(v)) for k, v in times.items() if k != "unguided"},
                     **{f"{k}_ratio": float(np.median(v)) / base for k, v in times.items() if k != "unguided"}})
    env.close()
    return rows


def main() -> int:
    args = parse_args()
    from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

    demo = Path(args.demo)
    checkpoint = demo / "train" / "checkpoints" / "last" / "pretrained_model"
    output = Path(args.output) if args.output else demo / "transitions.json"
    configs = args.config or list(DEFAULT_CONFIGS)
    results = json.loads(output.read_text()) if output.is_file() else {"cells": []}
    robot = load_robot_interface(default_robot_config_path())
    if not args.skip_closed_loop:
        observer = Observer(robot)
        try:
            for run in range(1, args.runs + 1):
                for delay in args.delays:
                    for config in configs:
                        done = any(c["config"] == config and c["delay"] == delay and c["run"] == run
                                   for c in results["cells"])
                        if done:
                            continue
                        print(f"run {run}, +{delay * 1000:.0f} ms, {config}", flush=True)
                        cell = run_cell(demo, robot, checkpoint, observer, config, delay, run, args.episodes,
                                        args.sampler)
                        results["cells"].append(cell)
                        output.write_text(json.dumps(results, indent=1))
        finally:
            observer.close()
    samplers = [args.sampler] + [f"{s}:10" for s in ("ddpm", "ddim", "dpmsolver++", "unipc", "sde-dpmsolver++")]
    results["cost"] = chunk_cost(checkpoint, samplers, args.cost_chunks)
    results["machine"] = {"cpus": os.cpu_count(), "load_1min_end": os.getloadavg()[0]}
    output.write_text(json.dumps(results, indent=1))
    text = table(results["cells"], configs, args.delays)
    cost = "\n".join(f"| {r['sampler']} | {r['unguided_ms']:.0f} ms | {r['inpaint_ratio']:.2f}x | "
                     f"{r['gradient_ratio']:.2f}x |" for r in results["cost"])
    report = (f"{text}\n\nPer-chunk inference cost (median of {args.cost_chunks}):\n\n"
              f"| sampler | unguided | guided (inpainting) | guided, + clean-sample guidance on every step |\n|---|---|---|---|\n{cost}\n")
    output.with_suffix(".md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
