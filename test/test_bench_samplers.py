"""`dp-ros bench`'s sampler table on real (tiny) LeRobot checkpoints: every cell is timed with its own sampler and
the stock cell in stock LeRobot's layout. ROS-free; speed itself is the benchmark's business, not a test's."""
import argparse

import torch

from dp_ros.cli.bench import sampler_table
from dp_ros.cli.bench_samplers import Cell, cells_for, time_cell
from dp_ros.core.checkpoint_sampler import write_checkpoint_sampler
from dp_ros.core.policy_runtime import PolicyRuntime
from lerobot_fixtures import make_checkpoint, tiny_robot

ROBOT = tiny_robot()


def test_each_cell_is_sampled_with_its_own_sampler(tmp_path):
    teacher = make_checkpoint(tmp_path / "teacher" / "pretrained_model", ROBOT, seed=5)
    student = make_checkpoint(tmp_path / "student" / "pretrained_model", ROBOT, seed=6)
    write_checkpoint_sampler(student, "consistency", 3)
    args = argparse.Namespace(chunks=1, frames=0, repeats=1, dataset=str(tmp_path / "none"))
    rows = sampler_table(args, teacher, student, ("ddim", 4), {})
    cells = cells_for(teacher, student, ("ddim", 4))
    assert [row["cell"] for row in rows] == [cell.label for cell in cells]
    sampled = {row["cell"]: row.get("sampled_with") for row in rows}
    assert sampled["stock LeRobot"] is None
    assert sampled["ddim 4"] == sampled["ddim 4, guided"] == "ddim x4"
    assert [sampled[f"student consistency {k}"] for k in (1, 2, 3)] == [f"consistency x{k}" for k in (1, 2, 3)]


def test_the_stock_cell_runs_in_pytorchs_layout_and_the_runtime_gets_its_own_back(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "pretrained_model", ROBOT, seed=7)
    runtime = PolicyRuntime.load(checkpoint, device="cpu", seed=0)
    first_conv = next(m for m in runtime.policy.diffusion.modules() if isinstance(m, torch.nn.Conv2d))
    layouts = []
    predict = runtime.policy.predict_action_chunk

    def spy(batch):
        layouts.append(first_conv.weight.is_contiguous(memory_format=torch.channels_last))
        return predict(batch)

    runtime.policy.predict_action_chunk = spy
    time_cell(runtime, Cell("stock LeRobot", checkpoint, None, 0), chunks=1)
    assert layouts and not any(layouts)
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_the_run_cost_counts_the_steps_lerobot_abbreviates(tmp_path):
    """LeRobot logs step 1000 and on as 1K, 2K (1500 rounds to 2K): those windows count a log interval each."""
    from dp_ros.cli.bench_samplers import logged_windows, run_cost

    lines = [f"INFO ot_train.py:641 step:{s} smpl:1K ep:3 epch:0.1 loss:0.2 grdn:1.0 lr:1.0e-04 updt_s:2.000 data_s:0.03"
             for s in ("500", "1K", "2K")]
    (tmp_path / "dp_ros_train.log").write_text("\n".join(lines) + "\n")
    assert logged_windows((tmp_path / "dp_ros_train.log").read_text()) == [(500, 2.0), (1000, 2.0), (1500, 2.0)]
    assert run_cost(tmp_path) == {"steps": 1500, "update_minutes": 50.0, "seconds_per_step": 2.0}
    assert run_cost(tmp_path, max_step=1000)["steps"] == 1000
