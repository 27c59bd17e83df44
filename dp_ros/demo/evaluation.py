"""Stage 3 of the demo: the trained policy in closed loop, episode by episode, and what each episode shows."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dp_ros.core.choices import SamplerChoice
from dp_ros.demo.client import POLICY, DemoClient
from dp_ros.demo.pipeline import DemoSettings, reset_task, robot_args, wait_episode_end
from dp_ros.demo.processes import ProcessGroup
from dp_ros.demo.views import EpisodeViews
from dp_ros.robot_interface import RobotInterface


@dataclass
class EpisodeResult:
    index: int
    seed: int
    success: bool
    collided: bool
    solution: str
    episode_time: float
    """Seconds to success, or until the episode ended."""
    final_distance: float
    chunks: int
    actions_dropped_late: int
    inference_times: list[float]
    command_rate: float
    tip_path: list[list[float]] = field(default_factory=list)
    joint_times: list[float] = field(default_factory=list)
    joint_positions: list[list[float]] = field(default_factory=list)
    target: list[float] = field(default_factory=list)
    commands_judged: int = 0
    """Commands the simulator received in this episode, judged as the robot's controller executes them."""
    limit_violations: int = 0
    """Of those, the ones that broke a position, velocity or acceleration limit."""
    worst_velocity_ratio: float = 0.0
    """Largest executed speed over the velocity limit so far in the evaluation (1 = at the limit)."""
    view: str = ""
    """The episode's saved view (.rrd, relative to the demo's output; `dp-ros view` opens it), '' without one."""


# --- 3. evaluate -------------------------------------------------------------------------------
def evaluate(settings: DemoSettings, robot: RobotInterface, checkpoint: Path, bar_factory) -> list[EpisodeResult]:
    from dp_ros.sim.kinematics import SceneGeometry, load_model
    from dp_ros.sim.task import TaskConfig, TaskInstance

    sampler = SamplerChoice.parse(settings.sampler)
    geometry = SceneGeometry.from_model(load_model())
    to_arm = [robot.joint_names.index(n) for n in _arm_joints()]
    results: list[EpisodeResult] = []
    eval_seed = settings.seed + 10_000  # task instances never seen in training
    with ProcessGroup(settings.logs) as processes:
        processes.start("eval_sim", ["sim", "--seed", str(eval_seed), *robot_args(settings)])
        processes.start("policy", ["run-policy", "--checkpoint", str(checkpoint), "--no-autostart",
                                   *(["--noise-scheduler", sampler.name] if sampler.name else []),
                                   *(["--num-inference-steps", str(sampler.steps)] if sampler.steps else []),
                                   "--device", settings.device, "--param", "status_rate=20.0",
                                   *[a for p in settings.policy_params for a in ("--param", p)],
                                   *robot_args(settings)])
        client = DemoClient(robot)
        views = EpisodeViews(robot, settings.output)
        try:
            client.wait_for(lambda: client.task_status is not None and client.policy_status is not None
                            and client.policy_status.state_name == "idle", 300,
                            "the simulator and the policy node to start", check=processes.check_alive)
            with bar_factory(total=settings.eval_episodes, desc="3/3 closed loop", unit="episode") as bar:
                for index in range(settings.eval_episodes):
                    episode = reset_task(client, processes.check_alive)
                    seed = client.task_status.seed
                    client.call(f"{POLICY}/reset")
                    before, task_before = client.policy_status, client.task_status
                    first_status = len(client.policy_statuses)
                    client.joint_trace = []
                    client.trace_joints = True
                    views.begin(index)
                    client.change_state(POLICY, "activate")
                    status = wait_episode_end(client, episode, 5.0, processes.check_alive)
                    client.change_state(POLICY, "deactivate")
                    client.trace_joints = False
                    after = client.policy_status
                    statuses = client.policy_statuses[first_status:]
                    result = _episode_result(index, seed, status, before, after, statuses, client.joint_trace,
                                             geometry, to_arm, TaskInstance.sample(seed, geometry, TaskConfig()))
                    _judged_commands(client, result, task_before, processes.check_alive)
                    result.view = views.end(index)
                    results.append(result)
                    bar.update(1)
                    done = sum(r.success for r in results)
                    bar.set_postfix(success=f"{done}/{len(results)}",
                                    left=sum(r.solution == "left" for r in results if r.success),
                                    right=sum(r.solution == "right" for r in results if r.success))
        finally:
            views.close()
            client.close()
    return results


def _judged_commands(client: DemoClient, result: EpisodeResult, before, check) -> None:
    """The simulator's judgement of this episode's commands (the stop's included: wait for a fresh status)."""
    stopped = time.monotonic()
    client.wait_for(lambda: client.task_status_time > stopped + 0.15, 5.0, "the simulator's status", check=check)
    after = client.task_status
    result.commands_judged = int(after.commands_received - before.commands_received)
    result.limit_violations = int(after.limit_violations - before.limit_violations)
    result.worst_velocity_ratio = float(after.worst_velocity_ratio)


def _arm_joints():
    from dp_ros.sim.kinematics import ARM_JOINTS

    return ARM_JOINTS


def _episode_result(index, seed, status, before, after, statuses, trace, geometry, to_arm, task) -> EpisodeResult:
    import numpy as np

    inference = []
    previous = before.chunks_produced
    for s in statuses:
        if s.chunks_produced > previous:
            inference.append(float(s.last_inference_time))
            previous = s.chunks_produced
    rates = [s.command_rate for s in statuses if s.state_name == "running"]
    start = trace[0][0] if trace else 0.0
    joints = [p.tolist() for _, p in trace]
    tips = [geometry.forward(np.asarray(p)[to_arm]).tolist() for _, p in trace[::5]]
    return EpisodeResult(
        index=index, seed=seed, success=bool(status.success), collided=bool(status.collided),
        solution=status.solution, episode_time=float(status.episode_time), final_distance=float(status.distance),
        chunks=int(after.chunks_produced - before.chunks_produced),
        actions_dropped_late=int(after.actions_dropped_late - before.actions_dropped_late),
        inference_times=inference, command_rate=float(np.median(rates)) if rates else 0.0,
        tip_path=tips, joint_times=[t - start for t, _ in trace], joint_positions=joints,
        target=list(task.target))


def results_to_json(results: list[EpisodeResult]) -> list[dict]:
    return [asdict(r) for r in results]
