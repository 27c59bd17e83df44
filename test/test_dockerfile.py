"""The Dockerfile builds README's ROS 2 workspace on the official ros:jazzy image.

No container engine runs on the development or CI machines (`docker` there is a client without a
daemon), so the image is not built here: the file is linted with hadolint, its commands are compared
with README's workspace block, and test_colcon_build.py runs that block.
"""
import subprocess
import sys
from pathlib import Path

from workspace_commands import (CONTAINER_HOUSEKEEPING, CONTAINER_IDIOMS, ROOT, dockerfile_commands,
                                dockerfile_instructions, readme_commands)

HADOLINT = Path(sys.executable).parent / "hadolint"


def test_dockerfile_runs_the_readme_workspace_commands_in_order():
    assert dockerfile_commands(dockerfile_instructions()) == readme_commands()


def test_dockerfile_starts_from_the_official_jazzy_image_with_bash():
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    assert instructions[0] == ("FROM", "ros:jazzy")
    assert keywords.count("FROM") == 1
    assert ("SHELL", '["/bin/bash", "-o", "pipefail", "-c"]') in instructions, "README's commands are bash"
    assert keywords.index("SHELL") < keywords.index("RUN")
    assert set(keywords) <= {"FROM", "ARG", "ENV", "SHELL", "RUN", "WORKDIR", "COPY", "ENTRYPOINT", "CMD"}
    for keyword, arguments in instructions:
        if keyword in ("WORKDIR", "COPY"):
            assert f"{keyword} {arguments}" in CONTAINER_IDIOMS, f"{keyword} {arguments} has no README equivalent"


def test_container_idioms_stand_for_readme_commands():
    readme = readme_commands()
    for commands in CONTAINER_IDIOMS.values():
        assert all(c in readme for c in commands), commands
    assert not CONTAINER_HOUSEKEEPING & set(readme)


def test_dockerignore_keeps_build_products_and_the_pip_route_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "build", "install", "log"} <= ignored


def test_hadolint_passes():
    result = subprocess.run([str(HADOLINT), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_a_real_linter(tmp_path):
    """The lint above can fail: an unpinned base image and sudo in a RUN step are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN sudo apt-get install -y git\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3004" in result.stdout
