"""Python packaging of dp_ros, for colcon (ament_python) and for pip."""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "dp_ros"


def pinned(requirements_file: str) -> list[str]:
    """The pins of a requirements file (each version is pinned in exactly one of them)."""
    path = Path(__file__).parent / requirements_file
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


setup(
    name=PACKAGE,
    version="0.1.0",
    description="LeRobot Diffusion Policy from demonstrations to a moving ROS 2 robot",
    license="Apache-2.0",
    python_requires=">=3.12",  # LeRobot 0.6.1 needs 3.12 (README: ROS 2 Humble and other distributions)
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["sim/assets/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/msg", glob("msg/*.msg")),
        (f"share/{PACKAGE}/urdf", glob("urdf/*.xacro")),
        (f"share/{PACKAGE}/worlds", glob("worlds/*.sdf")),
    ],
    install_requires=["setuptools"],
    # the viewer (`dp-ros view`) is optional: pip install .[view]; no node needs it
    extras_require={"view": pinned("requirements-view.txt")},
    zip_safe=False,
    maintainer="dp_ros maintainers",
    maintainer_email="maintainers@dp-ros.dev",
    entry_points={
        "console_scripts": [
            # each checks the installed LeRobot first (dp_ros/entry_points.py)
            "dp-ros = dp_ros.entry_points:dp_ros",
            "policy_node = dp_ros.entry_points:policy_node",
            "train_node = dp_ros.entry_points:train_node",
            "recorder_node = dp_ros.entry_points:recorder_node",
            "bag2lerobot = dp_ros.entry_points:bag2lerobot",
            "sim_node = dp_ros.entry_points:sim_node",
            "expert_node = dp_ros.entry_points:expert_node",
        ],
    },
)
