"""Episode-by-episode LeRobot dataset writing (format v3.0, images as video) that never loses a saved episode.

LeRobot 0.6.1 keeps the data and episode-metadata parquet files of a writing
session open (their footers are written only at ``finalize()``) and buffers
episode metadata, while ``info.json`` already counts every saved episode. A
SIGKILL after ``save_episode()`` therefore leaves a dataset that does not load.
:class:`EpisodeWriter` makes every episode its own transaction:

1. a journal (``.dp_ros_journal/``) records which files exist and copies the few
   files a save rewrites (``meta/info.json``, ``stats.json``, ``tasks.parquet``);
2. LeRobot saves the episode and the dataset is finalised (files closed);
3. the journal is removed, and the dataset is resumed for the next episode
   (LeRobot then writes the next episode into new files).

Opening a dataset whose journal is still there (a crash during step 2) rolls
that one episode back, so episodes 0..N-1 stay loadable and recording resumes.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dp_ros.lerobot_compat import abandon_dataset, encoder_frame_queues
from dp_ros.robot_interface import RobotInterface

DATASET_LABEL = "local/dataset"
"""The repo_id written into a dataset that bag2lerobot, merge-datasets or a direct EpisodeWriter makes, unless told
otherwise (only a label for a local dataset; the recorder node's is its parameter repo_id)."""
JOURNAL = ".dp_ros_journal"
EPISODE_LOG = "meta/dp_ros_episodes.jsonl"
"""One JSON line per saved episode with what dp_ros knows about it (dropped frames, source, sync)."""
_REWRITTEN_FILES = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet", EPISODE_LOG)
_APPEND_ONLY_DIRS = ("data", "videos", "meta/episodes")
MIN_VIDEO_SIZE = 32
"""Smallest width and height LeRobot's default video encoder (libsvtav1) encodes; smaller frames make it hang."""
_DEFAULT_FEATURE_NAMES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class DatasetWriterError(RuntimeError):
    """The dataset cannot be opened or written (the message says why and what to do)."""


@dataclass(frozen=True)
class SavedEpisode:
    index: int
    frames: int


def is_dataset(root: Path) -> bool:
    return (Path(root) / "meta" / "info.json").is_file()


def disk_bytes(root: Path) -> int:
    """Bytes taken by all files under ``root``."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def read_episode_log(root: Path) -> list[dict[str, Any]]:
    """The per-episode records dp_ros wrote next to LeRobot's metadata (empty if none)."""
    path = Path(root) / EPISODE_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- journal ------------------------------------------------------------------
def _files_under(root: Path, folders: tuple[str, ...]) -> list[str]:
    found = []
    for folder in folders:
        base = root / folder
        if base.is_dir():
            found += [p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file()]
    return sorted(found)


def _begin_save(root: Path) -> None:
    staging = root / (JOURNAL + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    existing = [name for name in _REWRITTEN_FILES if (root / name).is_file()]
    for index, name in enumerate(existing):
        shutil.copy2(root / name, staging / f"{index}.bak")
    manifest = {"files": _files_under(root, _APPEND_ONLY_DIRS), "rewritten": existing}
    (staging / "manifest.json").write_text(json.dumps(manifest))
    os.replace(staging, root / JOURNAL)


def _end_save(root: Path) -> None:
    done = root / (JOURNAL + ".done")
    shutil.rmtree(done, ignore_errors=True)
    os.replace(root / JOURNAL, done)
    shutil.rmtree(done, ignore_errors=True)


def _remove_scratch(root: Path) -> None:
    """LeRobot's temporary frames (``images/``) and encoder folders (``tmp*``) of an unsaved episode."""
    shutil.rmtree(root / "images", ignore_errors=True)
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.startswith("tmp"):
            shutil.rmtree(entry, ignore_errors=True)
    for leftover in (JOURNAL + ".tmp", JOURNAL + ".done"):
        shutil.rmtree(root / leftover, ignore_errors=True)


def recover_interrupted_save(root: Path) -> bool:
    """Roll back an episode whose save was interrupted; returns True if there was one."""
    root = Path(root)
    journal = root / JOURNAL
    rolled_back = False
    if (journal / "manifest.json").is_file():
        manifest = json.loads((journal / "manifest.json").read_text())
        keep = set(manifest["files"])
        for name in _files_under(root, _APPEND_ONLY_DIRS):
            if name not in keep:
                (root / name).unlink()
        for index, name in enumerate(manifest["rewritten"]):
            restoring = root / (name + ".restore")
            shutil.copy2(journal / f"{index}.bak", restoring)
            os.replace(restoring, root / name)
        for name in _REWRITTEN_FILES:
            if name not in manifest["rewritten"] and (root / name).exists():
                (root / name).unlink()
        rolled_back = True
    shutil.rmtree(journal, ignore_errors=True)
    if root.is_dir():
        _remove_scratch(root)
    return rolled_back


# --- compatibility ----------------------------------------------------------------
def check_compatible(root: Path, robot: RobotInterface) -> None:
    """Raise DatasetWriterError when the dataset at ``root`` was not recorded for this robot."""
    info = json.loads((Path(root) / "meta" / "info.json").read_text())
    problems = []
    if int(info.get("fps", -1)) != robot.fps:
        problems.append(f"fps is {info.get('fps')}, the robot interface's control_rate gives {robot.fps}")
    have = {k: v for k, v in info.get("features", {}).items() if k not in _DEFAULT_FEATURE_NAMES}
    want = robot.lerobot_features()
    for key, feature in want.items():
        if key not in have:
            problems.append(f"it has no feature {key}")
            continue
        if have[key].get("dtype") != feature["dtype"] or tuple(have[key].get("shape", ())) != tuple(feature["shape"]):
            problems.append(f"{key} is {have[key].get('dtype')} {tuple(have[key].get('shape', ()))}, "
                            f"the robot interface needs {feature['dtype']} {tuple(feature['shape'])}")
        elif feature.get("names") and have[key].get("names") not in (feature["names"], None) \
                and not key.startswith("observation.images."):
            problems.append(f"{key} joint names are {have[key].get('names')}, the robot interface has {feature['names']}")
    for key in sorted(set(have) - set(want)):
        problems.append(f"it has feature {key} that the robot interface does not")
    if problems:
        raise DatasetWriterError(
            f"the dataset at {root} does not match the robot interface {robot.source_path or robot.name}: "
            + "; ".join(problems) + ". Record into a new folder, or use the robot interface it was recorded with.")


def _quiet_encoders() -> None:
    """Keep the SVT-AV1 encoder's banner and Hugging Face's per-episode progress bars out of our logs."""
    os.environ.setdefault("SVT_LOG", "1")
    import datasets

    datasets.disable_progress_bars()


# --- the writer -------------------------------------------------------------------
class EpisodeWriter:
    """Writes one LeRobot dataset, one durable episode at a time (create, or resume an existing one).

    Not thread-safe: use it from one thread (the recorder gives it a worker thread).
    """

    def __init__(self, root: str | Path, robot: RobotInterface, repo_id: str = DATASET_LABEL,
                 image_writer_threads: int = 0, streaming_encoding: bool = True, encoder_queue_frames: int = 300):
        self.root = Path(root).expanduser().absolute()
        self.robot = robot
        self.repo_id = repo_id
        self.image_writer_threads = image_writer_threads
        self.streaming_encoding = streaming_encoding
        self.encoder_queue_frames = encoder_queue_frames
        self.recovered_episode = False
        """True when opening rolled back an episode whose save had been interrupted."""
        self.resumed = is_dataset(self.root)
        _quiet_encoders()
        self._dataset = self._open()
        self._episodes_saved = int(self._dataset.meta.total_episodes)
        self._frames_saved = int(self._dataset.meta.total_frames)

    # -- opening ------------------------------------------------------------------
    def _open(self):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        small = [f"{c.name} ({c.width}x{c.height})" for c in self.robot.cameras
                 if min(c.width, c.height) < MIN_VIDEO_SIZE]
        if small:
            raise DatasetWriterError(
                f"cameras {', '.join(small)} are smaller than {MIN_VIDEO_SIZE}x{MIN_VIDEO_SIZE} pixels: LeRobot's AV1 "
                "video encoder (libsvtav1) stalls on such frames. Give them at least that width and height in the "
                "robot interface")

        if is_dataset(self.root):
            self.recovered_episode = recover_interrupted_save(self.root)
            check_compatible(self.root, self.robot)
            return self._resume()
        if self.root.exists():
            if not self.root.is_dir() or any(self.root.iterdir()):
                raise DatasetWriterError(
                    f"{self.root} exists and is not a LeRobot dataset (no meta/info.json); "
                    "choose a new or empty folder, or the folder of a dataset to continue")
            self.root.rmdir()
        self.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            return LeRobotDataset.create(
                repo_id=self.repo_id, fps=self.robot.fps, features=self.robot.lerobot_features(), root=self.root,
                robot_type=self.robot.name, use_videos=True, image_writer_threads=self.image_writer_threads,
                metadata_buffer_size=1, streaming_encoding=self.streaming_encoding,
                encoder_queue_maxsize=self.encoder_queue_frames)
        except OSError as exc:
            raise DatasetWriterError(f"cannot create a dataset at {self.root}: {exc}") from None

    def _resume(self):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        try:
            return LeRobotDataset.resume(self.repo_id, root=self.root, image_writer_threads=self.image_writer_threads,
                                         streaming_encoding=self.streaming_encoding,
                                         encoder_queue_maxsize=self.encoder_queue_frames)
        except Exception as exc:  # noqa: BLE001 - LeRobot raises many kinds on a damaged dataset
            raise DatasetWriterError(f"cannot continue the dataset at {self.root}: {type(exc).__name__}: {exc}. "
                                     "It may be damaged; record into a new folder.") from None

    # -- state ---------------------------------------------------------------------
    @property
    def episodes_saved(self) -> int:
        return self._episodes_saved

    @property
    def frames_saved(self) -> int:
        return self._frames_saved

    @property
    def frames_in_episode(self) -> int:
        if self._dataset is None or self._dataset.writer is None:
            return 0
        buffer = self._dataset.writer.episode_buffer
        return int(buffer["size"]) if buffer else 0

    def _writable(self):
        """The dataset, continued for the next episode (after a save it is reopened on first use)."""
        if self._dataset is None:
            self._dataset = self._resume()
        return self._dataset

    # -- writing -------------------------------------------------------------------
    def add_frame(self, frame: dict[str, np.ndarray], task: str) -> None:
        """One frame: ``observation.state``, ``action`` (float32 (J,)), ``observation.images.<cam>`` (uint8 HxWx3)."""
        dataset = self._writable()
        self._wait_for_encoders()
        dataset.add_frame({**frame, "task": task})

    def _wait_for_encoders(self, patience: float = 30.0) -> None:
        """Block while a video encoder's queue is full.

        LeRobot's streaming encoder drops a frame (with a warning) when its queue
        stays full for 0.1 s, which would leave the video shorter than the data.
        Waiting here makes a fast producer (the bag converter) wait for the
        encoder instead.
        """
        queues = encoder_frame_queues(self._dataset)
        deadline = time.monotonic() + patience
        while queues and any(q.full() for q in queues) and time.monotonic() < deadline:
            time.sleep(0.002)

    def discard_episode(self) -> None:
        if self._dataset is not None and self._dataset.has_pending_frames():
            self._dataset.clear_episode_buffer(delete_images=True)

    def save_episode(self, record: dict[str, Any] | None = None) -> SavedEpisode:
        """Save the frames added so far as the next episode, durably; ``record`` goes to the episode log."""
        frames = self.frames_in_episode
        if frames == 0:
            raise DatasetWriterError("the episode has no frames; nothing to save")
        index = self.episodes_saved
        _quiet_encoders()  # LeRobot switches the progress bars back on after reading metadata
        _begin_save(self.root)
        try:
            self._dataset.save_episode()
            self._dataset.finalize()
            line = {"episode_index": index, "length": frames, **(record or {})}
            with open(self.root / EPISODE_LOG, "a") as log:
                log.write(json.dumps(line) + "\n")
        except BaseException as exc:
            abandon_dataset(self._dataset)
            recover_interrupted_save(self.root)
            self._dataset = None
            if isinstance(exc, Exception):
                raise DatasetWriterError(f"saving episode {index} to {self.root} failed and was rolled back "
                                         f"(episodes 0..{index - 1} are intact): {type(exc).__name__}: {exc}") from exc
            raise
        _end_save(self.root)
        self._dataset = None  # LeRobot writes the next episode into new files once it is reopened
        self._episodes_saved += 1
        self._frames_saved += frames
        return SavedEpisode(index=index, frames=frames)

    def close(self) -> None:
        """Drop an unsaved episode and release the dataset (saved episodes are already complete)."""
        if self._dataset is not None:
            self.discard_episode()
            self._dataset.finalize()
            self._dataset = None
        if self.root.is_dir():
            _remove_scratch(self.root)
