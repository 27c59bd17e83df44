"""The demo's report: figures in words (report.md, report.json) and in pictures (PNG)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dp_ros.demo.evaluation import EpisodeResult, results_to_json
from dp_ros.demo.pipeline import RecordingResult


def summarize(results: list[EpisodeResult], recording: RecordingResult) -> dict:
    latencies = np.array([t for r in results for t in r.inference_times]) * 1000
    successes = [r for r in results if r.success]
    return {
        "episodes": len(results),
        "successes": len(successes),
        "success_rate": len(successes) / len(results) if results else 0.0,
        "collisions": sum(r.collided for r in results),
        "policy_solutions": {side: sum(r.solution == side for r in successes) for side in ("left", "right")},
        "expert_solutions": {side: recording.solutions.count(side) for side in ("left", "right")},
        "time_to_success_s": {"mean": float(np.mean([r.episode_time for r in successes])) if successes else None,
                              "median": float(np.median([r.episode_time for r in successes])) if successes else None},
        "inference_latency_ms": {"p50": float(np.percentile(latencies, 50)) if latencies.size else None,
                                 "p95": float(np.percentile(latencies, 95)) if latencies.size else None,
                                 "chunks": int(latencies.size)},
        "command_rate_hz": float(np.median([r.command_rate for r in results if r.command_rate])) if results else 0.0,
        "actions_dropped_late": int(sum(r.actions_dropped_late for r in results)),
        "chunks": int(sum(r.chunks for r in results)),
        "commands_judged": int(sum(r.commands_judged for r in results)),
        "limit_violations": int(sum(r.limit_violations for r in results)),
        "worst_velocity_ratio": float(max((r.worst_velocity_ratio for r in results), default=0.0)),
    }


def write_report(output: Path, settings, recording: RecordingResult, results: list[EpisodeResult],
                 timings: dict, checkpoint: Path, joint_names: list[str], conditions: dict) -> tuple[Path, list[Path]]:
    output.mkdir(parents=True, exist_ok=True)
    summary = summarize(results, recording)
    plots = [plot_tip_paths(output / "tip_paths.png", results),
             plot_latency(output / "latency_histogram.png", results),
             plot_solutions(output / "solutions.png", summary),
             plot_example_trajectory(output / "example_trajectory.png", results, joint_names)]
    plots = [p for p in plots if p is not None]
    report = {"summary": summary, "stage_seconds": timings, "conditions": conditions, "checkpoint": str(checkpoint),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
              "recording": vars(recording), "episodes": results_to_json(results)}
    (output / "report.json").write_text(json.dumps(report, indent=2))
    text = format_summary(summary, timings, recording, conditions)
    transitions = output / "transitions.md"  # written by benchmarks/bench_transitions.py on this checkpoint
    benchmark = ("\n## Chunk transitions (benchmarks/bench_transitions.py)\n\n" + transitions.read_text()
                 if transitions.is_file() else "")
    (output / "report.md").write_text("# dp_ros demo report\n\n```\n" + text + "\n```\n\n"
                                      + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n"
                                      + views_section(results) + benchmark)
    return output / "report.md", plots


def views_section(results: list[EpisodeResult]) -> str:
    """Links to each episode's saved view (what the policy saw, planned and executed)."""
    saved = [r for r in results if r.view]
    if not saved:
        return ""
    links = ", ".join(f"[episode {r.index}{' (success)' if r.success else ''}]({r.view})" for r in saved)
    return ("\n## Saved views\n\nOne Rerun recording per closed-loop episode: camera, joints, every chunk's plan "
            f"from its arrival, latency, late actions, safety interventions. Open one with `dp-ros view "
            f"{saved[0].view}`.\n\n{links}\n")


