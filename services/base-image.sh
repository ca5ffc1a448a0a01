#!/usr/bin/env bash
# Build the offline base image every services/*/Dockerfile can start FROM (via --build-arg BASE_IMAGE)
# when no registry is reachable: Debian with python3 + venv, made by mmdebstrap from Debian packages
# and carrying this host's CA bundle so pip/uv inside `docker build` trust the same roots as the host.
#
#   services/base-image.sh            build it unless the tag already exists
#   services/base-image.sh --force    rebuild it
#
# Env: BASE_IMAGE (tag, default below), DEBIAN_SUITE, DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR.
set -euo pipefail

tag="${BASE_IMAGE:-mlops-platform-base:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
host_ca_bundle=/etc/ssl/certs/ca-certificates.crt

if [[ "${1:-}" != "--force" ]] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present (pass --force to rebuild)"
  exit 0
fi
for tool in mmdebstrap docker; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (see .ci/setup-docker.sh)" >&2; exit 1; }
done
[[ -r "$host_ca_bundle" ]] || { echo "error: no CA bundle at $host_ca_bundle" >&2; exit 1; }

started=$SECONDS
# --variant=apt: the smallest set that still has apt; docs and man pages are dropped to keep it slim.
mmdebstrap --variant=apt --quiet \
  --include=python3,python3-venv,ca-certificates,passwd \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --customize-hook="upload $host_ca_bundle /etc/ssl/certs/ca-certificates.crt" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$suite" - \
  "deb $mirror $suite main" \
  "deb $mirror $suite-updates main" \
  "deb $security_mirror $suite-security main" \
  | docker import \
      --change 'ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'CMD ["python3"]' \
      - "$tag" >/dev/null
echo "built base image $tag in $((SECONDS - started)) s"
