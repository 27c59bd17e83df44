"""Benchmark the policy node's inference against stock LeRobot, in one run.

1. Time per action chunk of stock LeRobot (DiffusionPolicy.predict_action_chunk
   with the checkpoint's own sampler, DDPM with 100 steps for LeRobot's default),
   of dp_ros's default (--fast), with and without `guided` and the frame-feature
   cache and the channels-last encoder, and of a distilled student (--student) at 1, 2 and 3 consistency steps,
   with ratios against stock (see dp_ros.cli.bench_samplers).
2. Offline action error (MSE) of each against the recorded actions of a dataset,
   so speed is never bought with silent quality loss; with --student and
   --teacher-run also the distillation's cost against the teacher's training.
3. The control loop's period jitter (p50/p99/max of the gaps between published
   commands) while inference runs continuously, with the policy node commanding
   the simulated robot on this same machine; then again with another process
   subscribed to every plan topic (~/plan, ~/chunks, ~/safety_interventions),
   and the difference of the two p99 (publishing the plan must stay within 1 ms).

Needs a trained checkpoint and a dataset of the same robot: by default those of
`dp-ros demo` (outputs/demo). Prints a report and writes it as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dp_ros.core.checkpoint_sampler import DEFAULT_CHOICE

DEMO_DIR = Path("outputs/demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=str(DEMO_DIR / "train" / "checkpoints" / "last" / "pretrained_model"),
                        help="trained LeRobot checkpoint (default: the demo's)")
    parser.add_argument("--dataset", default=str(DEMO_DIR / "dataset"),
                        help="LeRobot dataset with recorded actions for the offline error (default: the demo's)")
    parser.add_argument("--fast", default=DEFAULT_CHOICE.text,
                        help="the fast configuration, sampler:steps (default %(default)s, the policy node's)")
    parser.add_argument("--student", default="", help="a student distilled from the checkpoint (`dp-ros distill`): "
                        "adds its consistency sampler at 1, 2 and 3 steps, and the distillation's cost")
    parser.add_argument("--teacher-run", default="", help="the checkpoint's training run folder (its dp_ros_train.log "
                        "gives the teacher's training cost)")
    parser.add_argument("--teacher-steps", type=int, default=None, help="count the teacher run's steps up to this one "
                        "(the checkpoint's step, when the run went on); default: all")
    parser.add_argument("--chunks", type=int, default=10, help="chunks timed per configuration (default 10)")
    parser.add_argument("--frames", type=int, default=64, help="dataset frames for the offline error (default 64)")
    parser.add_argument("--repeats", type=int, default=4,
                        help="noise draws averaged for the offline error of each sampler (default 4)")
    parser.add_argument("--jitter-seconds", type=float, default=20.0,
                        help="seconds of closed-loop commanding for the jitter figures (default 20; 0 skips)")
    parser.add_argument("--robot-config", default="", help="robot interface YAML of the simulator (default: dp_ros's)")
    parser.add_argument("--output", default=str(DEMO_DIR / "bench.json"), help="where to write the JSON report")


PLAN_TOPICS = ("/policy_node/plan", "/policy_node/chunks", "/policy_node/safety_interventions")
P99_TOLERANCE_MS = 1.0


def plan_subscriber_main() -> None:
    """A process that subscribes to every plan topic of the policy node and, when interrupted, prints how many
    messages of each it received as one JSON line."""
    import signal

    import rclpy
    from trajectory_msgs.msg import JointTrajectory

    from dp_ros_msgs.msg import PolicyChunk, SafetyIntervention

    rclpy.init()
    node = rclpy.create_node("dp_ros_bench_plan_subscriber")
    counts = dict.fromkeys(PLAN_TOPICS, 0)
    for topic, kind in zip(PLAN_TOPICS, (JointTrajectory, PolicyChunk, SafetyIntervention)):
        node.create_subscription(kind, topic, lambda msg, topic=topic: counts.__setitem__(topic, counts[topic] + 1), 50)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    print(json.dumps(counts), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def compare_plan_topics(without: dict, with_subscriber: dict, received: dict) -> dict:
    """The plan topics' effect on the command period: p99 with a subscriber to every plan topic minus p99
    without. Within the tolerance only if the subscriber did receive plans and chunks, and only if both runs
    measured a working command loop (p99 under twice the nominal period: a machine so busy that commands
    stall for whole periods cannot resolve 1 ms)."""
    difference = with_subscriber["p99_ms"] - without["p99_ms"]
    delivered = received.get(PLAN_TOPICS[0], 0) > 0 and received.get(PLAN_TOPICS[1], 0) > 0
    conclusive = all(run["p99_ms"] < 2 * run["nominal_period_ms"] for run in (without, with_subscriber))
    return {"p99_without_ms": without["p99_ms"], "p99_with_subscriber_ms": with_subscriber["p99_ms"],
            "p99_difference_ms": difference, "tolerance_ms": P99_TOLERANCE_MS, "messages_received": received,
            "subscriber_received_plans": delivered, "conclusive": conclusive,
            "within_tolerance": bool(delivered and conclusive and difference <= P99_TOLERANCE_MS)}


def closed_loop_jitter(checkpoint: Path, robot_config: str, sampler: str, steps: int, seconds: float,
                       plan_subscriber: bool = False) -> dict:
    """Run the simulator in another process and the policy node here with inference never idle (and, with
    ``plan_subscriber``, a third process subscribed to every plan topic)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from dp_ros.node_params.policy import POLICY
    from dp_ros.core.rate_loop import prefer_short_gil_waits
    from dp_ros.nodes.policy_node import started_node

    sim_args = [sys.executable, "-m", "dp_ros.cli.main", "sim"] + (["--robot-config", robot_config] if robot_config else [])
    sim = subprocess.Popen(sim_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener = subprocess.Popen([sys.executable, "-c", "from dp_ros.cli.bench import plan_subscriber_main; "
                                 "plan_subscriber_main()"], stdout=subprocess.PIPE, text=True) if plan_subscriber else None
    prefer_short_gil_waits()
    rclpy.init()
    try:
        node = started_node(cli_args=POLICY.ros_arguments(values={
            "checkpoint": str(checkpoint), "robot_config": robot_config, "noise_scheduler": sampler,
            "num_inference_steps": steps, "replan_steps": 1000, "watchdog_timeout": 1.0}))
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        session = node.session
        deadline = time.monotonic() + 60
        while session.controller.stats.commands_published < 10 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        session.command_times.clear()
        chunks_before = session.controller.stats.chunks_produced
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        gaps = np.diff(np.asarray(tuple(session.command_times)))
        chunks = session.controller.stats.chunks_produced - chunks_before
        rate = session.robot.command_rate
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        sim.terminate()
        sim.wait(timeout=20)
        received = _stop_listener(listener)
    if gaps.size < 10:
        raise RuntimeError("the policy node published too few commands against the simulator; "
                           "check `dp-ros sim` and the checkpoint")
    return {"command_rate_hz": rate, "nominal_period_ms": 1000 / rate, "commands": int(gaps.size + 1),
            "chunks_during_measurement": int(chunks), "seconds": seconds,
            "p50_ms": float(np.percentile(gaps, 50) * 1000), "p99_ms": float(np.percentile(gaps, 99) * 1000),
            "max_ms": float(gaps.max() * 1000), **({"plan_messages_received": received} if listener else {})}


def _stop_listener(listener) -> dict:
    if listener is None:
        return {}
    listener.terminate()
    output = listener.communicate(timeout=20)[0].strip().splitlines()
    return json.loads(output[-1]) if output else {}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {device}, torch {torch.__version__}"


def print_jitter(label: str, jitter: dict) -> None:
    print(f"   {label}: nominal {jitter['nominal_period_ms']:.1f} ms: p50 {jitter['p50_ms']:.2f} ms, "
          f"p99 {jitter['p99_ms']:.2f} ms, max {jitter['max_ms']:.2f} ms over {jitter['commands']} commands "
          f"({jitter['chunks_during_measurement']} chunks computed meanwhile)")


def run(args: argparse.Namespace) -> int:
    import torch

    from dp_ros.core.choices import SamplerChoice, SamplerChoiceError
    from dp_ros.core.policy_runtime import CheckpointError, resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
        student = resolve_checkpoint(args.student) if args.student else None
    except CheckpointError as exc:
        print(f"dp-ros bench: {exc}\n  run `make demo` first (it trains the checkpoint this benchmark uses), "
              "or pass --checkpoint and --dataset", file=sys.stderr)
        return 2
    try:
        fast = SamplerChoice.parse(args.fast)
    except SamplerChoiceError as exc:
        print(f"dp-ros bench: --fast: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    report: dict = {"machine": machine(), "load_average": os.getloadavg(), "checkpoint": str(checkpoint),
                    "student": str(student) if student else None, "fast_configuration": args.fast}
    print(f"machine: {report['machine']} (load average {report['load_average'][0]:.1f})\ncheckpoint: {checkpoint}"
          + (f"\nstudent: {student}" if student else ""))
    cells = sampler_table(args, checkpoint, student, (fast.name, fast.steps), report)
    if args.teacher_run or student:
        report["distillation_cost"] = distillation_cost(args.teacher_run, student, args.teacher_steps)
    if args.jitter_seconds > 0:
        print(f"\n3. command period while inference runs continuously ({args.jitter_seconds:g} s against `dp-ros sim`)")
        jitter = closed_loop_jitter(checkpoint, args.robot_config, fast.name, fast.steps, args.jitter_seconds)
        report["jitter"] = jitter
        print_jitter("without plan subscribers", jitter)
        with_subscriber = closed_loop_jitter(checkpoint, args.robot_config, fast.name, fast.steps,
                                             args.jitter_seconds, plan_subscriber=True)
        report["jitter_with_plan_subscriber"] = with_subscriber
        print_jitter("with a subscriber to every plan topic", with_subscriber)
        report["plan_topics"] = compare_plan_topics(jitter, with_subscriber,
                                                    with_subscriber.get("plan_messages_received", {}))
        verdict = report["plan_topics"]
        within = "within" if verdict["within_tolerance"] else "NOT within"
        if not verdict["conclusive"]:
            within = "inconclusive: the command loop stalled for whole periods (a busy machine), not"
        print(f"   plan topics: p99 {verdict['p99_difference_ms']:+.2f} ms with the subscriber "
              f"({within} {P99_TOLERANCE_MS:g} ms; received "
              + ", ".join(f"{n} on {t}" for t, n in verdict["messages_received"].items()) + ")")
    report["cells"] = cells
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"\nreport written to {args.output}")
    return 0