def format_summary(summary: dict, timings: dict, recording: RecordingResult, conditions: dict) -> str:
    latency = summary["inference_latency_ms"]
    lines = [
        f"closed-loop success: {summary['successes']}/{summary['episodes']} "
        f"({100 * summary['success_rate']:.0f}%), collisions {summary['collisions']}",
        f"solutions taken by the policy (successes): left {summary['policy_solutions']['left']}, "
        f"right {summary['policy_solutions']['right']}",
        f"solutions in the demonstrations: left {summary['expert_solutions']['left']}, "
        f"right {summary['expert_solutions']['right']} ({len(recording.solutions)} demonstrations in "
        f"{recording.attempts} attempts; {recording.episodes} episodes in the dataset"
        + (f", {recording.splits} splits at dropped frames)" if recording.splits else ")"),
    ]
    if summary["time_to_success_s"]["mean"] is not None:
        lines.append(f"time to success: mean {summary['time_to_success_s']['mean']:.2f} s, "
                     f"median {summary['time_to_success_s']['median']:.2f} s")
    if latency["p50"] is not None:
        lines.append(f"inference latency per chunk: p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms "
                     f"({latency['chunks']} chunks seen)")
    lines.append(f"command rate achieved: {summary['command_rate_hz']:.1f} Hz (median over episodes)")
    per_chunk = summary["actions_dropped_late"] / max(1, summary["chunks"])
    lines.append(f"actions dropped as late: {summary['actions_dropped_late']} over {summary['chunks']} chunks "
                 f"({per_chunk:.1f} per chunk: their time had passed when the chunk was ready)")
    lines.append(f"commands that broke a joint limit as the controller executes them: {summary['limit_violations']} "
                 f"of {summary['commands_judged']} (fastest: {summary['worst_velocity_ratio']:.2f}x the velocity limit)")
    lines.append("stage times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
                 + f", in all {sum(timings.values()) / 60:.1f} min (reused stages: the time they took when they ran)")
    loads = ", ".join(f"{k} {v:.1f}" for k, v in conditions["load_average_after"].items())
    lines.append(f"machine: {conditions['cpu_count']} cores, device {conditions['device']}; load average (1 min) "
                 f"{conditions['load_average_before']:.1f} at the start, after {loads}")
    return "\n".join(lines)


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write and close a figure of the report."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_tip_paths(path: Path, results: list[EpisodeResult]) -> Path | None:
    """Top view of the tip's path in every closed-loop episode, coloured by the side taken."""
    from dp_ros.sim.kinematics import SceneGeometry, load_model

    if not results:
        return None
    plt = _pyplot()
    geometry = SceneGeometry.from_model(load_model())
    fig, ax = plt.subplots(figsize=(6, 6))
    colours = {"left": "tab:green", "right": "tab:purple", "": "tab:gray"}
    seen = set()
    for r in results:
        if not r.tip_path:
            continue
        tips = np.asarray(r.tip_path)
        label = (r.solution or "undecided") + ("" if r.success else " (failed)")
        ax.plot(tips[:, 1], tips[:, 0], color=colours.get(r.solution, "tab:gray"),
                linestyle="-" if r.success else ":", alpha=0.8, label=None if label in seen else label)
        seen.add(label)
        ax.plot(r.target[1], r.target[0], "o", color="tab:red", markersize=5)
    ox, oy = geometry.obstacle_xy
    ax.add_patch(plt.Circle((oy, ox), geometry.obstacle_radius, color="tab:blue", alpha=0.5, label="pillar"))
    ax.set_xlabel("y (m, left is positive)")
    ax.set_ylabel("x (m, away from the arm)")
    ax.set_xlim(0.25, -0.25)
    ax.set_ylim(0.0, 0.6)
    ax.set_aspect("equal")
    ax.set_title("Tip paths of the policy in closed loop (red: targets)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)


def plot_latency(path: Path, results: list[EpisodeResult]) -> Path | None:
    latencies = np.array([t for r in results for t in r.inference_times]) * 1000
    if latencies.size == 0:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(latencies, bins=30, color="tab:blue", alpha=0.8)
    for q, style in ((50, "--"), (95, ":")):
        value = np.percentile(latencies, q)
        ax.axvline(value, color="black", linestyle=style, label=f"p{q} = {value:.1f} ms")
    ax.set_xlabel("inference time per action chunk (ms)")
    ax.set_ylabel("chunks")
    ax.set_title("Policy node inference latency in closed loop")
    ax.legend()
    return _save(plt, fig, path)


def plot_solutions(path: Path, summary: dict) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    sides = ["left", "right"]
    expert = np.array([summary["expert_solutions"][s] for s in sides], dtype=float)
    policy = np.array([summary["policy_solutions"][s] for s in sides], dtype=float)
    x = np.arange(2)
    ax.bar(x - 0.2, expert / max(1, expert.sum()), 0.4, label=f"expert demonstrations (n={int(expert.sum())})")
    ax.bar(x + 0.2, policy / max(1, policy.sum()), 0.4, label=f"policy successes (n={int(policy.sum())})")
    ax.set_xticks(x, ["around the left", "around the right"])
    ax.set_ylabel("share of episodes")
    ax.set_ylim(0, 1)
    ax.set_title("Both solutions of the multimodal task")
    ax.legend()
    return _save(plt, fig, path)


def plot_example_trajectory(path: Path, results: list[EpisodeResult], joint_names: list[str]) -> Path | None:
    example = next((r for r in results if r.success and r.joint_positions), None) or next(
        (r for r in results if r.joint_positions), None)
    if example is None:
        return None
    plt = _pyplot()
    positions = np.asarray(example.joint_positions)
    fig, ax = plt.subplots(figsize=(8, 4))
    for j in range(positions.shape[1]):
        ax.plot(example.joint_times, positions[:, j], label=joint_names[j])
    ax.set_xlabel("time since the policy started (s)")
    ax.set_ylabel("joint position (rad)")
    outcome = f"success in {example.episode_time:.2f} s" if example.success else "failed"
    ax.set_title(f"Closed-loop episode {example.index} (seed {example.seed}, {example.solution or 'no side'}, {outcome})")
    ax.legend()
    return _save(plt, fig, path)
