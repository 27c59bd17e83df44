"""policy_node's parameters (config/policy.yaml, `dp-ros run-policy` options)."""
from dp_ros.core.choices import SAMPLERS, PlanPublishing, StampSource, Transition, values
from dp_ros.node_params.declaration import NodeParameters, Param
from dp_ros.robot_interface import COMMAND_TYPES, TRAJECTORY_MODES

HEADER = """\
Parameters of dp_ros's policy_node, with their defaults (`dp-ros params policy_node` prints this file).
  ros2 launch dp_ros policy.launch.py params_file:=<this file> checkpoint:=<dir>
  dp-ros run-policy --checkpoint <dir> --params-file <this file>"""

POLICY = NodeParameters("policy_node", [
    Param("checkpoint", "", "LeRobot checkpoint folder: pretrained_model/ with config.json, model.safetensors and "
          "the saved pre/post-processors (or a training run's output folder); required", option=True),
    Param("robot_config", "", "robot interface YAML; empty = dp_ros's config/robot.yaml", option=True),
    Param("device", "auto", "auto (CUDA when present), cpu or cuda[:N]", option=True),

    Param("noise_scheduler", "", "sampler; empty = the one the checkpoint records (a distilled student: "
          "consistency), else sde-dpmsolver++ with 5 steps (the fastest that kept the demo's success; LeRobot's DDPM-100 "
          "costs 14x more). Stochastic samplers (ddpm, sde-dpmsolver++, consistency) keep multimodal policies on one "
          "mode; see the README's 'which sampler to use'",
          choices=("",) + tuple(SAMPLERS), option=True, section="sampler"),
    Param("num_inference_steps", 0, "denoising steps per chunk; 0 = the recorded ones, else 5 (consistency: 2, "
          "at most 4)", minimum=0, option=True),
    Param("n_action_steps", 0, "actions used from each chunk; 0 = the checkpoint's n_action_steps", minimum=0,
          option=True),
    Param("seed", -1, "seed of the sampler's noise; -1 = random", minimum=-1),

    Param("replan_steps", -1, "request the next chunk when this many planned actions remain; -1 = n_action_steps "
          "// 2. Raise it when inference is slow", minimum=-1, section="chunk execution"),
    Param("transition", Transition.GUIDED.value, "how a new chunk joins the plan: guided (the chunk is sampled as "
          "a continuation of the plan: actions due before it arrives are pinned to the plan, the rest of the overlap "
          "is guided towards it; real-time chunking for Diffusion Policy), blend (cross-fade), ensemble (temporal "
          "ensembling) or replace (switch at once). guided keeps to one solution at any delay (90% on the demo's "
          "task with +300 ms where the others reach 33-48%); see the README's transition benchmark",
          choices=values(Transition)),
    Param("blend_steps", 4, "blend: actions over which the plan moves from the old chunk to the new", minimum=1),
    Param("blend_max_deviation", 0.15, "blend: a chunk that differs from the plan by more than this (rad or m) "
          "anywhere in the overlap is another solution of a multimodal task and replaces the plan instead of being "
          "averaged with it", above=0.0),
    Param("ensemble_decay", 0.1, "ensemble: older predictions weigh exp(-ensemble_decay * age)", minimum=0.0),
    Param("late_margin", 0.0, "actions due within this many seconds of a chunk's arrival count as late too",
          minimum=0.0),
    Param("delay_margin", 0.05, "guided: seconds added to a chunk's expected delay (the longest measured from "
          "observation to merge over the last 10 chunks); the plan's actions due before then are pinned",
          minimum=0.0),
    Param("guidance_gradient_steps", 2, "guided: besides inpainting (before every network call the plan, noised "
          "to the step, replaces the known part of the sample), this many denoising steps after the first also "
          "get RTC's guidance on the predicted clean sample (about two network calls each); 0 = inpainting only",
          minimum=0),
    Param("guidance_max_weight", 5.0, "guided: largest weight of the clean-sample guidance (RTC's beta)",
          minimum=0.0),

    Param("watchdog_timeout", 0.0, "seconds of silence of a camera or the joint states after which commanding "
          "stops (one last command brings the arm to rest); 0 = two control periods from the newest sample to the "
          "last command's arrival (2/control_rate - 2/command_rate), stretched to 1.5 times the usual longest gap "
          "(90th percentile) of a sensor slower or more uneven than that", minimum=0.0, section="safety"),
    Param("velocity_scale", 1.0, "fraction (0, 1] of the robot interface's velocity (and acceleration) limits "
          "commands may use", above=0.0),
    Param("trajectory_lead_time", 0.0, "joint_trajectory: seconds after the controller takes a trajectory at "
          "which its first point is reached (the plan at that time); the planned actions follow at their own "
          "times; 0 = one policy step (1/control_rate)", minimum=0.0),
    Param("timing_margin", 0.02, "seconds by which the controller may take a command earlier or later than "
          "expected (its update period plus the spread of the delivery delay); the first segment of each command "
          "keeps that much motion in reserve (twice as much with interpolate_from: desired)", minimum=0.0),

    Param("autostart", True, "configure and activate the lifecycle node at start (command the robot as soon as "
          "warm-up is done); false = configure only, then wait for the lifecycle transition activate",
          option="--no-autostart", section="behaviour"),
    Param("warmup_runs", 2, "inference runs before reporting ready, so the first real chunk is fast", minimum=0),
    Param("stamp_source", StampSource.HEADER.value, "time of a sensor message: header (its stamp) or receive "
          "(arrival time)", choices=values(StampSource)),
    Param("publish_plan", PlanPublishing.ON_DEMAND.value, "~/plan (the executing plan as a JointTrajectory), "
          "~/chunks (each chunk: observation stamp, compute time, pinned span, late actions) and "
          "~/safety_interventions: on_demand = "
          "each message is built only while someone subscribes to its topic; always = also without subscribers "
          "(a recorder that subscribes late misses nothing); off = no such topics",
          choices=values(PlanPublishing)),
    Param("status_rate", 5.0, "PolicyStatus messages per second on ~/status (diagnostics at 1 Hz)", above=0.0),
    Param("inference_threads", 0, "torch CPU threads for inference; 0 = all cores but one", minimum=0),
    Param("command_priority", 50, "SCHED_FIFO priority of the command loop thread, so inference cannot delay its "
          "ticks (needs root or CAP_SYS_NICE; refused = normal scheduling, logged); 0 = normal scheduling",
          minimum=0),

    Param("sensor_qos", "sensor_data", "camera and joint-state subscriptions: sensor_data (best effort) or "
          "reliable", choices=("sensor_data", "reliable"), section="topics and QoS"),
    Param("command_qos_depth", 10, "queue depth of the (reliable) command publisher", minimum=1),
    Param("command_type", "", "override the robot interface's command.type; empty = the robot interface's",
          choices=("",) + COMMAND_TYPES),
    Param("trajectory_mode", "", "override command.trajectory_mode; empty = the robot interface's",
          choices=("",) + TRAJECTORY_MODES),
])


def controller_config(params: dict, n_action_steps: int):
    """The controller's behaviour from the node's parameters (ControllerConfig's fields share their names)."""
    from dataclasses import fields

    from dp_ros.core.controller_config import ControllerConfig

    values = {f.name: params[f.name] for f in fields(ControllerConfig)}
    if values["replan_steps"] < 0:
        values["replan_steps"] = max(1, n_action_steps // 2)
    return ControllerConfig(**values)
