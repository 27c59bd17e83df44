"""Benchmark the policy node's inference against stock LeRobot, in one run.

1. Time per action chunk of stock LeRobot (DiffusionPolicy.select_action with
   the checkpoint's own sampler, DDPM with 100 steps for LeRobot's default)
   and of dp_ros's runtime in its recommended fast configuration, and the ratio.
2. Offline action error of both against the recorded actions of a dataset, so
   speed is never bought with silent quality loss.
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
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEMO_DIR = Path("outputs/demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=str(DEMO_DIR / "train" / "checkpoints" / "last" / "pretrained_model"),
                        help="trained LeRobot checkpoint (default: the demo's)")
    parser.add_argument("--dataset", default=str(DEMO_DIR / "dataset"),
                        help="LeRobot dataset with recorded actions for the offline error (default: the demo's)")
    parser.add_argument("--fast", default="sde-dpmsolver++:5",
                        help="the fast configuration, sampler:steps (default sde-dpmsolver++:5)")
    parser.add_argument("--chunks", type=int, default=10, help="chunks timed per configuration (default 10)")
    parser.add_argument("--frames", type=int, default=64, help="dataset frames for the offline error (default 64)")
    parser.add_argument("--repeats", type=int, default=4,
                        help="noise draws averaged for the offline error of each sampler (default 4)")
    parser.add_argument("--jitter-seconds", type=float, default=20.0,
                        help="seconds of closed-loop commanding for the jitter figures (default 20; 0 skips)")
    parser.add_argument("--robot-config", default="", help="robot interface YAML of the simulator (default: dp_ros's)")
    parser.add_argument("--output", default=str(DEMO_DIR / "bench.json"), help="where to write the JSON report")


def time_stock_chunks(policy, pre, observation: dict, chunks: int) -> list[float]:
    """Seconds per chunk of LeRobot's select_action: each call after reset() computes a full chunk."""
    import torch

    batch = pre({k: torch.as_tensor(v) for k, v in observation.items()})
    times = []
    for i in range(chunks + 1):
        policy.reset()
        start = time.perf_counter()
        policy.select_action(dict(batch))
        if i:  # the first call warms up
            times.append(time.perf_counter() - start)
    return times


def time_runtime_chunks(runtime, history: list[dict], chunks: int) -> list[float]:
    runtime.predict_chunk(history)
    times = []
    for _ in range(chunks):
        start = time.perf_counter()
        runtime.predict_chunk(history)
        times.append(time.perf_counter() - start)
    return times


