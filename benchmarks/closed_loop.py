"""The policy controller commanding the simulated arm in one process, in simulated time (no ROS).

The policy node's core (PolicyController: observation history, asynchronous chunk
requests, the transition, the safety filter) runs against SimEnvironment (MuJoCo,
the task's success and collision tests, the camera) in lock-step: joint states at
100 Hz and camera frames at 15 Hz are fed stamped with the simulated time, a command
is taken every 1/command_rate and executed as the robot interface's controller
executes it (a JointTrajectory for the demo's arm, or steps as a forward controller
takes them, each judged against the limits by the simulator as the ROS simulator
judges it). When an episode ends, the commands that bring the arm to rest are
executed and judged too (for steps, several: a stream that just ends stops at once). When the controller requests a chunk, simulated
time stops while it is computed; the chunk is then held until the simulation reaches
the observation time plus its compute time plus ``added_delay``, and merged then.
The compute time is the CPU time of the inference (one torch thread, as the policy
node uses on a 2-core machine), so other programs on a busy machine neither
lengthen the delays nor starve a camera or a command. Left
out: DDS transport (~0.4 ms here) and message conversion.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np


JOINT_STATE_RATE = 100.0
CAMERA_RATE = 15.0


def evaluation_seeds(run: int, episodes: int) -> list[int]:
    """The task instances `dp-ros demo` evaluates for ``--seed run`` (its simulator's seed sequence)."""
    draws = random.Random(run + 10_000)
    return [draws.randrange(0, 2**31 - 1) for _ in range(episodes + 1)][1:]


def tuning_seeds(run: int, episodes: int) -> list[int]:
    """Task instances for choosing settings: drawn from another sequence, and never one of the evaluation
    instances of runs 1-10 (checked)."""
    draws = random.Random(run + 20_000)
    evaluation = {s for r in range(1, 11) for s in evaluation_seeds(r, max(episodes, 20))}
    seeds = []
    while len(seeds) < episodes:
        seed = draws.randrange(0, 2**31 - 1)
        if seed not in evaluation:
            seeds.append(seed)
    return seeds


class DelaySchedule:
    """The delivery delay added to each chunk: a constant, or ``heavy``: log-normal around ``median`` seconds
    (sigma 0.5) with an ``outlier`` of 1 s every ``every`` chunks (a garbage-collector pause, a stalled driver)."""

    def __init__(self, spec: str, seed: int = 0, median: float = 0.15, outlier: float = 1.0, every: int = 20):
        self.spec = spec
        self.constant = None if spec == "heavy" else float(spec)
        self.rng = np.random.default_rng(seed)
        self.median, self.outlier, self.every = median, outlier, every
        self.count = 0

    def next(self) -> tuple[float, bool]:
        """The next chunk's added delay and whether it is an outlier."""
        self.count += 1
        if self.constant is not None:
            return self.constant, False
        if self.count % self.every == 0:
            return self.outlier, True
        return float(self.median * np.exp(0.5 * self.rng.standard_normal())), False


class SimulatedClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class HeldPredictor:
    """Computes a chunk at once, then holds it until the simulation reaches its arrival time."""

    def __init__(self, runtime, clock: SimulatedClock, added_delay: DelaySchedule):
        self.runtime = runtime
        self.clock = clock
        self.added_delay = added_delay
        self.n_obs_steps = runtime.n_obs_steps
        self.n_action_steps = runtime.n_action_steps
        self.future_steps = runtime.future_steps
        self.arrival: float | None = None
        self.compute_times: list[float] = []
        self.chunk_log: list[dict] = []
        """Per chunk: requested (simulated s), arrival, pinned span (s, guided), outlier (bool)."""
        self.period = 0.1
        self._released = threading.Event()

    def predict_chunk(self, history, guide=None):
        requested = self.clock()
        started = time.thread_time()
        chunk = self.runtime.predict_chunk(history) if guide is None else self.runtime.predict_chunk(history, guide=guide)
        compute = time.thread_time() - started
        self.compute_times.append(compute)
        self._released.clear()
        added, outlier = self.added_delay.next()
        self.arrival = requested + compute + added
        pinned = 0.0 if guide is None or guide.is_empty else guide.delay * self.period
        self.chunk_log.append({"requested": requested, "arrival": self.arrival, "pinned": pinned, "outlier": outlier})
        self._released.wait()
        return chunk

    def release(self) -> None:
        self.arrival = None
        self._released.set()


@dataclass
class Episode:
    seed: int
    success: bool
    collided: bool
    solution: str
    success_time: float | None
    chunks: int
    actions_dropped_late: int
    compute_times: list[float]
    underruns: int = 0
    """Command ticks at which the plan had run out."""
    limit_violations: int = 0
    """Commands whose execution the simulator judged to break a velocity or acceleration limit."""
    command_times: list[float] = field(default_factory=list)
    commands: list[list[float]] = field(default_factory=list)
    """The controller's set-point at each command tick: what the arm executes."""
    arrivals: list[float] = field(default_factory=list)
    """Simulated times at which chunks were merged (episode time)."""
    outlier_reactions: list[float] = field(default_factory=list)
    """After each delay outlier: seconds from its arrival until the arm executes an action chosen from an
    observation made after it (the next chunk's observation plus its pinned span)."""


class ClosedLoop:
    """One controller and one simulated arm; :meth:`episode` runs a task instance to its end."""

    def __init__(self, runtime, robot, config, added_delay: DelaySchedule | float = 0.0):
        from dp_ros.core.policy_controller import PolicyController
        from dp_ros.sim.environment import SimEnvironment

        self.robot = robot
        self.env = SimEnvironment(robot)
        self.clock = SimulatedClock()
        if not isinstance(added_delay, DelaySchedule):
            added_delay = DelaySchedule(str(added_delay))
        self.predictor = HeldPredictor(runtime, self.clock, added_delay)
        self.predictor.period = robot.control_period
        self.controller = PolicyController(robot, self.predictor, config, clock=self.clock)

    def close(self) -> None:
        self.controller.close()
        self.env.close()

    def _wait(self, condition) -> None:
        while not condition():
            time.sleep(0.0002)

    def _execute(self, command) -> None:
        """Hand a command to the simulated controller, as the simulator node does on receipt."""
        if command is None:
            return
        if self.controller.shaper.settings.form == "trajectory":
            self.env.command_trajectory(command.times_from_start, command.positions)
        else:
            self.env.command_step(command.target)

    def episode(self, seed: int) -> Episode:
        env, controller, predictor = self.env, self.controller, self.predictor
        env.reset(seed)
        controller.reset()
        stats = controller.stats
        before = stats.chunks_produced, stats.actions_dropped_late, stats.queue_underruns
        violations_before = env.commands.violations
        predictor.compute_times = []
        predictor.chunk_log = []
        record = Episode(seed, False, False, "", None, 0, 0, [])
        start = env.time
        next_joints = next_frame = next_command = env.time
        controller.start()
        while True:
            now = self.clock.now = env.time
            if now >= next_joints - 1e-9:
                controller.on_joint_state(now, env.joint_positions())
                next_joints += 1.0 / JOINT_STATE_RATE
            if now >= next_frame - 1e-9:
                for cam in self.robot.cameras:
                    controller.on_image(cam.feature, now, env.render(cam.name))
                next_frame += 1.0 / CAMERA_RATE
            if predictor.arrival is not None and now >= predictor.arrival - 1e-9:
                predictor.release()
                self._wait(lambda: not controller.inference_pending)
                record.arrivals.append(now - start)
            if now >= next_command - 1e-9:
                command = controller.step(now)
                if command is not None:
                    self._execute(command)
                    record.command_times.append(now - start)
                    record.commands.append(env.position_target().tolist())
                next_command += 1.0 / self.robot.command_rate
                # a chunk requested now is computed while simulated time stands still
                self._wait(lambda: predictor.arrival is not None or not controller.inference_pending)
            status = env.status()
            if status.success or status.collided or status.episode_time > status.time_limit:
                break
            env.step()
        controller.stop()
        while controller.inference_pending:  # a chunk still being computed is obsolete now
            if predictor.arrival is not None:
                predictor.release()
            time.sleep(0.0002)
        self._finish_stop(next_command)
        record.success, record.collided, record.solution = status.success, status.collided, status.solution
        record.success_time = status.success_time
        record.chunks = stats.chunks_produced - before[0]
        record.actions_dropped_late = stats.actions_dropped_late - before[1]
        record.underruns = stats.queue_underruns - before[2]
        record.limit_violations = env.commands.violations - violations_before
        record.compute_times = list(predictor.compute_times)
        record.outlier_reactions = outlier_reactions(predictor.chunk_log)
        return record


    def _finish_stop(self, next_command: float) -> None:
        """Execute the commands that bring the arm to rest, in this episode, at the command ticks after the episode
        ended: one trajectory, or steps while the controller brakes (a stream of steps that just ended would stop
        from full speed)."""
        env, controller = self.env, self.controller
        while True:   # from the next command tick on (a step now would share an update with the last one)
            env.step()
            self.clock.now = env.time
            if env.time >= next_command - 1e-9:
                self._execute(controller.step(env.time))
                next_command += 1.0 / self.robot.command_rate
                if not controller.shaper.braking:
                    return


def outlier_reactions(chunks: list[dict]) -> list[float]:
    """See Episode.outlier_reactions (outliers without a next chunk in the episode are left out)."""
    reactions = []
    for index, chunk in enumerate(chunks):
        if not chunk["outlier"]:
            continue
        after = [c for c in chunks[index + 1:] if c["requested"] >= chunk["arrival"] - 1e-9]
        if after:
            reactions.append(after[0]["requested"] + after[0]["pinned"] - chunk["arrival"])
    return reactions
