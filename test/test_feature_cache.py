"""The frame-feature cache: the same chunks as without it, on real (tiny) LeRobot checkpoints; cleared on a reset
and when the watchdog finds a camera gap."""
import time

import numpy as np
import pytest
import torch

from dp_ros.core.policy_controller import PolicyController
from dp_ros.core.policy_runtime import PolicyRuntime
from dp_ros.lerobot_compat import diffusion_global_conditioning
from lerobot_fixtures import make_checkpoint, node_controller_config, tiny_robot

TOLERANCE = dict(rtol=1e-5, atol=1e-5)
"""Encoding frames one at a time instead of in one batch changes float rounding only."""
ROBOT = tiny_robot(cameras=("front", "wrist"))


def frames(count, seed=0):
    rng = np.random.default_rng(seed)
    return [{"observation.state": rng.normal(size=3).astype(np.float32),
             "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
             "observation.images.wrist": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)} for _ in range(count)]


@pytest.fixture(scope="module", params=[False, True], ids=["shared-encoder", "encoder-per-camera"])
def runtime(request, tmp_path_factory):
    folder = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "pretrained_model", ROBOT, seed=4,
                             use_separate_rgb_encoder_per_camera=request.param)
    return PolicyRuntime.load(folder, device="cpu", noise_scheduler="ddim", num_inference_steps=3, seed=0)


def uncached(runtime, history, noise):
    cache, runtime.feature_cache = runtime.feature_cache, None
    try:
        return runtime.predict_chunk(history, noise=noise)
    finally:
        runtime.feature_cache = cache


def test_cached_chunks_equal_uncached_ones_as_the_history_slides(runtime):
    stream = frames(5)
    noise = torch.randn((1, runtime.horizon, runtime.action_dim), generator=torch.Generator().manual_seed(0))
    runtime.forget_frames()
    cache = runtime.feature_cache
    for i in range(len(stream) - 1):
        history = stream[i:i + 2]
        hits = cache.hits
        cached = runtime.predict_chunk(history, noise=noise)
        np.testing.assert_allclose(cached, uncached(runtime, history, noise), **TOLERANCE)
        # from the second chunk on, the older frame of each camera was the newest of the previous chunk
        assert cache.hits - hits == (0 if i == 0 else 2)
    assert len(cache) <= cache.capacity


def test_the_encoding_equals_lerobots(runtime):
    history = frames(2, seed=1)
    runtime.forget_frames()
    batch = runtime.preprocessor(runtime.history_to_batch(history))
    images = torch.stack([batch[k] for k in runtime.image_keys], dim=-4)
    keys = [[("observation.images.front", i), ("observation.images.wrist", i)] for i in range(2)]
    with torch.inference_mode():
        ours = runtime.feature_cache.conditioning(runtime.policy.diffusion, batch["observation.state"], images, keys)
        lerobot = diffusion_global_conditioning(runtime.policy.diffusion, {"observation.state": batch["observation.state"],
                                                                           "observation.images": images})
    torch.testing.assert_close(ours, lerobot, **TOLERANCE)


def test_the_channels_last_encoder_gives_the_same_chunks_as_pytorchs_default_layout(runtime):
    """On CPU the runtime keeps the encoder's weights channels-last (oneDNN's fast layout): same chunks."""
    convolutions = [m for m in runtime.policy.diffusion.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convolutions)
    history = frames(2, seed=3)
    noise = torch.randn((1, runtime.horizon, runtime.action_dim), generator=torch.Generator().manual_seed(1))
    runtime.forget_frames()
    fast = runtime.predict_chunk(history, noise=noise)
    runtime.channels_last_encoder(False)
    try:
        assert not convolutions[0].weight.is_contiguous(memory_format=torch.channels_last)
        runtime.forget_frames()
        np.testing.assert_allclose(fast, runtime.predict_chunk(history, noise=noise), **TOLERANCE)
    finally:
        runtime.channels_last_encoder(True)
        runtime.forget_frames()


def test_a_changed_frame_is_encoded_again(runtime):
    history = frames(2, seed=2)
    noise = torch.randn((1, runtime.horizon, runtime.action_dim), generator=torch.Generator().manual_seed(1))
    runtime.predict_chunk(history, noise=noise)
    changed = [dict(obs) for obs in history]
    changed[1]["observation.images.front"] = changed[1]["observation.images.front"].copy()
    changed[1]["observation.images.front"][0, 0, 0] ^= 1  # one pixel
    misses = runtime.feature_cache.misses
    np.testing.assert_allclose(runtime.predict_chunk(changed, noise=noise), uncached(runtime, changed, noise),
                               **TOLERANCE)
    assert runtime.feature_cache.misses == misses + 1


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def feed(controller, t0, t1, rng, camera=True):
    for t in np.arange(t0, t1 + 1e-9, 0.02):
        controller.on_joint_state(t, np.zeros(3))
        if camera:
            for name in ("front", "wrist"):
                controller.on_image(f"observation.images.{name}", t, rng.integers(0, 255, (32, 32, 3), np.uint8))


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def test_the_controller_clears_the_cache_on_reset_and_on_a_camera_gap(runtime):
    clock, rng = Clock(), np.random.default_rng(3)
    runtime.forget_frames()
    robot = tiny_robot(cameras=("front", "wrist"), control_rate=10, command_rate=50, velocity_limit=100.0)
    controller = PolicyController(robot, runtime, node_controller_config(replan_steps=4, watchdog_timeout=0.2,
                                                                   transition="replace"), clock=clock)
    try:
        feed(controller, 99.7, 100.0, rng)
        controller.start()
        controller.step(clock.t)
        assert wait_for(lambda: controller.stats.chunks_produced == 1)
        assert len(runtime.feature_cache) == 4
        controller.reset()
        assert len(runtime.feature_cache) == 0
        clock.t = 100.3   # samples arrive when they are fed: none stamped after its arrival (a clock ahead)
        feed(controller, 100.02, 100.3, rng)
        # stepped until the fresh history gives a chunk
        assert wait_for(lambda: controller.step(clock.t) is None and controller.stats.chunks_produced == 2
                        or controller.stats.chunks_produced == 2), controller.reason
        assert len(runtime.feature_cache) == 4
        for t in np.arange(100.32, 100.7, 0.02):  # the cameras go silent until the watchdog trips
            clock.t = t
            feed(controller, t - 0.019, t, rng, camera=False)
            controller.step(t)
            if controller.stats.watchdog_trips:
                break
        assert controller.stats.watchdog_trips == 1 and len(runtime.feature_cache) == 0
    finally:
        controller.close()
