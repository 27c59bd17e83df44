"""Closed-loop benchmark of the policy node's chunk transitions on the simulated arm.

Each cell is one transition configuration (policy_node parameters over the node's
defaults) with one added delivery delay (every chunk arrives that much later than
its measured compute time, as with a slower model or computer: a benchmark-only
setting), run on the unseen task instances `dp-ros demo` evaluates with
``--seed <run>``, the same instances for every configuration. ``--delays heavy`` is
a random, heavy-tailed delay: log-normal around +150 ms (sigma 0.5) with a 1 s
outlier every 20 chunks.

The baselines get the same reserve as ``guided``: ``equal_reserve`` in a
configuration sets ``n_action_steps`` to every action of the horizon after the
observation (as guided chunks hold) and ``replan_steps`` to guided's request
threshold (its replan_steps plus its reserve), so every transition requests the
next chunk with the same time left and none runs out because of its reserve.

Settings are chosen on tuning instances (``--seeds tuning``: closed_loop.tuning_seeds,
disjoint from every evaluation instance) and reported on the evaluation instances
(``--seeds evaluation``, the default). The policy controller
and the simulator run in one process in simulated time (benchmarks/closed_loop.py):
the delays are the measured ones, whatever else the machine runs. Reported per cell:

- success per run, collisions, time to success, the sides of the pillar taken;
- inference compute time, actions dropped as late, plan run-outs (queue underruns);
- smoothness at chunk boundaries: the largest joint acceleration and jerk of the
  commands within +-2 policy steps of a chunk's arrival, against the same elsewhere
  (median over episodes of each episode's largest), and their ratio;
- the reaction after a delay outlier: seconds from its arrival until the arm executes
  an action chosen from a newer observation (median over outliers);
- per-chunk inference cost of the guided transition against the same sampler
  without it, alternating, on a real observation of the simulator.

Results go to ``<demo>/transitions.json`` and ``transitions.md``; an interrupted run
continues where it stopped.

Usage (after `dp-ros demo`):
  .venv/bin/python benchmarks/bench_transitions.py [--runs 3] [--episodes 20] [--delays 0 0.3 heavy]
      [--seeds evaluation|tuning] [--config defaults --config transition=blend,equal_reserve ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from closed_loop import ClosedLoop, DelaySchedule, evaluation_seeds, tuning_seeds  # noqa: E402
from dp_ros.core.checkpoint_sampler import DEFAULT_CHOICE  # noqa: E402
from dp_ros.core.choices import SamplerChoice  # noqa: E402

DEMO_DIR = Path("outputs/demo")
DEFAULT_CONFIGS = ("defaults", "transition=blend,equal_reserve", "transition=ensemble,equal_reserve",
                   "transition=replace,equal_reserve")
SEED_SETS = {"evaluation": evaluation_seeds, "tuning": tuning_seeds}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", default=str(DEMO_DIR), help="output folder of `dp-ros demo` (its checkpoint)")
    parser.add_argument("--config", action="append", default=None,
                        help="policy_node parameters of one configuration over the node's defaults, comma-separated "
                             "name=value (repeatable; 'defaults' = the node's defaults; 'equal_reserve' = the "
                             "n_action_steps and replan_steps that give guided's reserve; 'step_commands=A' = the "
                             "arm commanded by float64_multi_array steps, as through forward_command_controller, "
                             "with an acceleration limit of A rad/s^2 on every joint; default: defaults, and "
                             "blend, ensemble and replace with equal_reserve)")
    parser.add_argument("--delays", nargs="+", default=["0", "0.3", "heavy"],
                        help="added chunk delivery delays: seconds, or 'heavy' (log-normal around 0.15 s with a 1 s "
                             "outlier every 20 chunks); default 0 0.3 heavy")
    parser.add_argument("--seeds", choices=sorted(SEED_SETS), default="evaluation",
                        help="task instances: evaluation (reported) or tuning (for choosing settings; disjoint)")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell, each on its own task instances")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per run (default 20)")
    parser.add_argument("--sampler", default=DEFAULT_CHOICE.text,
                        help="sampler:steps (default %(default)s: the policy node's and the demo's)")
    parser.add_argument("--checkpoint", default=None,
                        help="pretrained_model folder (default <demo>/train/checkpoints/last/pretrained_model)")
    parser.add_argument("--cost-chunks", type=int, default=30,
                        help="chunks timed per variant for the cost ratio (0: not measured)")
    parser.add_argument("--cost-gradient-steps", type=int, default=None,
                        help="clean-sample guidance steps of the guided variant timed with them (default: the node's "
                             "guidance_gradient_steps, or 2 where that is 0)")
    parser.add_argument("--skip-closed-loop", action="store_true", help="only measure the per-chunk cost")
    parser.add_argument("--output", default=None, help="JSON results (default <demo>/transitions.json)")
    return parser.parse_args()


def config_params(config: str, runtime) -> dict:
    """A configuration's policy_node parameters; ``equal_reserve`` expands to guided's reserve (see above)."""
    from dp_ros.node_params.policy import POLICY

    params = {}
    for item in ([] if config == "defaults" else [p.strip() for p in config.split(",") if p.strip()]):
        if item == "defaults" or item.startswith("step_commands="):
            continue  # step_commands: the robot's, see robot_for
        if item == "equal_reserve":
            guided = controller_for("defaults", runtime)
            params["n_action_steps"] = runtime.future_steps
            params["replan_steps"] = guided.replan_steps + runtime.future_steps - runtime.n_action_steps
            continue
        name, _, value = item.partition("=")
        if name not in POLICY:
            raise SystemExit(f"--config {config}: {name} is not a policy_node parameter")
        params[name] = yaml.safe_load(value)
    return params


def robot_for(config: str, robot):
    """The robot a configuration commands: the demo's arm, or (``step_commands=A``) the same arm commanded by
    steps with an acceleration limit of A rad/s^2 on every joint."""
    for item in config.split(","):
        name, _, value = item.strip().partition("=")
        if name == "step_commands":
            from dp_ros.robot_interface import parse_robot_interface, robot_interface_to_dict

            data = robot_interface_to_dict(robot)
            section = data.get("robot", data)
            for joint in section["joints"]:
                joint["acceleration_limit"] = float(value)
            section["command"] = {"topic": section["command"]["topic"], "type": "float64_multi_array"}
            return parse_robot_interface(data, f"the demo's arm with {item.strip()}")
    return robot


def controller_for(config: str, runtime):
    """The controller configuration, and the chunk length it uses (n_action_steps)."""
    from dp_ros.node_params import ParameterError
    from dp_ros.node_params.policy import POLICY, controller_config

    params = config_params(config, runtime)
    try:
        return controller_config(POLICY.convert(params), params.get("n_action_steps") or runtime.n_action_steps)
    except ParameterError as exc:
        raise SystemExit(f"--config {config}: {exc}") from None


# --- smoothness ---------------------------------------------------------------------------------
def boundary_smoothness(times, commands, arrivals, command_period: float, policy_period: float) -> dict:
    """The largest |acceleration| and |jerk| of one episode's commands near chunk arrivals and elsewhere.

    Differences use the command period and skip spans with a missing command. The episode's first chunk
    (nothing to continue yet) is not a boundary.
    """
    times, q = np.asarray(times), np.asarray(commands)
    row = {"boundaries": max(0, len(arrivals) - 1)}
    if len(times) < 8:
        return row
    regular = np.diff(times) < 1.5 * command_period
    accel = (q[2:] - 2 * q[1:-1] + q[:-2]) / command_period**2
    accel_ok = regular[1:] & regular[:-1]
    jerk = (accel[1:] - accel[:-1]) / command_period
    jerk_ok = accel_ok[1:] & accel_ok[:-1]
    near = np.zeros(len(times), bool)
    for arrival in arrivals[1:]:
        near |= np.abs(times - arrival) <= 2 * policy_period + 1e-9
    for name, values, ok, at in (("accel", accel, accel_ok, near[1:-1]), ("jerk", jerk, jerk_ok, near[1:-2])):
        magnitude = np.abs(values).max(axis=1)
        for where, mask in (("boundary", ok & at), ("within", ok & ~at)):
            row[f"{name}_{where}"] = float(magnitude[mask].max()) if mask.any() else None
    return row


# --- closed loop ----------------------------------------------------------------------------------
def delay_label(delay: str) -> str:
    return "heavy-tailed" if delay == "heavy" else f"+{float(delay) * 1000:.0f} ms"


def run_cell(runtime, robot, config: str, delay: str, run: int, episodes: int, seeds: str = "evaluation") -> dict:
    from tqdm import tqdm

    controller_config, robot = controller_for(config, runtime), robot_for(config, robot)
    chunk_length = config_params(config, runtime).get("n_action_steps") or runtime.n_action_steps
    runtime.generator.manual_seed(run)
    default_length, runtime.n_action_steps = runtime.n_action_steps, chunk_length
    loop = ClosedLoop(runtime, robot, controller_config, added_delay=DelaySchedule(delay, seed=run))
    load_before, started = os.getloadavg()[0], time.monotonic()
    results = []
    try:
        with tqdm(SEED_SETS[seeds](run, episodes), desc=f"run {run} {delay_label(delay)} {config}",
                  unit="episode") as bar:
            for seed in bar:
                episode = loop.episode(seed)
                smooth = boundary_smoothness(episode.command_times, episode.commands, episode.arrivals,
                                             1.0 / robot.command_rate, robot.control_period)
                record = {k: v for k, v in asdict(episode).items() if k not in ("command_times", "commands")}
                results.append({**record, **smooth})
                bar.set_postfix(success=f"{sum(r['success'] for r in results)}/{len(results)}")
    finally:
        loop.close()
        runtime.n_action_steps = default_length
    return {"config": config, "delay": delay, "run": run, "seeds": seeds, "episodes": results,
            "seconds": time.monotonic() - started, "load_1min": [load_before, os.getloadavg()[0]]}


def median_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.median(values)) if values else None


def cell_row(runs: list[dict]) -> dict:
    episodes = [e for c in runs for e in c["episodes"]]
    wins = [e for e in episodes if e["success"]]
    compute = np.array([t for e in episodes for t in e["compute_times"]]) * 1000
    return {
        "per_run": [f"{sum(e['success'] for e in c['episodes'])}/{len(c['episodes'])}" for c in runs],
        "success_rate": len(wins) / max(1, len(episodes)),
        "collisions": sum(e["collided"] for e in episodes),
        "time_to_success": float(np.mean([e["success_time"] for e in wins])) if wins else None,
        "left": sum(e["solution"] == "left" for e in wins), "right": sum(e["solution"] == "right" for e in wins),
        "compute_p50_ms": float(np.percentile(compute, 50)) if compute.size else None,
        "compute_p95_ms": float(np.percentile(compute, 95)) if compute.size else None,
        "late_per_chunk": sum(e["actions_dropped_late"] for e in episodes) / max(1, sum(e["chunks"] for e in episodes)),
        "underruns": sum(e["underruns"] for e in episodes),
        "limit_violations": sum(e.get("limit_violations", 0) for e in episodes),
        **{f"{m}_{w}": median_of(episodes, f"{m}_{w}") for m in ("accel", "jerk") for w in ("boundary", "within")},
        "reaction_after_outlier": (float(np.median(reactions)) if (reactions := [
            r for e in episodes for r in e.get("outlier_reactions", [])]) else None),
        "load": float(np.mean([np.mean(c["load_1min"]) for c in runs])),
    }


def ratio(a, b) -> str:
    return "-" if a is None or not b else f"{a / b:.1f}x"


def table(cells: list[dict], configs: list[str], delays: list[str], seeds: str = "evaluation") -> str:
    lines = ["| added delay | configuration | success per run | all | collisions | time to success | left/right | "
             "compute p50/p95 | late per chunk | run-outs | limit violations | accel boundary/within | jerk boundary/within | "
             "reaction after outlier | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f="{:.0f}": "-" if v is None else f.format(v)  # noqa: E731
    for delay in delays:
        for config in configs:
            runs = sorted((c for c in cells if c["config"] == config and str(c["delay"]) == delay
                           and c.get("seeds", "evaluation") == seeds), key=lambda c: c["run"])
            if not runs:
                continue
            r = cell_row(runs)
            lines.append(
                f"| {delay_label(delay)} | {config} | {', '.join(r['per_run'])} | **{100 * r['success_rate']:.0f}%** | "
                f"{r['collisions']} | {fmt(r['time_to_success'], '{:.2f} s')} | {r['left']}/{r['right']} | "
                f"{fmt(r['compute_p50_ms'])}/{fmt(r['compute_p95_ms'])} ms | {r['late_per_chunk']:.1f} | {r['underruns']} | "
                f"{r['limit_violations']} | "
                f"{fmt(r['accel_boundary'])} / {fmt(r['accel_within'])} ({ratio(r['accel_boundary'], r['accel_within'])}) | "
                f"{fmt(r['jerk_boundary'])} / {fmt(r['jerk_within'])} ({ratio(r['jerk_boundary'], r['jerk_within'])}) | "
                f"{fmt(r['reaction_after_outlier'], '{:.2f} s')} | {r['load']:.1f} |")
    return "\n".join(lines)


# --- per-chunk cost -------------------------------------------------------------------------------
def chunk_cost(runtime, chunks: int, gradient_steps: int) -> dict:
    """Median seconds per chunk with and without guidance, alternating, on a real observation of the simulator."""
    from dp_ros.core.chunk_guidance import ChunkGuide
    from dp_ros.node_params.policy import POLICY
    from dp_ros.sim.environment import SimEnvironment

    env = SimEnvironment(seed=10_001)
    history = []
    for _ in range(runtime.n_obs_steps):
        history.append({"observation.state": env.joint_positions().astype(np.float32),
                        "observation.images.front": env.render()})
        env.run(0.1)
    env.close()
    plan = runtime.predict_chunk(history, guide=ChunkGuide())
    steps = np.arange(len(plan)) - 2.0
    variants = {"unguided": None, "guided": ChunkGuide(steps, plan, delay=2.0),
                "guided_gradient": ChunkGuide(steps, plan, delay=2.0, gradient_steps=gradient_steps,
                                              max_weight=POLICY["guidance_max_weight"].default)}
    times = {key: [] for key in variants}
    runtime.warm_up(history)
    for _ in range(chunks):
        for key, guide in variants.items():
            start = time.thread_time()  # CPU time: what the chunk costs, whatever else the machine runs
            runtime.predict_chunk(history) if guide is None else runtime.predict_chunk(history, guide=guide)
            times[key].append(time.thread_time() - start)
    base = float(np.median(times["unguided"]))
    return {"chunks": chunks, **{f"{k}_ms": 1000 * float(np.median(v)) for k, v in times.items()},
            **{f"{k}_ratio": float(np.median(v)) / base for k, v in times.items() if k != "unguided"}}


def main() -> int:
    args = parse_args()
    import torch

    from dp_ros.core.policy_runtime import PolicyRuntime
    from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # as the policy node does
    demo = Path(args.demo)
    output = Path(args.output) if args.output else demo / "transitions.json"
    configs = args.config or list(DEFAULT_CONFIGS)
    results = json.loads(output.read_text()) if output.is_file() else {"cells": []}
    robot = load_robot_interface(default_robot_config_path())
    choice = SamplerChoice.parse(args.sampler)
    checkpoint = Path(args.checkpoint) if args.checkpoint else demo / "train" / "checkpoints" / "last" / "pretrained_model"
    runtime = PolicyRuntime.load(checkpoint, device="cpu", noise_scheduler=choice.name,
                                 num_inference_steps=choice.steps, seed=0)
    runtime.warm_up()
    if not args.skip_closed_loop:
        for run in range(1, args.runs + 1):
            for delay in args.delays:
                for config in configs:
                    if any(c["config"] == config and str(c["delay"]) == delay and c["run"] == run
                           and c.get("seeds", "evaluation") == args.seeds for c in results["cells"]):
                        continue
                    results["cells"].append(run_cell(runtime, robot, config, delay, run, args.episodes, args.seeds))
                    output.write_text(json.dumps(results, indent=1))
    gradient_steps = args.cost_gradient_steps
    if gradient_steps is None:
        gradient_steps = controller_for("defaults", runtime).guidance_gradient_steps or 2
    if args.cost_chunks > 0:
        results["cost"] = chunk_cost(runtime, args.cost_chunks, gradient_steps)
    results["machine"] = {"cpus": os.cpu_count(), "load_1min_end": os.getloadavg()[0], "sampler": args.sampler}
    output.write_text(json.dumps(results, indent=1))
    cost = results.get("cost")
    report = f"{table(results['cells'], configs, args.delays, args.seeds)}\n\n" + ("" if cost is None else (
              f"Per-chunk inference cost ({args.sampler}, median CPU time of {args.cost_chunks}, alternating): unguided "
              f"{cost['unguided_ms']:.0f} ms; guided {cost['guided_ms']:.0f} ms (**{cost['guided_ratio']:.2f}x**); "
              f"guided with clean-sample guidance on {gradient_steps} steps {cost['guided_gradient_ms']:.0f} ms "
              f"({cost['guided_gradient_ratio']:.2f}x)\n"))
    output.with_suffix(".md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
