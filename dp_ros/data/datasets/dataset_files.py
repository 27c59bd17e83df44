"""Reading a LeRobot v3.0 dataset's files directly: info.json, the data and episode parquet files, the videos.

Used by ``dp-ros check-dataset`` and ``dp-ros lerobot2bag``: no LeRobotDataset
is built (it would decode videos frame by frame at random), and a damaged
dataset is still read as far as it goes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np


TIME_TOLERANCE = 1e-4
"""Seconds: how far a timestamp may be from its place on the 1/fps grid (LeRobot stores float32 seconds)."""


class DatasetCheckError(ValueError):
    """The dataset cannot be read at all (the message says why)."""


def _read_parquets(folder: Path, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted(folder.glob("*/*.parquet"))
    if not paths:
        raise DatasetCheckError(f"no parquet files under {folder}")
    try:
        tables = [pq.read_table(p, columns=columns) for p in paths]
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for damaged files
        raise DatasetCheckError(f"cannot read the parquet files under {folder}: {exc}") from None
    return pa.concat_tables(tables, promote_options="default")


def _matrix(table, name: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    return values.reshape(len(column), -1) if len(column) else values.reshape(0, 0)


@dataclass
class DatasetFiles:
    """The columns of a dataset's frames (one row per frame, in file order) and its episode metadata."""

    info: dict
    episode_index: np.ndarray
    frame_index: np.ndarray
    timestamp: np.ndarray
    action: np.ndarray | None
    state: np.ndarray | None
    episodes_meta: list[dict]


def load_dataset_files(root: Path) -> DatasetFiles:
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetCheckError(f"{root} is not a LeRobot dataset (no meta/info.json)")
    info = json.loads(info_path.read_text())
    features = info.get("features", {})
    columns = [c for c in ("episode_index", "frame_index", "timestamp", "action", "observation.state") if c in features]
    table = _read_parquets(root / "data", columns)
    meta_table = _read_parquets(root / "meta" / "episodes")
    meta_columns = [c for c in meta_table.column_names if not c.startswith("stats/")]
    episodes_meta = meta_table.select(meta_columns).to_pylist()
    return DatasetFiles(info=info,
                 episode_index=np.asarray(table.column("episode_index").to_numpy(), dtype=np.int64),
                 frame_index=np.asarray(table.column("frame_index").to_numpy(), dtype=np.int64),
                 timestamp=np.asarray(table.column("timestamp").to_numpy(), dtype=np.float64),
                 action=_matrix(table, "action") if "action" in columns else None,
                 state=_matrix(table, "observation.state") if "observation.state" in columns else None,
                 episodes_meta=sorted(episodes_meta, key=lambda e: e["episode_index"]))


def video_path(root: Path, info: dict, key: str, meta: dict) -> Path:
    template = info.get("video_path") or "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    return root / template.format(video_key=key, chunk_index=int(meta[f"videos/{key}/chunk_index"]),
                                  file_index=int(meta[f"videos/{key}/file_index"]))


def decoded_frames(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, HxWx3 uint8) for every frame of a video file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield float(frame.time), frame.to_ndarray(format="rgb24")


