"""What the policy saw, planned and executed, as one Rerun recording (ROS-free).

One timeline, ``time`` (the robot's clock, seconds), carries:
- ``camera/<name>``: the camera images;
- ``joints/<joint>/measured`` and ``joints/<joint>/command``: each joint's measured position and the command's
  first target at the time it is due;
- ``joints/<joint>/plan/chunk_<i>``: every chunk's planned future from its arrival (the worm plot), its pinned
  part (guided) marked with points on ``.../pinned``;
- ``chunks/ms/*``, ``chunks/actions/*``: per-chunk latency (observation to merge), compute time, late and pinned actions;
- ``safety/largest_change`` and the ``events`` log: safety interventions and state changes;
- ``scene/*`` (the simulated arm only): the tip path, the pillar and the target in 3-D.

A blueprint lays it out: camera and 3-D scene on the left, one plot per joint in the middle, chunk figures and
the event log on the right. Needs ``rerun-sdk`` (``pip install -r requirements-view.txt``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

TIMELINE = "time"
MEASURED_COLOR = (40, 120, 255)
COMMAND_COLOR = (30, 200, 80)
PLAN_COLORS = ((235, 40, 200), (255, 140, 0))
"""Chunks alternate between these two, so neighbours stand apart."""
PINNED_COLOR = (255, 235, 0)
INTERVENTION_COLOR = (255, 40, 40)
TIP_PERIOD = 0.05
"""Seconds between logged tip positions (the joint states come faster)."""


def require_rerun():
    try:
        import rerun as rr
    except ImportError:  # pragma: no cover - depends on the installation
        raise SystemExit("dp-ros view needs the Rerun SDK, an optional dependency of dp_ros: "
                         "pip install -r requirements-view.txt") from None
    return rr


@dataclass
class ViewLayout:
    """What the recording holds, for its blueprint."""

    joint_names: list[str]
    cameras: list[str]
    scene: bool = False
    chunk_count: int = 0
    styled: set = field(default_factory=set)


class RerunLog:
    """A Rerun recording of one run; log with the methods below, then ``save`` or ``serve``."""

    def __init__(self, joint_names: Sequence[str], cameras: Sequence[str], name: str = "dp_ros", scene: bool = False,
                 save_to: str | Path | None = None):
        rr = require_rerun()
        self.rr = rr
        self.layout = ViewLayout(list(joint_names), list(cameras), scene)
        self.stream = rr.RecordingStream("dp_ros_view", recording_id=name)
        self._status: tuple[str, str] | None = None
        self._tip_path: list[tuple[float, np.ndarray]] = []
        self._sinks_open = False
        if save_to is not None:
            self.save(save_to)
        self._style_static()

    # --- style ---------------------------------------------------------------------------
    def _style_static(self) -> None:
        rr = self.rr
        for joint in self.layout.joint_names:
            rr.log(f"joints/{joint}/measured", rr.SeriesLines(colors=[MEASURED_COLOR], names=["measured"], widths=[2]),
                   static=True, recording=self.stream)
            rr.log(f"joints/{joint}/command", rr.SeriesLines(colors=[COMMAND_COLOR], names=["command"], widths=[1.5]),
                   static=True, recording=self.stream)
        for path, color in (("chunks/ms/latency", (120, 120, 255)), ("chunks/ms/compute", (60, 200, 200)),
                            ("chunks/actions/dropped_late", (255, 80, 80)), ("chunks/actions/pinned", PINNED_COLOR)):
            rr.log(path, rr.SeriesPoints(colors=[color], names=[path.split("/")[-1]], marker_sizes=[4]), static=True,
                   recording=self.stream)
        rr.log("safety/largest_change", rr.SeriesPoints(colors=[INTERVENTION_COLOR], names=["safety change"],
                                                        marker_sizes=[3]), static=True, recording=self.stream)

    def _at(self, t: float) -> None:
        self.rr.set_time(TIMELINE, timestamp=float(t), recording=self.stream)

    # --- what was seen and done --------------------------------------------------------------
    def joint_state(self, t: float, positions: np.ndarray) -> None:
        self._at(t)
        for joint, value in zip(self.layout.joint_names, np.asarray(positions, dtype=np.float64)):
            self.rr.log(f"joints/{joint}/measured", self.rr.Scalars([value]), recording=self.stream)

    def image(self, t: float, camera: str, rgb: np.ndarray) -> None:
        self._at(t)
        self.rr.log(f"camera/{camera}", self.rr.Image(np.ascontiguousarray(rgb)), recording=self.stream)

    def command(self, t: float, times_from_start: np.ndarray, positions: np.ndarray) -> None:
        """A command taken at ``t``: its first target, drawn when it is due."""
        self._at(t + float(np.asarray(times_from_start).reshape(-1)[0]))
        first = np.asarray(positions, dtype=np.float64).reshape(len(times_from_start), -1)[0]
        for joint, value in zip(self.layout.joint_names, first):
            self.rr.log(f"joints/{joint}/command", self.rr.Scalars([value]), recording=self.stream)

    def chunk(self, chunk) -> None:
        """A ``dp_ros.conversions.plan.ChunkView``: its executable actions from its arrival, pinned ones marked."""
        rr = self.rr
        index = int(chunk.index)
        color = PLAN_COLORS[index % len(PLAN_COLORS)]
        run = chunk.executable
        times = chunk.times[run]
        pinned = np.zeros(len(chunk.times), dtype=bool)
        pinned[chunk.pinned] = True
        pinned = pinned[run]
        for j, joint in enumerate(self.layout.joint_names):
            path = f"joints/{joint}/plan/chunk_{index:04d}"
            rr.log(path, rr.SeriesLines(colors=[color], widths=[1.5], names=[f"chunk {index}"]), static=True,
                   recording=self.stream)
            if len(times):
                rr.send_columns(path, indexes=[rr.TimeColumn(TIMELINE, timestamp=times)],
                                columns=rr.Scalars.columns(scalars=chunk.actions[run, j]), recording=self.stream)
            if pinned.any():
                rr.log(f"{path}/pinned", rr.SeriesPoints(colors=[PINNED_COLOR], marker_sizes=[3],
                                                         names=["pinned"]), static=True, recording=self.stream)
                rr.send_columns(f"{path}/pinned", indexes=[rr.TimeColumn(TIMELINE, timestamp=times[pinned])],
                                columns=rr.Scalars.columns(scalars=chunk.actions[run, j][pinned]),
                                recording=self.stream)
        self._at(chunk.merged_at)
        for path, value in (("chunks/ms/latency", chunk.delay * 1000), ("chunks/ms/compute", chunk.compute_time * 1000),
                            ("chunks/actions/dropped_late", chunk.dropped_late),
                            ("chunks/actions/pinned", chunk.pinned_count),
                            ("meta/chunk_index", index)):
            rr.log(path, rr.Scalars([float(value)]), recording=self.stream)
        self.layout.chunk_count += 1

    def intervention(self, t: float, kinds: Sequence[str], largest_change: float) -> None:
        self._at(t)
        self.rr.log("safety/largest_change", self.rr.Scalars([float(largest_change)]), recording=self.stream)
        self.rr.log("events", self.rr.TextLog(f"safety: {', '.join(kinds)} ({largest_change:.3f})", level="WARN"),
                    recording=self.stream)

    def status(self, t: float, state: str, reason: str) -> None:
        """State changes (and new reasons) go to the event log."""
        if self._status == (state, reason):
            return
        self._status = (state, reason)
        self._at(t)
        level = {"fault": "ERROR", "stopped": "WARN"}.get(state, "INFO")
        self.rr.log("events", self.rr.TextLog(f"{state}: {reason}", level=level), recording=self.stream)

    # --- the simulated arm in 3-D ----------------------------------------------------------------
    def scene(self, pillar_xy: Sequence[float], pillar_radius: float, pillar_height: float,
              target: Sequence[float] | None) -> None:
        rr = self.rr
        rr.log("scene/pillar", rr.Cylinders3D(lengths=[pillar_height], radii=[pillar_radius],
                                              centers=[[pillar_xy[0], pillar_xy[1], pillar_height / 2]],
                                              colors=[(150, 150, 150)]), static=True, recording=self.stream)
        if target is not None:
            rr.log("scene/target", rr.Points3D([target], radii=[0.015], colors=[(230, 30, 30)]), static=True,
                   recording=self.stream)

    def tip(self, t: float, position: Sequence[float]) -> None:
        """The tip at ``t``: the path is logged as one segment per TIP_PERIOD (the 3-D view shows all of them up to
        the time cursor, so the path ends where the tip is), and its cost does not grow with the episode."""
        position = np.asarray(position, dtype=np.float64)
        if self._tip_path and t - self._tip_path[-1][0] < TIP_PERIOD:
            return
        self._at(t)
        if self._tip_path:
            segment = np.stack([self._tip_path[-1][1], position])
            self.rr.log("scene/tip_path", self.rr.LineStrips3D([segment], colors=[MEASURED_COLOR]),
                        recording=self.stream)
        self._tip_path = [(t, position)]

    # --- layout, saving, serving --------------------------------------------------------------------
    def blueprint(self):
        return blueprint_for(self.layout)

    def save(self, path: str | Path) -> Path:
        """Write the recording (what was logged so far, and everything logged later) to an .rrd file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._open_sinks(self.rr.FileSink(str(path)))
        return path

    def serve(self, web_port: int, grpc_port: int, open_browser: bool, save_to: str | Path | None = None) -> str:
        """Serve the recording to Rerun's web viewer (from the installed wheel), and write it to ``save_to`` too;
        returns the viewer's URL. Data logged before is served (and saved) as well."""
        sinks = [self.rr.GrpcServerSink(port=grpc_port)]
        if save_to is not None:
            Path(save_to).parent.mkdir(parents=True, exist_ok=True)
            sinks.append(self.rr.FileSink(str(save_to)))
        self._open_sinks(*sinks)
        uri = sinks[0].uri.replace("0.0.0.0", "127.0.0.1")
        self.rr.serve_web_viewer(web_port=web_port, open_browser=open_browser, connect_to=uri)
        return f"http://localhost:{web_port}/?url={uri}"

    def _open_sinks(self, *sinks) -> None:
        if self._sinks_open:
            raise RuntimeError("this view is already being saved or served")
        self._sinks_open = True
        self.stream.set_sinks(*sinks, default_blueprint=self.blueprint())

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        """Finish the file being written (its footer makes it quick to open) and stop logging."""
        self.stream.flush()
        self.stream.disconnect()


