#!/usr/bin/env bash
# Build the dp_ros_msgs interface package from msg/ with the CMake modules that
# the ROS 2 Jazzy wheels install, and install it into a virtual environment:
# the Python package lands in <venv>/lib/python3.12/site-packages, the libraries
# in <venv>/lib (which the wheels' start-up hook puts on LD_LIBRARY_PATH).
#   usage: tools/build_msgs.sh <venv> [build-dir]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${1:?usage: build_msgs.sh <venv> [build-dir]}" && pwd)"
BUILD="${2:-$ROOT/build/dp_ros_msgs}"

rm -rf "$BUILD"
mkdir -p "$BUILD"
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV"
cmake -S "$ROOT/dp_ros_msgs" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$VENV" \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" \
    -DCMAKE_PROJECT_INCLUDE="$ROOT/tools/wheel_include_fix.cmake" \
    -DBUILD_TESTING=OFF > "$BUILD/configure.log" 2>&1 \
    || { tail -40 "$BUILD/configure.log" >&2; echo "dp_ros_msgs: CMake configure failed (log: $BUILD/configure.log)" >&2; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" > "$BUILD/build.log" 2>&1 \
    || { tail -40 "$BUILD/build.log" >&2; echo "dp_ros_msgs: build failed (log: $BUILD/build.log)" >&2; exit 1; }
cmake --install "$BUILD" > "$BUILD/install.log" 2>&1 \
    || { tail -20 "$BUILD/install.log" >&2; echo "dp_ros_msgs: install failed" >&2; exit 1; }
"$VENV/bin/python" -c 'from dp_ros_msgs.msg import PolicyStatus, TrainingStatus, RecorderStatus, TaskStatus, PolicyChunk, SafetyIntervention' \
    || { echo "dp_ros_msgs: built, but the messages do not import from $VENV" >&2; exit 1; }
echo "dp_ros_msgs: built and installed into $VENV"
