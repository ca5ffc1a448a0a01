#!/bin/sh
# Serve the bento baked in at $BENTO_DIR (a release image), or say clearly that no model is deployed.
#
# Stopping drains first (`docker stop`, a Pulumi replace with destroyGraceSeconds, a Kubernetes pod
# termination): /readyz turns 503 so the front stops sending requests here, the server keeps answering
# for SERVING_DRAIN_SECONDS, then it gets SIGTERM and finishes what it holds before it exits.
set -eu
if [ ! -f "$BENTO_DIR/bento.yaml" ]; then
  exec python /opt/serving/no_model_server.py
fi
rm -f "$SERVING_DRAIN_FILE"
if [ -n "${SERVING_CANARY_WEIGHT_PERCENT:-}" ]; then  # a canary: tell the front its share
  (cd /opt/serving && exec python -m services.serving.weight_agent) &
fi
bentoml serve "$BENTO_DIR" --host 0.0.0.0 --port "$SERVING_PORT" &
server=$!
drain() {
  touch "$SERVING_DRAIN_FILE"
  sleep "$SERVING_DRAIN_SECONDS"
  kill -TERM "$server"
}
trap drain TERM INT
status=0
wait "$server" || status=$?
if [ -f "$SERVING_DRAIN_FILE" ]; then  # woken by the trap: now wait for the server's own graceful exit
  status=0
  wait "$server" || status=$?
fi
exit "$status"
