"""Check a LeRobot dataset against what the Diffusion Policy guide asks of demonstration data.

Reports the episode count (100 for basic training, 500 recommended), NaN or
infinite values, episodes whose timestamps are not evenly spaced at 1/fps (their
time is not true time), frames dropped inside episodes and episodes split at gaps,
action smoothness (jerk statistics; outliers listed by episode and frame),
cameras frozen while the arm moves, and the spread of episode lengths.
Human-readable by default, --json for machines, --plot for a PNG overview.

Examples:
  dp-ros check-dataset data/pick
  dp-ros check-dataset data/pick --json > report.json
  dp-ros check-dataset data/pick --plot pick_check.png --strict

Exit codes: 0 no errors, 1 errors found (or warnings, with --strict), 2 the dataset cannot be read.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dp_ros.data.datasets.dataset_check import CheckOptions

    defaults = CheckOptions()
    parser.add_argument("root", help="dataset folder (meta/, data/, videos/)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    parser.add_argument("--plot", default="", metavar="PNG",
                        help="also draw episode lengths, actions, the jerk distribution and data problems to PNG")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument("--skip-videos", action="store_true",
                        help="do not decode the videos (no frozen-camera check; much faster)")
    parser.add_argument("--min-episodes", type=int, default=defaults.min_episodes,
                        help=f"fewer episodes is a warning (default: {defaults.min_episodes}, the guide's minimum)")
    parser.add_argument("--recommended-episodes", type=int, default=defaults.recommended_episodes,
                        help=f"fewer episodes is a note (default: {defaults.recommended_episodes})")
    parser.add_argument("--jerk-outlier", type=float, default=defaults.jerk_outlier, metavar="K",
                        help="flag action jerks more than K robust standard deviations from the median "
                             f"(default: {defaults.jerk_outlier:g})")
    parser.add_argument("--frozen-frames", type=int, default=defaults.frozen_frames, metavar="N",
                        help="flag a camera showing the same image for N frames while the joints move "
                             f"(default: {defaults.frozen_frames})")
    parser.add_argument("--frozen-difference", type=float, default=defaults.frozen_difference, metavar="LEVELS",
                        help="mean absolute pixel difference (0-255) under which two frames are the same image "
                             f"(default: {defaults.frozen_difference:g})")
    parser.add_argument("--max-listed", type=int, default=defaults.max_listed, metavar="N",
                        help=f"list at most N findings of one kind (default: {defaults.max_listed})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dp_ros.data.datasets.dataset_check import CheckOptions, DatasetCheckError, check_dataset
    from dp_ros.data.datasets.dataset_plot import plot_report
    from dp_ros.data.datasets.dataset_report import ERROR, WARNING, nan_safe

    options = CheckOptions(min_episodes=args.min_episodes, recommended_episodes=args.recommended_episodes,
                           jerk_outlier=args.jerk_outlier, frozen_frames=args.frozen_frames,
                           frozen_difference=args.frozen_difference, check_videos=not args.skip_videos,
                           max_listed=args.max_listed)
    try:
        report = check_dataset(args.root, options, progress=not (args.no_progress or args.json))
    except DatasetCheckError as exc:
        print(f"check-dataset: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(nan_safe(report.as_dict()), indent=2))
    else:
        print(report.text())
    if args.plot:
        path = plot_report(report, args.plot)
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    if report.count(ERROR) or (args.strict and report.count(WARNING)):
        return 1
    return 0
