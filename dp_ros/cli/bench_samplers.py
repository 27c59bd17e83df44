"""`dp-ros bench`'s sampler table: per-chunk latency and offline error of each way to sample a chunk.

Cells: stock LeRobot (its ``predict_action_chunk`` with the checkpoint's own
scheduler, DDPM-100 for LeRobot's default), dp_ros's default for a checkpoint
without a sampler of its own (``sde-dpmsolver++`` with 5 steps), and a distilled
student's ``consistency`` sampler at 1, 2 and 3 steps (3: what a student records); dp_ros's cells unguided and
``guided`` (the node's default transition: a plan to continue, 3 actions pinned,
clean-sample guidance on 2 steps). Latency is timed on a sliding stream of
distinct frames (each chunk brings one new frame per camera, as in operation),
so the frame-feature cache helps exactly as much as on the robot; one cell
repeats the default without the cache, one with the image encoder in PyTorch's
default layout instead of channels-last (stock LeRobot runs in that layout). Offline error: MSE against the recorded
action chunks, averaged over noise draws. ROS-free.
"""
from __future__ import annotations

import re
import statistics
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dp_ros.node_params.policy import POLICY


@dataclass(frozen=True)
class Cell:
    label: str
    checkpoint: Path
    sampler: str | None
    """None: stock LeRobot."""
    steps: int
    guided: bool = False
    cache: bool = True
    channels_last: bool = True


def cells_for(teacher: Path, student: Path | None, default: tuple[str, int], student_steps=(1, 2, 3)) -> list[Cell]:
    name, steps = default
    cells = [Cell("stock LeRobot", teacher, None, 0),
             Cell(f"{name} {steps}", teacher, name, steps),
             Cell(f"{name} {steps}, guided", teacher, name, steps, guided=True),
             Cell(f"{name} {steps}, no frame cache", teacher, name, steps, cache=False),
             Cell(f"{name} {steps}, encoder not channels-last", teacher, name, steps, channels_last=False)]
    for k in student_steps if student else ():
        cells += [Cell(f"student consistency {k}", student, "consistency", k),
                  Cell(f"student consistency {k}, guided", student, "consistency", k, guided=True)]
    return cells


