"""Every use of LeRobot beyond its public API, in one place.

dp_ros is pinned to one LeRobot release (requirements.txt). A few things it
needs have no public handle in that release; they are reached here, each
checked so that a LeRobot that renamed them fails loudly, naming what is gone,
instead of silently behaving differently. Every entry point (``dp-ros``, the
nodes' ``main()``, the console scripts) calls :func:`exit_unless_supported`
before it loads LeRobot; ``dp-ros doctor`` reports the same check.
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from packaging.specifiers import SpecifierSet
from packaging.version import Version

SUPPORTED_LEROBOT = SpecifierSet(">=0.6.1,<0.7")
"""LeRobot releases whose internals match what this module reaches for (the one statement of the range;
requirements.txt pins the release tested, inside it)."""
EXIT_UNSUPPORTED = 2
"""Exit code of an entry point that finds an unsupported LeRobot."""


class LeRobotCompatError(RuntimeError):
    """The installed LeRobot is not one dp_ros supports, or lacks an internal dp_ros relies on."""


def check_lerobot_version(version: str | None = None) -> str:
    """The installed LeRobot version (or ``version``), if it is in :data:`SUPPORTED_LEROBOT`; else a clear error."""
    if version is None:
        try:
            version = metadata.version("lerobot")
        except metadata.PackageNotFoundError:
            raise LeRobotCompatError(
                f"LeRobot is not installed; dp_ros needs lerobot {SUPPORTED_LEROBOT} (`make setup` installs it)"
            ) from None
    if Version(version) not in SUPPORTED_LEROBOT:
        raise LeRobotCompatError(
            f"lerobot {version} is installed but dp_ros supports lerobot {SUPPORTED_LEROBOT}: install the pinned "
            "version (`pip install -r requirements.txt`, or `make setup`)")
    return version


def exit_unless_supported(program: str) -> None:
    """Exit with one line on stderr and :data:`EXIT_UNSUPPORTED` unless the installed LeRobot is supported."""
    try:
        check_lerobot_version()
    except LeRobotCompatError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_UNSUPPORTED) from None


def _missing(what: str) -> LeRobotCompatError:
    return LeRobotCompatError(
        f"LeRobot no longer has {what}, which dp_ros relies on; dp_ros supports lerobot {SUPPORTED_LEROBOT} "
        "(install the pinned version with `pip install -r requirements.txt`)")


def _attribute(owner: Any, name: str, where: str) -> Any:
    if not hasattr(owner, name):
        raise _missing(f"{where}.{name}")
    return getattr(owner, name)


def _replace(owner: Any, name: str, value: Any, where: str) -> None:
    """Set an existing attribute (an internal that is gone is an error, never a new attribute)."""
    _attribute(owner, name, where)
    setattr(owner, name, value)


# --- policies ----------------------------------------------------------------------
def diffusion_global_conditioning(diffusion_model, batch: dict) -> Any:
    """The observation encoding Diffusion Policy's U-Net is conditioned on (LeRobot computes it privately)."""
    prepare = _attribute(diffusion_model, "_prepare_global_conditioning", "DiffusionModel")
    return prepare(batch)


# --- training ----------------------------------------------------------------------
def hook_training_loop(lerobot_train, on_step: Callable[[int, float, float, float, int], None],
                       on_save_start: Callable[[], None], on_save_end: Callable[[], None],
                       on_checkpoint_linked: Callable[[Path], None]) -> None:
    """Wrap the three functions of ``lerobot.scripts.lerobot_train`` its ``train()`` looks up by name at each call.

    ``on_step(step, loss, lr, grad_norm, batch_size)`` after each optimisation step; ``on_save_start`` before
    a checkpoint is written and ``on_save_end`` once ``checkpoints/last`` points to it (or its writing
    failed); ``on_checkpoint_linked(step_dir)`` just before that. Relies on: ``update_policy(train_metrics,
    policy, batch, ...)`` taking a MetricsTracker whose ``steps`` counts the steps before this one and whose
    ``loss``, ``lr`` and ``grad_norm`` meters hold this step's values in ``.val``; ``save_checkpoint(...)``;
    ``update_last_checkpoint(checkpoint_dir)`` (the step folder, named by its zero-padded step).
    """
    update_policy = _attribute(lerobot_train, "update_policy", "lerobot_train")
    save_checkpoint = _attribute(lerobot_train, "save_checkpoint", "lerobot_train")
    update_last_checkpoint = _attribute(lerobot_train, "update_last_checkpoint", "lerobot_train")

    def reported_update(train_metrics, policy, batch, *args, **kwargs):
        result = update_policy(train_metrics, policy, batch, *args, **kwargs)
        on_step(train_metrics.steps + 1, train_metrics.loss.val, train_metrics.lr.val, train_metrics.grad_norm.val,
                _batch_size(batch))
        return result

    def guarded_save(*args, **kwargs):
        on_save_start()
        try:
            return save_checkpoint(*args, **kwargs)
        except BaseException:
            on_save_end()
            raise

    def reported_update_last(checkpoint_dir, *args, **kwargs):
        try:
            result = update_last_checkpoint(checkpoint_dir, *args, **kwargs)
            on_checkpoint_linked(checkpoint_dir)
            return result
        finally:
            on_save_end()

    lerobot_train.update_policy = reported_update
    lerobot_train.save_checkpoint = guarded_save
    lerobot_train.update_last_checkpoint = reported_update_last


