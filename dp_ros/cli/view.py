"""See what the policy saw, planned and executed, on one timeline, in Rerun's viewer.

Sources (one of them):
  live (no SOURCE)   subscribe to a running system: the robot interface's joint states, cameras and command
                     topic, and the policy node's ~/chunks, ~/safety_interventions and ~/status
  a .rrd file        a saved view (`dp-ros demo` writes one per closed-loop episode)
  a bag              rosbag2 folder, .mcap or .db3 (recorder output, `dp-ros lerobot2bag` output, ros2 bag record)
  a LeRobot dataset  a dataset folder (meta/info.json): states, actions and images of its episodes

The view shows the camera images, each joint's measured position and executed command with every chunk's
planned future drawn from its arrival (the worm plot; the pinned part in yellow), per-chunk latency, late and
pinned actions, safety interventions and state changes; the simulated arm adds its tip path and the pillar in
3-D. Rerun's web viewer is served from the installed rerun-sdk wheel: nothing is downloaded, no account needed.

Examples:
  dp-ros view                                    # live, open http://localhost:9090
  dp-ros view outputs/demo/episodes/episode_000.rrd
  dp-ros view demo.mcap --save demo.rrd --no-serve
  dp-ros view data/pick --episodes 0 1

Needs the optional viewer dependency: pip install -r requirements-view.txt
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", default="",
                        help="a .rrd file, a bag (.mcap, .db3 or bag folder) or a LeRobot dataset folder; "
                             "none = live topics")
    parser.add_argument("--robot-config", default="", help="robot interface YAML (default: dp_ros's "
                                                           "config/robot.yaml): topics, joints, cameras")
    parser.add_argument("--policy-node", default="/policy_node", help="the policy node's name (default /policy_node)")
    parser.add_argument("--episodes", type=int, nargs="*", default=None, help="dataset: episodes to show (default all)")
    parser.add_argument("--save", default="", metavar="FILE.rrd", help="also write the view to this .rrd file "
                        "(live: written as it goes)")
    parser.add_argument("--no-serve", action="store_true", help="do not serve the web viewer (with --save: convert "
                        "and exit)")
    parser.add_argument("--web-port", type=int, default=9090, help="port of the web viewer (default 9090)")
    parser.add_argument("--grpc-port", type=int, default=9876, help="port of Rerun's data server (default 9876)")
    parser.add_argument("--open-browser", action="store_true", help="open the viewer in the default browser")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this many seconds (default: until "
                                                                    "Ctrl-C)")


def source_kind(source: str) -> str:
    path = Path(source)
    if not source:
        return "live"
    if not path.exists():
        raise ValueError(f"{source} does not exist")
    if path.suffix == ".rrd":
        return "rrd"
    if path.is_dir() and (path / "meta" / "info.json").exists():
        return "dataset"
    return "bag"


def build_log(args, robot, kind: str):
    """The RerunLog with the source's data (not for live or .rrd sources)."""
    from dp_ros.view.sources import new_log, replay_bag, replay_dataset

    log = new_log(robot, Path(args.source).stem or "live", scene=None if kind != "dataset" else False)
    if kind == "bag":
        logger = replay_bag(args.source, log, robot, args.policy_node)
        print(f"{args.source}: {sum(logger.counts.values())} messages "
              f"({', '.join(f'{n} {k}' for k, n in sorted(logger.counts.items()))})")
    elif kind == "dataset":
        frames = replay_dataset(args.source, log, robot, args.episodes)
        print(f"{args.source}: {frames} frames")
    return log


def serve_rrd(path: str, args) -> None:
    """Serve a saved .rrd to the web viewer, laid out by the blueprint of what it holds."""
    import rerun as rr

    from dp_ros.view.rerun_log import blueprint_for, layout_of_saved

    stream = rr.RecordingStream("dp_ros_view")
    uri = stream.serve_grpc(grpc_port=args.grpc_port, default_blueprint=blueprint_for(layout_of_saved(path)))
    stream.log_file_from_path(path)
    rr.serve_web_viewer(web_port=args.web_port, open_browser=args.open_browser, connect_to=uri)
    print(f"viewer: http://localhost:{args.web_port}/?url={uri}", flush=True)
    wait(args.seconds)


def wait(seconds: float) -> None:
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def run(args: argparse.Namespace) -> int:
    from dp_ros.robot_interface import RobotInterfaceError, default_robot_config_path, load_robot_interface
    from dp_ros.view.rerun_log import require_rerun

    require_rerun()
    try:
        kind = source_kind(args.source)
        robot = load_robot_interface(args.robot_config or str(default_robot_config_path()))
    except (ValueError, RobotInterfaceError) as exc:
        print(f"dp-ros view: {exc}", file=sys.stderr)
        return 2
    if kind == "rrd":
        serve_rrd(args.source, args) if not args.no_serve else print("nothing to do: the source is already an .rrd")
        return 0
    if kind == "live":
        return run_live(args, robot)
    try:
        log = build_log(args, robot, kind)
    except ValueError as exc:
        print(f"dp-ros view: {exc}", file=sys.stderr)
        return 1
    if args.no_serve:
        if args.save:
            log.save(args.save)
            log.close()
            print(f"saved {args.save}")
        return 0
    url = log.serve(args.web_port, args.grpc_port, args.open_browser, save_to=args.save or None)
    print(f"viewer: {url}" + (f" (also saved to {args.save})" if args.save else ""), flush=True)
    wait(args.seconds)
    log.close()
    return 0


def run_live(args, robot) -> int:
    from dp_ros.view.sources import LiveView, new_log

    log = new_log(robot, "live", save_to=args.save or None if args.no_serve else None)
    if not args.no_serve:
        print(f"viewer: {log.serve(args.web_port, args.grpc_port, args.open_browser, args.save or None)}", flush=True)
    view = LiveView(robot, args.policy_node, warn=lambda text: print(text, file=sys.stderr))
    view.start(log)
    print(f"listening to {robot.joint_state_topic}, {robot.command.topic}, {[c.topic for c in robot.cameras]} and "
          f"{args.policy_node}/{{chunks,safety_interventions,status}}; Ctrl-C ends", flush=True)
    try:
        wait(args.seconds)
    finally:
        logger = view.finish()
        view.close()
        log.close()
    if logger is not None:
        print(f"logged {', '.join(f'{n} {k}' for k, n in sorted(logger.counts.items())) or 'no messages'}")
    return 0
