"""benchmarks/bench_demo_quality.py end to end on a tiny configuration: two training runs' worth of
checkpoints (real LeRobot training), each run in the closed loop with the simulated arm on two task
instances, the raw weights beside the average, the table, the JSON and the plot (no success rate is
asserted: a network this small and this short cannot reach one)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from lerobot_fixtures import make_dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.mark.training
@pytest.mark.slow
def test_quality_benchmark_runs_end_to_end(tmp_path, monkeypatch):
    import bench_demo_quality

    from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "osmesa"))
    robot = load_robot_interface(default_robot_config_path())
    dataset = make_dataset(tmp_path / "dataset", robot, episodes=2, frames=24, repo_id="local/dp_ros_demo")
    output = tmp_path / "quality"
    args = ["--dataset", str(dataset), "--output", str(output), "--config", "ema-short", "--tiny",
            "--set", "steps=2", "--checkpoints", "2", "--episodes", "2", "--raw", "--sampler", "ddim:2",
            "--cost-ratio", "ema-short=0.5", "--reference", "an earlier run=3:50"]
    assert bench_demo_quality.main(args) == 0

    results = json.loads((output / "quality.json").read_text())
    points = sorted(results["points"].values(), key=lambda p: (p["curve"], p["step"]))
    assert [(p["curve"], p["step"]) for p in points] == [
        ("ema-short", 1), ("ema-short", 2), ("ema-short (raw weights)", 1), ("ema-short (raw weights)", 2)]
    for point in points:
        (run,) = point["runs"]
        assert run["run"] == bench_demo_quality.TUNING_RUNS[0] and run["episodes"] == 2
        assert 0 <= run["successes"] <= 2
    record = results["runs"]["ema-short"]
    assert record["finished"] and [c["step"] for c in record["checkpoints"]] == [1, 2]
    assert record["overrides"]["ema.enable"] is True and record["overrides"]["policy.optimizer_lr"] == 1e-3
    assert bench_demo_quality.quiet_minutes("ema-short (raw weights)", 100, bench_demo_quality.parse_args(args)) == \
        pytest.approx(100 * bench_demo_quality.QUIET_STEP_SECONDS * 0.5 / 60)
    table = (output / "quality.md").read_text()
    assert "| ema-short (raw weights) | 2 |" in table
    assert (output / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second call measures nothing again; the evaluation instances are other task instances
    assert bench_demo_quality.main(args + ["--skip-training"]) == 0
    assert len(json.loads((output / "quality.json").read_text())["points"]) == 4
    assert not set(bench_demo_quality.TUNING_RUNS) & set(bench_demo_quality.EVALUATION_RUNS)
