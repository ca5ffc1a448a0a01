#!/bin/sh
# Start SeaweedFS (master, volume, filer and S3 API in one `weed server`) on $SEAWEEDFS_DIR, then create
# the bucket $S3_BUCKET with the identity in $S3_CONFIG_FILE (its only one) and mark the container ready.
# Only the S3 API listens beyond loopback; it accepts only the identities of $S3_CONFIG_FILE, a secret file.
set -eu
: "${SEAWEEDFS_DIR:=/data}" "${S3_PORT:=8333}" "${READY_FILE:=/tmp/seaweedfs-ready}"
if [ ! -r "${S3_CONFIG_FILE:-}" ] || [ -z "${S3_BUCKET:-}" ]; then
  echo "seaweedfs-entrypoint: S3_CONFIG_FILE must name a readable identities file and S3_BUCKET a bucket" >&2
  exit 2
fi
rm -f "$READY_FILE"
# Volumes of 1 GiB, up to 1000 of them: -volume.max=0 would size the count by the free disk in 30 GB volumes,
# which on a small disk is none (every write then fails with "Not enough data nodes").
weed server -dir="$SEAWEEDFS_DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
  -master.volumeSizeLimitMB=1024 -volume.max=1000 \
  -s3 -s3.ip.bind=0.0.0.0 -s3.port="$S3_PORT" -s3.config="$S3_CONFIG_FILE" &
weed=$!
# weed may not exit on SIGTERM: stop it with a grace, then kill it, so `docker stop` never waits its timeout.
stop() {
  kill -TERM "$weed" 2>/dev/null || true
  for _ in 1 2 3 4 5; do kill -0 "$weed" 2>/dev/null || exit 0; sleep 1; done
  kill -KILL "$weed" 2>/dev/null || true
  exit 0
}
trap stop TERM INT
if ! python /opt/seaweedfs/create_bucket.py "http://127.0.0.1:$S3_PORT" "$S3_BUCKET" "$S3_CONFIG_FILE"; then
  kill -KILL "$weed" 2>/dev/null || true
  exit 1
fi
touch "$READY_FILE"
wait "$weed"