def sampler_table(args, checkpoint: Path, student: Path | None, default: tuple[str, int], report: dict) -> list[dict]:
    """1. latency per chunk and 2. offline MSE of every cell (bench_samplers), ratios against stock LeRobot."""
    from dp_ros.cli.bench_samplers import cells_for, offline_mse, summarise, time_cell
    from dp_ros.core.policy_runtime import PolicyRuntime

    runtimes: dict[Path, object] = {}
    data = None
    results = []
    print(f"\n1-2. time per chunk ({args.chunks} chunks each, after warm-up) and offline MSE "
          f"({args.frames} frames of {args.dataset}, {args.repeats} noise draws)")
    for cell in cells_for(checkpoint, student, default):
        runtime = runtimes.get(cell.checkpoint) or PolicyRuntime.load(cell.checkpoint, device="cpu", seed=0)
        runtimes[cell.checkpoint] = runtime
        if cell.sampler is not None:
            runtime.use_sampler(runtime.prepare_sampler(cell.sampler, cell.steps))
        row = {"cell": cell.label, **summarise(time_cell(runtime, cell, args.chunks))}
        if cell.sampler is not None:
            row["sampled_with"] = runtime.last_chunk_sampler
            if row["sampled_with"] != f"{cell.sampler} x{cell.steps}":
                raise RuntimeError(f"{cell.label}: the chunks were sampled with {row['sampled_with']}")
        if data is None and Path(args.dataset).exists() and args.frames > 0:
            data = offline_data(Path(args.dataset), runtime, args.frames)
        if data is not None and not cell.guided and cell.cache and cell.channels_last:
            errors = offline_mse(runtime, cell, *data, args.repeats)
            row.update(mse=float(np.mean(errors)), mse_std=float(np.std(errors)))
        results.append(row)
        stock = results[0]["median_ms"]
        mse = f"MSE {row['mse']:.5f} ± {row['mse_std']:.5f}" if "mse" in row else ""
        print(f"   {cell.label:<36} {row['median_ms']:8.1f} ms  ({stock / row['median_ms']:5.1f}x stock)  {mse}")
    return results


