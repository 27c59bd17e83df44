# dp_ros in a ROS 2 Jazzy workspace, built the way README's "In a ROS 2 workspace" says:
# the system's ROS 2 (this image's /opt/ros/jazzy and rosdep) plus a --system-site-packages
# venv that adds only requirements.txt (LeRobot, torch, ...). test/test_dockerfile.py checks
# that the commands below are README's, in the same order, and lints this file.
#   docker build -t dp_ros:jazzy .
#   docker run --rm --network host dp_ros:jazzy                      # dp-ros doctor
#   docker run --rm -it --network host dp_ros:jazzy ros2 launch dp_ros policy.launch.py checkpoint:=...
FROM ros:jazzy

ARG DEBIAN_FRONTEND=noninteractive
# README's pip command as it is, without leaving pip's 3 GB download cache in the image.
ENV PIP_NO_CACHE_DIR=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Ubuntu's package versions move with its security updates: not pinned (DL3008).
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv libosmesa6 ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /root/dp_ws
COPY . src/dp_ros
RUN source /opt/ros/jazzy/setup.bash && apt-get update && rosdep update && rosdep install --from-paths src src/dp_ros/dp_ros_msgs --ignore-src -y && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv --system-site-packages .venv && touch .venv/COLCON_IGNORE
RUN source .venv/bin/activate && pip install -r src/dp_ros/requirements.txt
RUN source /opt/ros/jazzy/setup.bash && source .venv/bin/activate && python -m colcon build --base-paths src src/dp_ros/dp_ros_msgs

ENTRYPOINT ["/bin/bash", "-c", "source /opt/ros/jazzy/setup.bash && source /root/dp_ws/.venv/bin/activate && source /root/dp_ws/install/setup.bash && exec \"$@\"", "--"]
CMD ["ros2", "run", "dp_ros", "dp-ros", "doctor"]
