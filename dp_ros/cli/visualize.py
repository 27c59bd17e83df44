"""Plot what a Diffusion Policy does on dataset frames (PNG files).

- denoising: the action trajectory at several denoising steps, per joint, from
  pure noise to the final actions, for the observation at --frame of --episode,
  with the demonstrated actions dashed;
- episode: the chunks predicted along --episode (one every n_action_steps
  frames, executed open loop as on the robot) against the demonstrated actions.

Example:
  dp-ros visualize --checkpoint outputs/train/pick --dataset-root data/pick \\
      --episode 9 --frame 30 --sampler ddim:10 --output-dir plots/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="LeRobot checkpoint: pretrained_model folder, checkpoint folder or training run folder")
    parser.add_argument("--dataset-root", required=True, help="LeRobot dataset folder (meta/, data/, videos/)")
    parser.add_argument("--repo-id", default="local/eval", help="dataset name (a label for a local dataset)")
    parser.add_argument("--episode", type=int, default=0, help="episode index to plot")
    parser.add_argument("--frame", type=int, default=0, help="frame of the episode whose observation is denoised")
    parser.add_argument("--sampler", default="checkpoint", metavar="NAME[:STEPS]",
                        help="sampler and denoising steps, e.g. ddim:10 (default: the checkpoint's own)")
    parser.add_argument("--plot", choices=["both", "denoising", "episode"], default="both", help="which plots to write")
    parser.add_argument("--shown-steps", type=int, default=6, help="denoising steps drawn (first and last included)")
    parser.add_argument("--stride", type=int, default=None,
                        help="episode plot: frames between predicted chunks (default: n_action_steps)")
    parser.add_argument("--output-dir", default="plots", help="folder for the PNG files")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")


def run(args: argparse.Namespace) -> int:
    from dp_ros.core.policy_runtime import CheckpointError
    from dp_ros.core.choices import SamplerChoiceError
    from dp_ros.training.evaluation import EvaluationError

    try:
        for path in make_plots(args):
            print(f"wrote {path}")
    except (CheckpointError, EvaluationError, SamplerChoiceError) as exc:
        print(f"dp-ros visualize: {exc}", file=sys.stderr)
        return 2
    return 0


def make_plots(args: argparse.Namespace) -> list[Path]:
    from dp_ros.core.policy_runtime import PolicyRuntime
    from dp_ros.robot_interface import ACTION_FEATURE
    from dp_ros.core.choices import SamplerChoice
    from dp_ros.training.evaluation import dataset_info, load_dataset
    from dp_ros.training.plots import plot_denoising, plot_episode_actions
    from dp_ros.training.visualization import denoising_trace, episode_rollout

    choice = SamplerChoice.parse(args.sampler)
    runtime = PolicyRuntime.load(args.checkpoint, device=args.device, noise_scheduler=choice.name,
                                 num_inference_steps=choice.steps, seed=args.seed)
    info = dataset_info(args.dataset_root)
    fps = float(info["fps"])
    names = ((info["features"].get(ACTION_FEATURE) or {}).get("names")
             or [f"joint_{j}" for j in range(runtime.action_dim)])
    dataset = load_dataset(args.dataset_root, [args.episode], runtime.n_obs_steps, runtime.n_action_steps,
                           runtime.image_keys, repo_id=args.repo_id)
    sampler = f"{runtime.noise_scheduler.upper()} {runtime.num_inference_steps} steps"
    out = Path(args.output_dir)
    written = []
    if args.plot in ("both", "denoising"):
        trace = denoising_trace(runtime, dataset, args.frame)
        written.append(plot_denoising(
            trace.steps, out / f"denoising_ep{args.episode}_frame{args.frame}.png", names, fps, runtime.n_obs_steps,
            demonstrated=trace.demonstrated, shown=args.shown_steps,
            title=f"Denoising process ({sampler}), episode {args.episode}, frame {args.frame}"))
    if args.plot in ("both", "episode"):
        rollout = episode_rollout(runtime, dataset, args.stride)
        written.append(plot_episode_actions(
            rollout.predicted, rollout.demonstrated, out / f"actions_ep{args.episode}.png", names, fps,
            chunk_starts=rollout.chunk_starts,
            title=f"Predicted vs demonstrated actions ({sampler}), episode {args.episode}"))
    return written