def offline_data(dataset_root: Path, runtime, frames: int):
    """Batches of recorded observation histories and the demonstrated chunks (with their validity)."""
    from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE
    from dp_ros.training.evaluation import PAD_SUFFIX, frame_indices, load_dataset, policy_batch

    dataset = load_dataset(dataset_root, None, runtime.n_obs_steps, runtime.n_action_steps, runtime.image_keys)
    keys = [STATE_FEATURE, *runtime.image_keys]
    indices = frame_indices(len(dataset), frames)
    items = [[dataset[i] for i in indices[start:start + 16]] for start in range(0, len(indices), 16)]
    demonstrated = np.concatenate([np.stack([it[ACTION_FEATURE].numpy() for it in group]) for group in items])
    valid = np.concatenate([np.stack([~it[ACTION_FEATURE + PAD_SUFFIX].numpy() for it in group]) for group in items])
    return [policy_batch(group, keys) for group in items], demonstrated, valid


def distillation_cost(teacher_run: str | None, student: Path | None, teacher_steps: int | None = None) -> dict:
    """3. the distillation's steps and optimisation minutes against the teacher's training (LeRobot's logs)."""
    from dp_ros.cli.bench_samplers import run_cost

    teacher = run_cost(Path(teacher_run), teacher_steps) if teacher_run else None
    distill = run_cost(student.parents[2]) if student else None
    cost = {"teacher": teacher, "distillation": distill}
    if teacher and distill:
        cost["minutes_ratio"] = distill["update_minutes"] / teacher["update_minutes"]
        print(f"\n   distillation: {distill['steps']} steps, {distill['update_minutes']:.1f} min of updates; teacher: "
              f"{teacher['steps']} steps, {teacher['update_minutes']:.1f} min: {cost['minutes_ratio']:.0%} of the "
              "teacher's training")
    return cost
