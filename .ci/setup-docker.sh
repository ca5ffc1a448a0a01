#!/usr/bin/env bash
# Make a Docker daemon and the offline base image available for the stack tests (tests/stack).
# Idempotent: installs docker.io and mmdebstrap only when missing, starts dockerd only when no daemon
# answers, builds the base image only when absent. Prints `BASE_IMAGE=<tag>` last.
#
# Env: BASE_IMAGE (default mlops-platform-base:bookworm), DOCKERD_LOG (default /var/log/dockerd.log).
set -euo pipefail
cd "$(dirname "$0")/.."

export BASE_IMAGE="${BASE_IMAGE:-mlops-platform-base:bookworm}"
dockerd_log="${DOCKERD_LOG:-/var/log/dockerd.log}"

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: $dockerd_log)"
  as_root sh -c "nohup dockerd >'$dockerd_log' 2>&1 &"
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "error: dockerd did not answer within 60 s; see $dockerd_log" >&2; exit 1; }
fi
echo "docker daemon $(docker version --format '{{.Server.Version}}') answers"

services/base-image.sh
echo "BASE_IMAGE=$BASE_IMAGE"
