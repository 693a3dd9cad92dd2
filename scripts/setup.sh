#!/usr/bin/env bash
# Installs the project's pinned tools: Python tools (requirements.txt) into a venv and
# Node tools (tools/node/package-lock.json) into tools/node/node_modules. Each is
# reused when already installed from the same lock file, so running this again is cheap.
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

setup_python
setup_node