def frame_stream(runtime, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        obs = {"observation.state": rng.uniform(-0.5, 0.5, runtime.state_dim).astype(np.float32)}
        for key in runtime.image_keys:
            c, h, w = runtime.image_shape(key)
            obs[key] = rng.integers(0, 255, (h, w, c), dtype=np.uint8)
        frames.append(obs)
    return frames


def time_cell(runtime, cell: Cell, chunks: int) -> list[float]:
    """Seconds per chunk, after one warm-up chunk."""
    stream = frame_stream(runtime, chunks + runtime.n_obs_steps + 1)
    if cell.sampler is None:
        with pytorch_layout(runtime):
            return _time_stock(runtime, stream, chunks)
    cache, runtime.feature_cache = runtime.feature_cache, (runtime.feature_cache if cell.cache else None)
    try:
        with nullcontext() if cell.channels_last else pytorch_layout(runtime):
            return _time_chunks(runtime, cell, stream, chunks)
    finally:
        runtime.feature_cache = cache


def _time_chunks(runtime, cell: Cell, stream: list[dict], chunks: int) -> list[float]:
    """dp_ros's runtime on the sliding stream (``guided``: each chunk continues the previous one)."""
    import torch

    from dp_ros.core.chunk_guidance import ChunkGuide

    n = runtime.n_obs_steps
    plan = runtime.predict_chunk(stream[:n], guide=ChunkGuide() if cell.guided else None)
    times = []
    for i in range(1, chunks + 1):
        guide = None
        if cell.guided:  # the previous chunk, one policy step old, is the plan to continue
            guide = ChunkGuide(np.arange(len(plan), dtype=float) - 1.0, plan, delay=3.0,
                               gradient_steps=POLICY["guidance_gradient_steps"].default,
                               max_weight=POLICY["guidance_max_weight"].default)
        start = time.perf_counter()
        with torch.inference_mode():
            out = runtime.predict_chunk(stream[i:i + n], guide=guide)
        times.append(time.perf_counter() - start)
        plan = out if cell.guided else plan
    return times


@contextmanager
def pytorch_layout(runtime):
    """Stock LeRobot's encoder layout (PyTorch's default) for the time of a stock cell."""
    runtime.channels_last_encoder(False)
    try:
        yield
    finally:
        runtime.channels_last_encoder()


def _time_stock(runtime, stream: list[dict], chunks: int) -> list[float]:
    """LeRobot's predict_action_chunk on the same loaded policy and processors (the runtime's own path unused)."""
    import torch

    policy, pre = runtime.policy, runtime.preprocessor
    times = []
    for i in range(chunks + 1):
        batch = runtime.history_to_batch(stream[i:i + runtime.n_obs_steps])
        start = time.perf_counter()
        with torch.inference_mode():
            policy.predict_action_chunk(pre(dict(batch)))
        if i:
            times.append(time.perf_counter() - start)
    return times


def offline_mse(runtime, cell: Cell, batches, demonstrated: np.ndarray, valid: np.ndarray, repeats: int) -> list[float]:
    """MSE against the recorded chunks for each noise draw (unguided: a plan needs a closed loop)."""
    import torch

    from dp_ros.training.evaluation import action_errors

    errors = []
    for repeat in range(repeats):
        torch.manual_seed(repeat)
        runtime.generator.manual_seed(repeat)
        predicted = []
        for batch in batches:
            if cell.sampler is None:
                with torch.inference_mode(), pytorch_layout(runtime):
                    chunk = runtime.policy.predict_action_chunk(runtime.preprocessor(dict(batch)))
                predicted.append(runtime.postprocessor(chunk).numpy()[:, :runtime.n_action_steps])
            else:
                predicted.append(runtime.predict_from_batch(batch))
        errors.append(action_errors(np.concatenate(predicted), demonstrated, valid).mse)
    return errors


def summarise(times: list[float]) -> dict:
    return {"median_ms": statistics.median(times) * 1000, "p90_ms": float(np.percentile(times, 90)) * 1000,
            "chunks": len(times)}


UPDATE_SECONDS = re.compile(r"step:([0-9.]+[KMB]?) .*?updt_s:([0-9.]+)")


def logged_windows(text: str) -> list[tuple[int, float]]:
    """(step, mean update seconds) of each of LeRobot's log lines. From step 1000 on LeRobot abbreviates the
    step ("step:1K", "step:2K" for 1500): such a step is the previous one plus the log interval (the smallest
    step between two exact ones)."""
    found = [(None if step[-1].isalpha() else int(step), float(update)) for step, update in UPDATE_SECONDS.findall(text)]
    exact = [step for step, _ in found if step is not None]
    gaps = [b - a for a, b in zip(exact, exact[1:]) if b > a]
    interval = min(gaps) if gaps else (exact[0] if exact else 0)
    windows, previous = [], 0
    for step, update in found:
        step = step if step is not None else previous + interval
        windows.append((step, update))
        previous = step
    return windows


def run_cost(run_dir: Path, max_step: int | None = None) -> dict | None:
    """Steps and optimisation minutes of a training (or distillation) run, from LeRobot's log lines in its log.

    LeRobot logs the mean update time of each log window (``updt_s``); steps x that mean is the compute
    the run took on its machine at the time (loaded or not: say so beside the figure). A resumed run's log
    goes on from the step it resumed at.
    """
    log = Path(run_dir) / "dp_ros_train.log"
    if not log.is_file():
        return None
    windows = [(s, u) for s, u in logged_windows(log.read_text(errors="replace")) if max_step is None or s <= max_step]
    if not windows:
        return None
    seconds, previous = 0.0, 0
    for step, update in windows:
        seconds += max(0, step - previous) * update
        previous = max(previous, step)
    return {"steps": previous, "update_minutes": seconds / 60, "seconds_per_step": seconds / previous}
