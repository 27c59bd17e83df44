#!/usr/bin/env bash
# One-command set-up of dp_ros for the pip route (no ROS install needed):
#   system packages (apt-get, only when missing) -> .venv with Python 3.12 ->
#   the pinned requirement files (requirements.txt: LeRobot, torch, data; requirements-ros.txt:
#   ROS 2 Jazzy wheels and build tools; requirements-test.txt; requirements-view.txt: the optional viewer) -> dp_ros_msgs built with the
#   wheels' CMake -> dp_ros editable.
# Every step is skipped when its inputs have not changed, so a second run is quick.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DP_ROS_VENV:-$ROOT/.venv}"
cd "$ROOT"

say() { printf '\033[1m[dp_ros setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[dp_ros setup] error:\033[0m %s\n' "$*" >&2; exit 1; }
digest() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [ -f "$VENV/.dp_ros_$1" ] && [ "$(cat "$VENV/.dp_ros_$1")" = "$2" ]; }
stamp_set() { echo "$2" > "$VENV/.dp_ros_$1"; }

find_python312() {
    local candidates=()
    [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
    candidates+=(python3.12)
    if command -v pyenv >/dev/null 2>&1; then
        for d in "$(pyenv root)"/versions/3.12*/bin/python3.12; do candidates+=("$d"); done
    fi
    candidates+=(/usr/bin/python3.12 /usr/local/bin/python3.12)
    for c in "${candidates[@]}"; do
        if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            command -v "$c" 2>/dev/null || echo "$c"
            return 0
        fi
    done
    return 1
}

# --- 1. system packages ------------------------------------------------------
apt_missing=()
command -v g++ >/dev/null 2>&1 || apt_missing+=(g++)
command -v make >/dev/null 2>&1 || apt_missing+=(make)
ldconfig -p 2>/dev/null | grep -q 'libOSMesa.so' || apt_missing+=(libosmesa6)   # MuJoCo offscreen rendering
ldconfig -p 2>/dev/null | grep -q 'libavutil.so' || apt_missing+=(ffmpeg)        # torchcodec decodes LeRobot videos with it
# a real browser for the test of `dp-ros view` (requirements-view.txt), headless
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
if [ ${#apt_missing[@]} -gt 0 ]; then
    say "installing system packages: ${apt_missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    command -v apt-get >/dev/null 2>&1 || die "missing ${apt_missing[*]} and no apt-get to install them; install them by hand"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_missing[@]}" >/dev/null \
        || die "apt-get could not install ${apt_missing[*]}"
fi

# --- 2. virtual environment with Python 3.12 ----------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    PY312="$(find_python312)" || die "Python 3.12 is required (LeRobot 0.6.1 and the ROS 2 Jazzy wheels need it) and none was found.
  Install it (Ubuntu 24.04: apt-get install python3.12 python3.12-venv; or: pyenv install 3.12)
  or point to it: make setup PYTHON=/path/to/python3.12"
    say "creating $VENV with $PY312"
    "$PY312" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
    || die "$VENV is not a Python 3.12 environment; remove it (rm -rf $VENV) and run make setup again"

# --- 3. pinned Python dependencies -------------------------------------------
REQUIREMENT_FILES=(requirements.txt requirements-ros.txt requirements-test.txt requirements-view.txt)
req_digest="$(digest "${REQUIREMENT_FILES[@]}")"
if ! stamp_ok requirements "$req_digest"; then
    say "installing pinned dependencies from ${REQUIREMENT_FILES[*]} (the first time downloads about 3 GB)"
    pip_args=()
    for file in "${REQUIREMENT_FILES[@]}"; do pip_args+=(-r "$file"); done
    # grep -v finds nothing to print when every pin is already satisfied: that is no error.
    "$VENV/bin/python" -m pip install "${pip_args[@]}" 2>&1 \
        | { grep -v -E '^(Requirement already satisfied|WARNING: Location .* is ignored)' || true; } \
        || die "pip could not install ${REQUIREMENT_FILES[*]} (see above)"
    stamp_set requirements "$req_digest"
fi

# --- 4. dp_ros_msgs, built from msg/ with the wheels' CMake --------------------
msgs_digest="$(digest msg/*.msg dp_ros_msgs/CMakeLists.txt dp_ros_msgs/package.xml tools/wheel_include_fix.cmake tools/build_msgs.sh)"
if ! stamp_ok msgs "$msgs_digest" || ! "$VENV/bin/python" -c 'import dp_ros_msgs.msg' >/dev/null 2>&1; then
    say "building dp_ros_msgs into $VENV"
    "$ROOT/tools/build_msgs.sh" "$VENV"
    stamp_set msgs "$msgs_digest"
fi

# --- 5. dp_ros itself, editable ------------------------------------------------
pkg_digest="$(digest setup.py setup.cfg package.xml)"
if ! stamp_ok package "$pkg_digest"; then
    say "installing dp_ros (editable)"
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . \
        || die "pip could not install dp_ros"
    stamp_set package "$pkg_digest"
fi
say "ready: $VENV (try: $VENV/bin/dp-ros doctor)"
