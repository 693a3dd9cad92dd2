# shellcheck shell=bash
# What the project's scripts share; sourced, not run. Uses `$python` when the sourcing
# script set it (the venv's), else python3.

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  "${python:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS [PID]: until URL answers (any HTTP status), at most SECONDS, and
# only while PID (when given) lives. Returns 1 when it never answered.
wait_http() {
  local url=$1 seconds=$2 pid=${3:-}
  for _ in $(seq 1 $((seconds * 5))); do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    if "${python:-python3}" - "$url" <<'PY' 2>/dev/null; then
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1).read()
except urllib.error.HTTPError:
    pass
PY
      return 0
    fi
    sleep 0.2
  done
  return 1
}
