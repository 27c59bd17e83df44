"""Child processes of the demo (simulator, recorder, policy node), each with its own log file.

Started as argument lists (no shell); stopped with SIGINT so nodes shut down
cleanly, then SIGKILL if they do not; their output goes to a log file whose
tail is shown when a process dies unexpectedly.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class DemoProcessError(RuntimeError):
    """A demo process exited when it should be running (the message holds its last log lines)."""


class DemoProcess:
    def __init__(self, name: str, args: list[str], log_dir: Path):
        self.name = name
        self.args = [sys.executable, "-m", "dp_ros.cli.main", *args]
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise DemoProcessError(f"{self.name} exited with code {self.proc.returncode}; its log "
                                     f"({self.log_path}) ends with:\n{self.tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class ProcessGroup:
    """Processes that live together and are stopped together (in reverse order)."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.processes: list[DemoProcess] = []

    def start(self, name: str, args: list[str]) -> DemoProcess:
        process = DemoProcess(name, args, self.log_dir)
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):
            process.stop()
