"""A stand-in for Ubuntu 24.04 with ROS 2 Jazzy from apt, made from the test suite's own environment.

There is no ROS 2 package repository (nor a container engine) on the development and CI machines,
so the ROS 2 workspace route of README is run against three parts built here from what `make setup`
installed into the suite's venv, each by symbolic links (seconds, no download, no copy):

- ``system_python``: the system's Python: a second installation prefix of the very CPython the
  venv was made from (its executable copied, its standard library linked), with its own
  site-packages holding what apt's python3-* packages bring on Ubuntu (colcon, catkin_pkg, empy,
  lark, ...): the non-ROS part of requirements-ros.txt's dependency closure. A venv created from
  it with ``--system-site-packages`` sees exactly that, as on Ubuntu.
- ``ros_prefix``: ``/opt/ros/jazzy``: the ROS 2 Jazzy wheels of requirements-ros.txt (their Python
  packages in ``lib/python3.12/site-packages``, their libraries, CMake files and ament index in
  ``lib``, ``share``, ``include``) and a ``setup.bash`` that exports what ROS's does.
- ``workspace_packages``: what ``pip install -r requirements.txt`` puts into the workspace venv:
  the dependency closure of requirements.txt (LeRobot, torch, numpy, ...), as top-level links and
  console scripts written the way pip writes them. A real install downloads about 3 GB.

Console scripts of the suite's venv are never linked: their first line names its interpreter.
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(sysconfig.get_paths()["purelib"])  # the suite's venv
PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"


@functools.cache
def _installed() -> dict[str, metadata.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(SITE)])}


@functools.cache
def _files(name: str) -> tuple[Path, ...]:
    """The files of installed distribution ``name``, relative to site-packages (its RECORD, read once)."""
    return tuple(Path(f) for f in _installed()[name].files or [])


def dependency_closure(requirement_file: Path) -> set[str]:
    """Every installed distribution that pip would install for ``requirement_file``."""
    installed = _installed()
    lines = [line.split("#", 1)[0].strip() for line in requirement_file.read_text().splitlines()]
    todo = [Requirement(line) for line in lines if line]
    extras_of: dict[str, set[str]] = {}
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in extras_of and extras <= extras_of[name]:
            continue
        extras_of[name] = extras_of.get(name, set()) | extras
        for text in installed[name].requires or []:
            dependency = Requirement(text)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e})
                                                for e in extras_of[name] | {""}):
                todo.append(dependency)
    return set(extras_of)


def split_requirements() -> dict[str, set[str]]:
    """The suite's distributions by where a workspace machine has them: workspace venv, ROS, system."""
    workspace = dependency_closure(ROOT / "requirements.txt") - {"pip"}  # pip: every venv has its own
    pip_route = dependency_closure(ROOT / "requirements-ros.txt") - workspace - {"pip"}
    ros = {name for name in pip_route if name.startswith("ros-") or name == "cv-bridge"}  # ros-jazzy-cv-bridge on apt
    return {"workspace": workspace, "ros": ros, "system": pip_route - ros}


def _top_levels(name: str) -> set[str]:
    return {f.parts[0] for f in _files(name) if f.parts[0] not in ("..", "__pycache__")}


def _link_top_levels(names: set[str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for top in sorted(set().union(*(_top_levels(n) for n in names))):
        (target / top).symlink_to(SITE / top)


def check_sides_do_not_share_files(sides: dict[str, set[str]]) -> None:
    """A top-level module owned on two sides would be importable twice in the stand-in."""
    owner = {}
    for side, names in sides.items():
        for top in set().union(*(_top_levels(n) for n in names)):
            assert owner.setdefault(top, side) == side, f"{top} belongs to {owner[top]} and {side}"


def system_python(dest: Path, packages: set[str]) -> Path:
    """A Python installation at ``dest`` with ``packages`` in its site-packages; returns its python3."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(Path(sys._base_executable).resolve(), dest / "bin" / PYTHON)
    (dest / "bin" / "python3").symlink_to(PYTHON)
    (dest / "lib" / PYTHON).mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages"):
            (dest / "lib" / PYTHON / entry.name).symlink_to(entry)
    (dest / "include").symlink_to(Path(sysconfig.get_paths()["include"]).parent)
    python = dest / "bin" / "python3"
    site = subprocess.run([str(python), "-I", "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True, env={}).stdout.strip()
    assert Path(site).is_relative_to(dest), f"{python} is not a Python installation of its own: {site}"
    _link_top_levels(packages, Path(site))
    return python


def ros_prefix(dest: Path, packages: set[str], distro: str = "jazzy") -> Path:
    """An /opt/ros/<distro> made of the ROS wheels ``packages``; returns its setup.bash."""
    site = dest / "lib" / PYTHON / "site-packages"
    _link_top_levels(packages, site)
    prefix = SITE.parent.parent.parent  # wheels install their data files (lib, share, include) there
    for name in packages:
        for f in _files(name):
            relative = Path(os.path.normpath(SITE / f)).relative_to(prefix)
            if f.parts[0] == ".." and relative.parts[0] != "bin" and not (dest / relative).is_symlink():
                (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                (dest / relative).symlink_to(prefix / relative)
    (dest / "bin").mkdir(exist_ok=True)
    wheel_libraries = ":".join(str(p) for p in sorted(site.glob("ros_*.libs")))
    setup = dest / "setup.bash"
    setup.write_text(f"""# stand-in for /opt/ros/{distro}/setup.bash: the variables it sets
export ROS_DISTRO={distro} ROS_VERSION=2 ROS_PYTHON_VERSION=3
export AMENT_PREFIX_PATH={dest}${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}
export CMAKE_PREFIX_PATH={dest}${{CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}}
export PYTHONPATH={site}${{PYTHONPATH:+:$PYTHONPATH}}
export LD_LIBRARY_PATH={dest / 'lib'}:{wheel_libraries}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}
export PATH={dest / 'bin'}:$PATH
""")
    return setup


def workspace_packages(dest: Path, packages: set[str], venv: Path) -> tuple[Path, Path]:
    """What pip installs for ``packages`` into ``venv``: site-packages links and console scripts."""
    installed = _installed()
    _link_top_levels(packages, dest / "site-packages")
    scripts = dest / "bin"
    scripts.mkdir(parents=True)
    for name in packages:
        for entry in installed[name].entry_points.select(group="console_scripts"):
            script = scripts / entry.name
            script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom {entry.module} import {entry.attr.split('.')[0]}\n"
                              f"if __name__ == '__main__':\n    sys.exit({entry.attr}())\n")
            script.chmod(0o755)
    return dest / "site-packages", scripts


def clean_environment(home: Path, system_bin: Path) -> dict[str, str]:
    """A login-like environment: no venv, no ROS, no library path from the suite's own set-up."""
    keep = ("LANG", "LC_ALL", "TERM", "ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "HF_HUB_OFFLINE",
            "HF_DATASETS_OFFLINE", "WANDB_MODE", "MUJOCO_GL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=str(home), PATH=f"{system_bin}:/usr/local/bin:/usr/bin:/bin")
    return env
