"""The demo's saved views: one Rerun recording (.rrd) per closed-loop episode, next to the report's PNGs.

Optional like the viewer itself: without rerun-sdk the demo runs as before and says how to get the views."""
from __future__ import annotations

from pathlib import Path

from dp_ros.robot_interface import RobotInterface

VIEWS_FOLDER = "views"


class EpisodeViews:
    """Records the policy node's and the simulator's topics during each episode (``begin``/``end``)."""

    def __init__(self, robot: RobotInterface, output: Path, log=print):
        self.robot, self.folder = robot, Path(output) / VIEWS_FOLDER
        self.live = None
        try:
            import rerun  # noqa: F401
        except ImportError:
            log("saved views skipped: rerun-sdk is not installed (pip install -r requirements-view.txt)")
            return
        from dp_ros.view.sources import LiveView

        self.folder.mkdir(parents=True, exist_ok=True)
        self.live = LiveView(robot, warn=lambda text: None)

    def begin(self, index: int) -> None:
        if self.live is not None:
            from dp_ros.view.sources import new_log

            self.live.start(new_log(self.robot, f"episode_{index:03d}", save_to=self._path(index)))

    def end(self, index: int) -> str:
        """Finish the episode's file; returns its path relative to the demo's output ('' without the viewer)."""
        if self.live is None:
            return ""
        logger = self.live.finish()
        if logger is not None:
            logger.view.close()
        return f"{VIEWS_FOLDER}/{self._path(index).name}"

    def _path(self, index: int) -> Path:
        return self.folder / f"episode_{index:03d}.rrd"

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
