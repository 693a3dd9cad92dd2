#!/usr/bin/env bash
# Installs the project's pinned tools: Python tools (requirements.txt) into a venv and
# Node tools (tools/node/package-lock.json) into tools/node/node_modules. Each is
# reused when already installed from the same lock file, so running this again is cheap.
# Also what running the arm64 function here needs (scripts/test-arm64.sh): the Rust
# target aarch64-unknown-linux-gnu, and Debian's qemu-user-static and libc6-arm64-cross
# (installed with apt-get when missing), and podman with runc for the action's image
# (`make image`; apt-get as root). Any of them missing and not installable is an error.
#
#   VENV_DIR   where the venv lives (default: .venv in the repository)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV_DIR:-$root/.venv}
python=${PYTHON:-python3}

lock_hash() { sha256sum "$1" | cut -d' ' -f1; }

setup_python() {
  local want stamp="$venv/.requirements.sha256"
  want=$(lock_hash "$root/requirements.txt")
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "python tools: up to date in $venv"
    return
  fi
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: $python is missing or older than 3.10; install Python 3.10+ or set PYTHON=/path/to/python3" >&2
    exit 1
  fi
  echo "python tools: installing requirements.txt into $venv (about a minute)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$root/requirements.txt"
  echo "$want" > "$stamp"
}

setup_node() {
  local dir="$root/tools/node" want stamp
  stamp="$dir/node_modules/.lock.sha256"
  want=$(lock_hash "$dir/package-lock.json")
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "node tools: up to date"
    return
  fi
  if ! command -v npm >/dev/null; then
    echo "error: npm is not installed; install Node.js 18+ (e.g. apt-get install nodejs npm)" >&2
    exit 1
  fi
  echo "node tools: npm ci in tools/node"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
}

# apt_install WHAT FIX PACKAGE...: Debian packages, as root (sudo when not root); without
# apt-get, an error saying FIX.
apt_install() {
  local what=$1 fix=$2 sudo=()
  shift 2
  if ! command -v apt-get >/dev/null; then
    echo "error: $* missing and no apt-get here: $fix" >&2
    exit 1
  fi
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  echo "$what: apt-get install $* (as root)"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The aarch64 loader and glibc that qemu-user runs `bootstrap` with, and qemu itself.
setup_arm64() {
  local missing=()
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  [[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]] || missing+=(libc6-arm64-cross)
  if ((${#missing[@]})); then
    apt_install "arm64 tools" "install qemu-user (qemu-aarch64-static) and an aarch64 glibc under /usr/aarch64-linux-gnu" "${missing[@]}"
  fi
  if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    echo "arm64 tools: rustup target add aarch64-unknown-linux-gnu"
    if ! rustup target add aarch64-unknown-linux-gnu; then
      echo "error: could not install the Rust target aarch64-unknown-linux-gnu, which the arm64 tests need; run 'rustup target add aarch64-unknown-linux-gnu'" >&2
      exit 1
    fi
  fi
  echo "arm64 tools: qemu-aarch64-static, /usr/aarch64-linux-gnu and the Rust target present"
}

# The container engine `make image` and the runner-faithful tests (tests/action_image)
# use: podman with runc (crun, its default on Debian, fails on these machines). Installing
# it needs root (or sudo); CI runs as root.
setup_podman() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  if ((${#missing[@]})); then
    apt_install "container engine" "install podman and runc (make image and the action's image tests need them)" "${missing[@]}"
  fi
  echo "container engine: podman $(podman --version | awk '{print $3}') with runc"
}

setup_python
setup_node
setup_arm64
setup_podman