def offline_errors(checkpoint: Path, dataset_root: Path, runtime, stock, frames: int, repeats: int) -> dict:
    """MSE of stock LeRobot and of the fast runtime against the dataset's recorded action chunks.

    Both samplers are stochastic and the task is multimodal (a sample may choose the other side than
    the demonstration), so each is averaged over ``repeats`` draws of the noise, with their spread.
    """
    import torch

    from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE
    from dp_ros.training.evaluation import PAD_SUFFIX, action_errors, frame_indices, load_dataset, policy_batch

    policy, pre, post = stock
    dataset = load_dataset(dataset_root, None, runtime.n_obs_steps, runtime.n_action_steps, runtime.image_keys)
    keys = [STATE_FEATURE, *runtime.image_keys]
    indices = frame_indices(len(dataset), frames)
    batches = [[dataset[i] for i in indices[start:start + 16]] for start in range(0, len(indices), 16)]
    demonstrated = np.concatenate([np.stack([item[ACTION_FEATURE].numpy() for item in items]) for items in batches])
    valid = np.concatenate([np.stack([~item[ACTION_FEATURE + PAD_SUFFIX].numpy() for item in items])
                            for items in batches])
    stock_mse, fast_mse = [], []
    for repeat in range(repeats):
        torch.manual_seed(repeat)
        runtime.generator.manual_seed(repeat)
        fast, base = [], []
        for items in batches:
            batch = policy_batch(items, keys)
            fast.append(runtime.predict_from_batch(batch))
            policy.reset()
            with torch.inference_mode():
                base.append(post(policy.predict_action_chunk(pre(dict(batch)))).numpy())
        stock_mse.append(action_errors(np.concatenate(base), demonstrated, valid).mse)
        fast_mse.append(action_errors(np.concatenate(fast), demonstrated, valid).mse)
    return {"frames": len(indices), "repeats": repeats,
            "stock_mse": float(np.mean(stock_mse)), "stock_mse_std": float(np.std(stock_mse)),
            "fast_mse": float(np.mean(fast_mse)), "fast_mse_std": float(np.std(fast_mse))}


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
    from dp_ros.nodes.policy_node import PolicyNode

    sim_args = [sys.executable, "-m", "dp_ros.cli.main", "sim"] + (["--robot-config", robot_config] if robot_config else [])
    sim = subprocess.Popen(sim_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener = subprocess.Popen([sys.executable, "-c", "from dp_ros.cli.bench import plan_subscriber_main; "
                                 "plan_subscriber_main()"], stdout=subprocess.PIPE, text=True) if plan_subscriber else None
    prefer_short_gil_waits()
    rclpy.init()
    try:
        node = PolicyNode(cli_args=POLICY.ros_arguments(values={
            "checkpoint": str(checkpoint), "robot_config": robot_config, "noise_scheduler": sampler,
            "num_inference_steps": steps, "replan_steps": 1000, "watchdog_timeout": 1.0}))
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        deadline = time.monotonic() + 60
        while node.controller.stats.commands_published < 10 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        node.forget_command_times()
        chunks_before = node.controller.stats.chunks_produced
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        gaps = np.diff(np.asarray(node.command_times()))
        chunks = node.controller.stats.chunks_produced - chunks_before
        rate = node.robot.command_rate
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

    from dp_ros.core.policy_runtime import CheckpointError, PolicyRuntime, resolve_checkpoint
    from dp_ros.training.evaluation import SamplerChoice

    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        print(f"dp-ros bench: {exc}\n  run `make demo` first (it trains the checkpoint this benchmark uses), "
              "or pass --checkpoint and --dataset", file=sys.stderr)
        return 2
    fast = SamplerChoice.parse(args.fast)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    report: dict = {"machine": machine(), "checkpoint": str(checkpoint), "fast_configuration": args.fast}
    print(f"machine: {report['machine']}\ncheckpoint: {checkpoint}")

    runtime = PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler=fast.name, num_inference_steps=fast.steps,
                                 seed=0)
    # Stock LeRobot is the same loaded DiffusionPolicy and processors, driven through LeRobot's own
    # select_action / predict_action_chunk with the scheduler it was saved with (the runtime never
    # touches policy.diffusion.noise_scheduler).
    stock = (runtime.policy, runtime.preprocessor, runtime.postprocessor)
    config = runtime.config
    history = [runtime.neutral_observation() for _ in range(runtime.n_obs_steps)]
    single = {k: v for k, v in history[-1].items()}
    stock_observation = {k: (v.astype(np.float32) if k == "observation.state"
                             else np.transpose(v, (2, 0, 1)).astype(np.float32) / 255.0) for k, v in single.items()}
    stock_label = f"{config.noise_scheduler_type.lower()}:{config.num_inference_steps or config.num_train_timesteps}"
    print(f"\n1. time per chunk ({args.chunks} chunks each, after warm-up)")
    stock_times = time_stock_chunks(stock[0], stock[1], stock_observation, args.chunks)
    fast_times = time_runtime_chunks(runtime, history, args.chunks)
    stock_ms, fast_ms = statistics.median(stock_times) * 1000, statistics.median(fast_times) * 1000
    report["chunk_time"] = {"stock": stock_label, "stock_ms": stock_ms, "fast": runtime.noise_scheduler + ":" +
                            str(runtime.num_inference_steps), "fast_ms": fast_ms, "speedup": stock_ms / fast_ms}
    print(f"   stock LeRobot select_action ({stock_label}): {stock_ms:8.1f} ms")
    print(f"   dp_ros runtime ({args.fast}):{'':>10}{fast_ms:8.1f} ms")
    print(f"   speed-up: {stock_ms / fast_ms:.1f}x")

    if Path(args.dataset).exists() and args.frames > 0:
        print(f"\n2. offline action error on {args.dataset} ({args.frames} frames, {args.repeats} noise draws each)")
        errors = offline_errors(checkpoint, Path(args.dataset), runtime, stock, args.frames, args.repeats)
        errors["fast_relative_to_stock"] = errors["fast_mse"] / errors["stock_mse"]
        report["offline_error"] = errors
        print(f"   MSE stock {stock_label}: {errors['stock_mse']:.5f} ± {errors['stock_mse_std']:.5f}   "
              f"MSE {args.fast}: {errors['fast_mse']:.5f} ± {errors['fast_mse_std']:.5f}   "
              f"ratio {errors['fast_relative_to_stock']:.2f}")
    else:
        print(f"\n2. offline action error skipped: no dataset at {args.dataset}")

    if args.jitter_seconds > 0:
        print(f"\n3. command period while inference runs continuously ({args.jitter_seconds:g} s against `dp-ros sim`)")
        jitter = closed_loop_jitter(checkpoint, args.robot_config, runtime.noise_scheduler,
                                    runtime.num_inference_steps, args.jitter_seconds)
        report["jitter"] = jitter
        print_jitter("without plan subscribers", jitter)
        with_subscriber = closed_loop_jitter(checkpoint, args.robot_config, runtime.noise_scheduler,
                                             runtime.num_inference_steps, args.jitter_seconds, plan_subscriber=True)
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
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"\nreport written to {args.output}")
    return 0
