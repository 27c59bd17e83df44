"""Evaluate a Diffusion Policy offline on held-out episodes of a LeRobot dataset.

For each evaluated frame the policy predicts a chunk from the frame's observation
history; the chunk is compared with the demonstrated actions: MSE and MAE per
joint and overall (in the units of the actions). Action diversity is the standard
deviation across repeated samples for the same observation. Give several
--sampler values to compare, e.g. DDPM with 100 steps against DDIM with 10, on
your own data.

By default the episodes are those the checkpoint did not train on (read from
its train_config.json when it was trained on this dataset with dataset.episodes),
else all episodes, with a note that these include training data.

Example:
  dp-ros eval --checkpoint outputs/train/pick/checkpoints/last/pretrained_model \\
      --dataset-root data/pick --episodes 8 9 --sampler ddpm:100 --sampler ddim:10 --output results.json
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="LeRobot checkpoint: pretrained_model folder, checkpoint folder or training run folder")
    parser.add_argument("--dataset-root", required=True, help="LeRobot dataset folder (meta/, data/, videos/)")
    parser.add_argument("--repo-id", default="local/eval", help="dataset name (a label for a local dataset)")
    parser.add_argument("--episodes", type=int, nargs="+", default=None,
                        help="episode indices to evaluate on (default: held-out episodes, see above)")
    parser.add_argument("--sampler", action="append", default=[], metavar="NAME[:STEPS]",
                        help="sampler and denoising steps: ddpm, ddim, dpmsolver++, unipc or sde-dpmsolver++, e.g. ddim:10; "
                             "repeat to compare (default: the checkpoint's own)")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="evaluate at most this many frames, evenly spread (default: every frame)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per inference batch")
    parser.add_argument("--diversity-samples", type=int, default=8,
                        help="samples drawn per observation for the action diversity (at least 2)")
    parser.add_argument("--diversity-frames", type=int, default=4, help="observations probed for the action diversity")
    parser.add_argument("--robot-config", default=None,
                        help="robot interface YAML to check the checkpoint against (default: no check)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (repeatable results)")
    parser.add_argument("--output", default=None, metavar="JSON", help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    from dp_ros.core.policy_runtime import CheckpointError, resolve_checkpoint
    from dp_ros.robot_interface import RobotInterfaceError
    from dp_ros.core.choices import SamplerChoice, SamplerChoiceError
    from dp_ros.training.evaluation import EvaluationError

    try:
        if args.diversity_samples < 2:
            raise EvaluationError("--diversity-samples must be at least 2 (a standard deviation needs two samples)")
        choices = [SamplerChoice.parse(s) for s in args.sampler] or [SamplerChoice()]
        results = evaluate_all(args, resolve_checkpoint(args.checkpoint), choices)
    except (CheckpointError, EvaluationError, SamplerChoiceError, RobotInterfaceError) as exc:
        print(f"dp-ros eval: {exc}", file=sys.stderr)
        return 2
    from dp_ros.training.evaluation import format_results

    print(format_results(results))
    if args.output:
        from pathlib import Path

        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([r.to_dict() for r in results], indent=2))
        print(f"results written to {out}")
    return 0


def evaluate_all(args: argparse.Namespace, checkpoint, choices):
    from tqdm import tqdm

    from dp_ros.core.policy_runtime import PolicyRuntime
    from dp_ros.robot_interface import ACTION_FEATURE, load_robot_interface
    from dp_ros.training.evaluation import dataset_info, evaluate, held_out_episodes, load_dataset

    info = dataset_info(args.dataset_root)
    if args.episodes is None:
        episodes, note = held_out_episodes(checkpoint, args.dataset_root, int(info.get("total_episodes", 0)))
        print(f"evaluating on {note}")
    else:
        episodes = list(args.episodes)
    joint_names = (info["features"].get(ACTION_FEATURE) or {}).get("names")
    results, dataset = [], None
    for choice in choices:
        runtime = PolicyRuntime.load(checkpoint, device=args.device, noise_scheduler=choice.name,
                                     num_inference_steps=choice.steps, seed=args.seed)
        if args.robot_config:
            runtime.check_robot(load_robot_interface(args.robot_config))
        if dataset is None:
            dataset = load_dataset(args.dataset_root, episodes, runtime.n_obs_steps, runtime.n_action_steps,
                                   runtime.image_keys, repo_id=args.repo_id)
        label = f"{runtime.noise_scheduler}:{runtime.num_inference_steps}"
        with tqdm(desc=f"eval {label}", unit="frame", dynamic_ncols=True) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            results.append(evaluate(runtime, dataset, label, episodes, batch_size=args.batch_size,
                                    max_frames=args.max_frames, diversity_samples=args.diversity_samples,
                                    diversity_frames=args.diversity_frames, joint_names=joint_names,
                                    progress=progress))
    return results
