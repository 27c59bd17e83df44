"""CPU time of one training step of the demo's policy, and of variants of it, in one process.

Builds LeRobot's Diffusion Policy with the demo's options (dp_ros.demo.pipeline.training_overrides)
on batches of a recorded demo dataset, then times forward, backward and the optimizer step for each
variant in alternation, as CPU time of this process's one thread (so other programs on a busy machine
change no ratio):

- demo: the demo's options;
- ema: the same, plus one update of the weight average (dp_ros.training.weight_average);
- channels-last: the model and the images in channels-last memory format;
- obs1: one observation per sample (``n_obs_steps: 1``): half the images;
- compile: ``torch.compile`` of the model (its compilation time reported apart; the steps after it timed);
- distill: one step of ``dp-ros distill``'s default loss (the teacher's DDIM trajectory to its end, the
  teacher's image encoder kept) with a copy of the model as the teacher;
- distill-lcm: the same with ``target: target-network`` (LCM's loss: teacher, target and student each encode
  the images).

A distillation's cost against the teacher's training is then (distillation steps x distill) / (training
steps x demo), both measured in the same process.

Usage: .venv/bin/python benchmarks/bench_train_step.py --dataset outputs/demo/dataset [--steps 6]
    [--variants demo ema channels-last obs1 compile]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

VARIANTS = ("demo", "ema", "channels-last", "obs1", "compile", "distill", "distill-lcm")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="a dataset recorded by `dp-ros demo`")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant (after one untimed)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    return parser.parse_args()


def demo_policy_config(n_obs_steps: int):
    """The demo's DiffusionConfig (its training overrides' policy options)."""
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    from dp_ros.demo.pipeline import DemoSettings, training_overrides
    from dp_ros.training.configuration_training import RECIPE

    options = {k.split(".", 1)[1]: v for k, v in training_overrides(DemoSettings(), "").items()
               if k.startswith("policy.") and k != "policy.device"}
    options.update(n_obs_steps=n_obs_steps, device="cpu")
    return DiffusionConfig(**{**RECIPE, **options})


class Trainer:
    """One variant: its policy, optimizer, batches and step."""

    def __init__(self, name: str, dataset_root: Path, batch_size: int) -> None:
        import torch
        from lerobot.datasets.factory import resolve_delta_timestamps
        from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
        from lerobot.policies.factory import make_policy, make_pre_post_processors

        self.name = name
        cfg = demo_policy_config(1 if name == "obs1" else 2)
        meta = LeRobotDatasetMetadata("local/dp_ros_demo", root=dataset_root)
        dataset = LeRobotDataset("local/dp_ros_demo", root=dataset_root,
                                 delta_timestamps=resolve_delta_timestamps(cfg, meta))
        self.policy = make_policy(cfg, ds_meta=meta)
        preprocess, _ = make_pre_post_processors(cfg, dataset_stats=meta.stats)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0,
                                             generator=torch.Generator().manual_seed(0))
        self.batches = []
        for batch, _ in zip(loader, range(2)):
            for key in meta.camera_keys:
                batch[key] = batch[key].to(torch.float32) / 255.0 if batch[key].dtype == torch.uint8 else batch[key]
            self.batches.append(preprocess(batch))
        self.average = None
        if name == "ema":
            from dp_ros.training.weight_average import EmaSettings, WeightAverage

            self.average = WeightAverage(EmaSettings())
            self.average.start(self.policy)
        if name == "channels-last":
            self.policy = self.policy.to(memory_format=torch.channels_last)
            for batch in self.batches:
                for key in meta.camera_keys:
                    batch[key] = batch[key].contiguous(memory_format=torch.channels_last) \
                        if batch[key].ndim == 4 else batch[key]
        self.forward = self.policy.forward
        if name.startswith("distill"):
            self.forward = self._distillation(name)
        self.optimizer = torch.optim.AdamW([p for p in self.policy.parameters() if p.requires_grad], lr=1e-4)
        self.compile_seconds = None
        if name == "compile":
            started = time.process_time()
            self.forward = torch.compile(self.policy.forward)
            self.step(0)  # compiles
            self.compile_seconds = time.process_time() - started
        self.policy.train()

    def _distillation(self, name: str):
        import copy

        from dp_ros.training.distillation import ConsistencyDistillation, DistillationLoss

        teacher = copy.deepcopy(self.policy)
        target = "target-network" if name == "distill-lcm" else "teacher-ode"
        return ConsistencyDistillation(self.policy, teacher, DistillationLoss(target=target))

    def step(self, index: int) -> float:
        import torch

        started = time.thread_time()
        loss, _ = self.forward(self.batches[index % len(self.batches)])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 10.0)
        self.optimizer.step()
        self.optimizer.zero_grad()
        if self.average is not None:
            self.average.update(self.policy)
        return time.thread_time() - started


def main() -> int:
    args = parse_args()
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    from dp_ros.demo.pipeline import DemoSettings

    trainers = []
    for name in args.variants:
        try:
            trainers.append(Trainer(name, Path(args.dataset), DemoSettings().batch_size))
        except Exception as exc:  # noqa: BLE001 - a variant that cannot run here is reported, the rest go on
            print(f"{name}: cannot run here: {type(exc).__name__}: {exc}")
    for trainer in trainers:
        trainer.step(1)  # untimed
    times = {t.name: [] for t in trainers}
    for i in range(args.steps):
        for trainer in trainers:
            times[trainer.name].append(trainer.step(i))
    base = statistics.median(times[trainers[0].name])
    rows = {t.name: {"cpu_seconds_per_step": statistics.median(times[t.name]),
                     "ratio": statistics.median(times[t.name]) / base, "compile_cpu_seconds": t.compile_seconds}
            for t in trainers}
    for name, row in rows.items():
        extra = f", compiling took {row['compile_cpu_seconds']:.0f} s of CPU" if row["compile_cpu_seconds"] else ""
        print(f"{name}: {row['cpu_seconds_per_step']:.2f} s of CPU per step, {row['ratio']:.2f}x{extra}")
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
