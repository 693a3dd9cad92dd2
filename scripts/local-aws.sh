#!/usr/bin/env bash
# The local AWS API emulator: moto server with the project's extension (localaws/).
#
#   scripts/local-aws.sh start           start on 127.0.0.1:$LOCAL_AWS_PORT (default 5055); its pid,
#                                        endpoint and moto.log in $LOCAL_AWS_STATE (default .local-aws)
#   scripts/local-aws.sh stop            stop the one `start` started (by its pid)
#   scripts/local-aws.sh status          say whether it runs, and where
#   scripts/local-aws.sh run CMD [ARG]   start a private emulator on a free port, run CMD
#                                        with AWS_ENDPOINT_URL and dummy credentials
#                                        pointing at it, stop it afterwards, exit as CMD
#
# For tests and the demo only: the product never depends on it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV_DIR:-$root/.venv}
python="$venv/bin/python"
state="${LOCAL_AWS_STATE:-$root/.local-aws}"

need_venv() {
  if [[ ! -x "$python" ]] || ! "$python" -c 'import moto' 2>/dev/null; then
    echo "error: moto is not installed in $venv; run 'make setup' (or scripts/setup.sh) first" >&2
    exit 1
  fi
}

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# launch DIR PORT: starts the server, records pid and endpoint in DIR, waits until it answers.
launch() {
  local dir=$1 port=$2 endpoint="http://127.0.0.1:$2" pid
  mkdir -p "$dir"
  (cd "$root" && exec "$python" -m localaws.server --host 127.0.0.1 --port "$port") >"$dir/moto.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/pid"
  echo "$endpoint" >"$dir/endpoint"
  for _ in $(seq 1 150); do
    if ! alive "$pid"; then
      echo "error: the emulator exited during start-up; its log ($dir/moto.log) ends with:" >&2
      tail -n 15 "$dir/moto.log" >&2
      rm -f "$dir/pid"
      return 1
    fi
    if "$python" - "$endpoint" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=1).read()
PY
      return 0
    fi
    sleep 0.2
  done
  echo "error: the emulator did not answer on $endpoint within 30 s; see $dir/moto.log" >&2
  terminate "$dir"
  return 1
}

# terminate DIR: stops the process whose pid DIR recorded, never anything found by name.
terminate() {
  local dir=$1 pid
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/pid" "$dir/endpoint"
}

cmd=${1:-}
case "$cmd" in
  start)
    need_venv
    if alive "$(cat "$state/pid" 2>/dev/null || true)"; then
      echo "local AWS already running: AWS_ENDPOINT_URL=$(cat "$state/endpoint")"
      exit 0
    fi
    port=${LOCAL_AWS_PORT:-5055}
    if ! "$python" -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
      echo "error: port $port on 127.0.0.1 is in use; stop what uses it or set LOCAL_AWS_PORT to a free port" >&2
      exit 1
    fi
    launch "$state" "$port"
    echo "local AWS running (pid $(cat "$state/pid"), log $state/moto.log)"
    echo "  export AWS_ENDPOINT_URL=$(cat "$state/endpoint") AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
    ;;
  stop)
    if alive "$(cat "$state/pid" 2>/dev/null || true)"; then
      terminate "$state"
      echo "local AWS stopped"
    else
      rm -f "$state/pid" "$state/endpoint"
      echo "local AWS was not running"
    fi
    ;;
  status)
    if alive "$(cat "$state/pid" 2>/dev/null || true)"; then
      echo "local AWS running: AWS_ENDPOINT_URL=$(cat "$state/endpoint") (pid $(cat "$state/pid"))"
    else
      echo "local AWS not running (start it with: make local-aws)"
      exit 1
    fi
    ;;
  run)
    shift
    [[ $# -gt 0 ]] || { echo "usage: $0 run CMD [ARG...]" >&2; exit 2; }
    need_venv
    dir=$(mktemp -d "${TMPDIR:-/tmp}/local-aws.XXXXXX")
    trap 'terminate "$dir"; rm -rf "$dir"' EXIT
    trap 'exit 130' INT TERM
    launch "$dir" "$(free_port)"
    echo "local AWS for this run: $(cat "$dir/endpoint")"
    # Dummy credentials: nothing run here may ever reach a real account.
    status=0
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
      AWS_ENDPOINT_URL="$(cat "$dir/endpoint")" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
      AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
      "$@" || status=$?
    if [[ $status -ne 0 ]]; then
      echo "(emulator log of this run, last lines:)" >&2
      tail -n 20 "$dir/moto.log" >&2
    fi
    exit "$status"
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
