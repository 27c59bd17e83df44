"""Which policy_node parameters may change while the node is configured (``ros2 param set``), and why the others
may not. The node's lifecycle: *configure* reads every parameter (checkpoint, robot, warm-up, controller,
topics); the parameters of :data:`LIVE` may change at any time after that and take effect at the next chunk."""
from __future__ import annotations

from dp_ros.node_params.policy import POLICY

SAMPLER = ("noise_scheduler", "num_inference_steps")
"""The sampler of the next chunk (the policy runtime's)."""
CONTROLLER = ("transition", "delay_margin", "guidance_gradient_steps", "guidance_max_weight", "velocity_scale")
"""The controller's (dp_ros.core.live_settings.LiveSettings.NAMES)."""
LIVE = SAMPLER + CONTROLLER
LOWER_ONLY = ("velocity_scale",)
"""Live only when lowered (a tighter limit); a looser one is read at configure."""
STAGES = ("unconfigured", "inactive", "active", "finalized")


def change_refusal(name: str, stage: str) -> str | None:
    """Why parameter ``name`` cannot change while the node is ``stage`` (one of STAGES), or None if it may (a
    LOWER_ONLY parameter still has to be lower: the controller checks that)."""
    if stage not in STAGES:
        raise ValueError(f"unknown lifecycle stage {stage!r}")
    if name not in POLICY or name in LIVE or stage == "unconfigured":
        return None
    if name == "autostart":
        return ("autostart acts only when the node starts; drive the lifecycle instead "
                "(ros2 lifecycle set /policy_node activate|deactivate)")
    return (f"{name} is read when the node is configured: deactivate and clean up the node, set it, then configure "
            f"and activate again; changeable while configured: {', '.join(LIVE)} (velocity_scale only lower)")


def checked_changes(values: dict, stage: str) -> dict:
    """``values`` (name: value as set) converted and checked as a whole, only those of policy_node; raises
    ParameterError (a bad value) or ValueError (a change refused now), with the reason, before anything changes."""
    changes = {}
    for name, value in values.items():
        if name not in POLICY:
            continue
        changes[name] = POLICY[name].convert(value)
        refusal = change_refusal(name, stage)
        if refusal:
            raise ValueError(refusal)
    return changes