def hook_policy_creation(lerobot_train, on_policy: Callable[[Any], Any]) -> None:
    """Pass the policy ``lerobot_train.train()`` makes (``make_policy``, looked up by name) through ``on_policy``."""
    make_policy = _attribute(lerobot_train, "make_policy", "lerobot_train")

    def made_policy(*args, **kwargs):
        return on_policy(make_policy(*args, **kwargs))

    lerobot_train.make_policy = made_policy


def hook_weight_average(lerobot_train, before_update: Callable[[Any], None], after_update: Callable[[Any], None],
                        saving: Callable[[Any, Path], Any]) -> None:
    """Wrap ``update_policy`` and ``save_checkpoint`` of ``lerobot.scripts.lerobot_train`` for a weight average.

    ``before_update(policy)`` and ``after_update(policy)`` run around each optimisation step (``policy``
    as the loop holds it: possibly wrapped by accelerate). ``saving(policy, checkpoint_dir)`` is a context
    manager entered around ``save_checkpoint`` (the unwrapped policy it saves, and the step folder); what
    it writes into the folder is complete before ``checkpoints/last`` points to it. Install it before
    ``hook_training_loop`` so a stop request waits for it too. Relies on ``save_checkpoint``'s parameters
    ``checkpoint_dir``, ``policy`` and ``model_state_dict`` (set only under FSDP, which this cannot average).
    When LeRobot has its own ``--ema`` (:func:`lerobot_has_ema`), use that instead.
    """
    import inspect

    update_policy = _attribute(lerobot_train, "update_policy", "lerobot_train")
    save_checkpoint = _attribute(lerobot_train, "save_checkpoint", "lerobot_train")
    signature = inspect.signature(save_checkpoint)
    for name in ("checkpoint_dir", "policy", "model_state_dict"):
        if name not in signature.parameters:
            raise _missing(f"the parameter {name!r} of lerobot_train.save_checkpoint")

    def averaged_update(train_metrics, policy, batch, *args, **kwargs):
        before_update(policy)
        result = update_policy(train_metrics, policy, batch, *args, **kwargs)
        after_update(policy)
        return result

    def averaged_save(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if bound.arguments.get("model_state_dict") is not None:
            raise LeRobotCompatError("dp_ros's weight average (ema.enable) does not work with FSDP's sharded "
                                     "weights: set ema.enable: false")
        with saving(bound.arguments["policy"], Path(bound.arguments["checkpoint_dir"])):
            return save_checkpoint(*args, **kwargs)

    lerobot_train.update_policy = averaged_update
    lerobot_train.save_checkpoint = averaged_save


def lerobot_has_ema() -> bool:
    """Whether LeRobot's trainer has its own weight average (``--ema.enable``, after 0.6.1)."""
    from lerobot.configs.train import TrainPipelineConfig

    return "ema" in {f.name for f in __import__("dataclasses").fields(TrainPipelineConfig)}


def _batch_size(batch: dict) -> int:
    return next((len(v) for v in batch.values() if getattr(v, "ndim", 0) > 0), 0)


# --- datasets ----------------------------------------------------------------------
def encoder_frame_queues(dataset) -> list:
    """The frame queues of a dataset's streaming video encoder ([] when it encodes after each episode).

    LeRobot's streaming encoder drops a frame when its queue stays full; a
    producer that waits on these queues loses nothing.
    """
    writer = _attribute(dataset, "writer", "LeRobotDataset")
    if writer is None:
        return []
    encoder = _attribute(writer, "_streaming_encoder", "DatasetWriter")
    if encoder is None:
        return []
    return list(_attribute(encoder, "_frame_queues", "StreamingVideoEncoder").values())


def abandon_dataset(dataset) -> None:
    """Close a dataset whose episode save failed half-way, so nothing more is flushed from that state.

    LeRobot's ``finalize()`` would write the half-saved episode's buffered
    metadata; here the writers are closed and marked finalized without it.
    """
    writer = _attribute(dataset, "writer", "LeRobotDataset")
    if writer is not None:
        writer.stop_image_writer()
        writer.close_writer()
        _replace(writer, "_finalized", True, "DatasetWriter")
    meta = _attribute(dataset, "meta", "LeRobotDataset")
    _replace(meta, "_metadata_buffer", [], "LeRobotDatasetMetadata")
    _attribute(meta, "_close_writer", "LeRobotDatasetMetadata")()
    _replace(meta, "_finalized", True, "LeRobotDatasetMetadata")
    _replace(dataset, "_is_finalized", True, "LeRobotDataset")

