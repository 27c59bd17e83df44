"""README's ROS 2 workspace commands, and the Dockerfile's, as lists of shell commands.

The block after README's ``<!-- workspace-commands`` marker is the one description of how a ROS 2
workspace is built: test_colcon_build.py runs it, test_dockerfile.py checks that the Dockerfile
says the same thing in its own idioms (CONTAINER_IDIOMS).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- workspace-commands"
WORKSPACE = "~/dp_ws"
CONTAINER_HOME = "/root"
# Dockerfile instructions that do what these README commands do.
CONTAINER_IDIOMS = {
    f"WORKDIR {CONTAINER_HOME}/dp_ws": [f"mkdir -p {WORKSPACE}/src", f"cd {WORKSPACE}"],
    "COPY . src/dp_ros": ["git clone <this repository> src/dp_ros"],
}
# Commands a Docker layer needs and a user's machine does not (package lists, rosdep's database).
CONTAINER_HOUSEKEEPING = {"apt-get update", "rm -rf /var/lib/apt/lists/*", "rosdep update"}


def split_commands(script: str) -> list[str]:
    """Shell lines to single commands: comments dropped, ``&&`` chains split, ``sudo`` removed."""
    commands = []
    for line in script.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line)
        for command in line.split("&&"):
            command = command.strip()
            if command:
                commands.append(command.removeprefix("sudo "))
    return commands


def readme_commands(readme: Path = ROOT / "README.md") -> list[str]:
    text = readme.read_text()
    assert MARKER in text, f"{readme} has no {MARKER} block"
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER):], re.S)
    return split_commands(block.group(1))


def dockerfile_instructions(dockerfile: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    instructions, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"{dockerfile} ends in a continuation line"
    return instructions


def dockerfile_commands(instructions: list[tuple[str, str]]) -> list[str]:
    """The Dockerfile as the shell commands of one login: what it runs, in README's terms.

    Each RUN is a fresh shell in Docker, so it sources again what README's single shell
    sourced once: a repeated ``source`` is dropped. The entry point's ``exec "$@"`` runs CMD.
    """
    cmd = dict(instructions).get("CMD")
    commands = []
    for keyword, arguments in instructions:
        if f"{keyword} {arguments}" in CONTAINER_IDIOMS:
            commands += CONTAINER_IDIOMS[f"{keyword} {arguments}"]
        elif keyword == "RUN":
            commands += split_commands(arguments)
        elif keyword == "ENTRYPOINT":
            shell, flag, script, *_ = json.loads(arguments)
            assert (shell, flag) == ("/bin/bash", "-c"), arguments
            commands += [" ".join(json.loads(cmd)) if c == 'exec "$@"' else c for c in split_commands(script)]
    commands = [c.replace(f"{CONTAINER_HOME}/dp_ws/", "").replace(f"{CONTAINER_HOME}/", "~/") for c in commands]
    sourced, result = set(), []
    for command in commands:
        if command in CONTAINER_HOUSEKEEPING or command in sourced:
            continue
        if command.startswith("source "):
            sourced.add(command)
        result.append(command)
    return result
