#!/usr/bin/env bash
# `make image`: the action's image for this machine's platform, from the release's
# Dockerfile, with nothing pulled (BINARIES=dist: every stage used is FROM scratch),
# tagged openai-lambda-proxy:dev (IMAGE), and no larger than 25 MiB (the runner pulls it
# at the start of every job that uses the action).
#
#   1. scripts/dist.sh lays out dist/ for this platform: the static deployer, the arm64
#      function (as `make test-arm64` builds it; reused when that build is current), the
#      CA bundle
#   2. podman build (docker when podman is absent: CONTAINER_ENGINE=docker)
#   3. the size check and `--version` in the image
#
# podman runs here as root (CI does); scripts/setup.sh installs podman and runc.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${IMAGE:-openai-lambda-proxy:dev}
max_bytes=$((25 * 1024 * 1024))

fail() { echo "error: $*" >&2; exit 1; }

engine=${CONTAINER_ENGINE:-}
if [[ -z "$engine" ]]; then
  if command -v podman >/dev/null; then engine=podman; elif command -v docker >/dev/null; then engine=docker; fi
fi
[[ -n "$engine" ]] || fail "neither podman nor docker is installed: run 'make setup' as root (it installs podman and runc), or apt-get install podman runc"
# crun, podman's default runtime on Debian, fails on these machines; runc works.
runtime=()
[[ "$engine" == podman ]] && runtime=(--runtime runc)

case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) fail "no image platform for $(uname -m) (amd64 or arm64)" ;;
esac

DIST_ARCHES=$arch "$root/scripts/dist.sh"
echo "image: $engine build --build-arg BINARIES=dist -t $image (linux/$arch)"
"$engine" "${runtime[@]}" build --quiet --build-arg BINARIES=dist --platform "linux/$arch" -t "$image" "$root" >/dev/null
size=$("$engine" image inspect "$image" --format '{{.Size}}')
echo "image: $image is $size bytes ($((size / 1024)) KiB) for linux/$arch"
((size <= max_bytes)) || fail "$image is $size bytes, more than 25 MiB ($max_bytes): the runner pulls it at the start of every job"
# Explicit rlimits: the engine's defaults exceed what these machines allow a container.
"$engine" "${runtime[@]}" run --rm --network none --ulimit nofile=20000:20000 --ulimit nproc=1000:1000 \
  "$image" --version