def saved_entities(path: str | Path) -> list[str]:
    """Entity paths of a saved view."""
    from rerun.chunk import RrdReader

    return list(RrdReader(str(path)).stream().collect().schema().entity_paths())


def layout_of_saved(path: str | Path) -> ViewLayout:
    """The layout of a saved view, from its entity paths."""
    entities = saved_entities(path)
    joints = sorted({e.split("/")[2] for e in entities if e.startswith("/joints/") and e.count("/") >= 3})
    cameras = sorted({e.split("/")[2] for e in entities if e.startswith("/camera/")})
    chunks = {e.split("/")[-1] for e in entities if "/plan/chunk_" in e and not e.endswith("/pinned")}
    return ViewLayout(joints, cameras, any(e.startswith("/scene/") for e in entities), len(chunks))


def blueprint_for(layout: ViewLayout):
    """Camera and 3-D scene left, a plot per joint in the middle, chunk figures and events right."""
    import rerun.blueprint as rrb

    left = [rrb.Spatial2DView(origin=f"camera/{c}", name=c) for c in layout.cameras]
    if layout.scene:
        whole_past = rrb.VisibleTimeRange(TIMELINE, start=rrb.TimeRangeBoundary.infinite(),
                                          end=rrb.TimeRangeBoundary.cursor_relative())
        left.append(rrb.Spatial3DView(origin="scene", name="scene: tip path, pillar, target",
                                      time_ranges=[whole_past]))
    joints = [rrb.TimeSeriesView(origin=f"joints/{j}", name=j) for j in layout.joint_names]
    right = [rrb.TimeSeriesView(origin="chunks/ms", name="per chunk: latency and compute time (ms)"),
             rrb.TimeSeriesView(origin="chunks/actions", name="per chunk: late and pinned actions"),
             rrb.TimeSeriesView(origin="safety", name="safety interventions"),
             rrb.TextLogView(origin="events", name="events")]
    columns = [c for c in (rrb.Vertical(*left) if left else None, rrb.Vertical(*joints), rrb.Vertical(*right))
               if c is not None]
    return rrb.Blueprint(rrb.Horizontal(*columns, column_shares=[1, 2, 1][-len(columns):]),
                         rrb.TimePanel(state="collapsed"), collapse_panels=True)

