#!/bin/sh
# Serve the bento baked in at $BENTO_DIR (a release image), or say clearly that no model is deployed.
set -eu
if [ -f "$BENTO_DIR/bento.yaml" ]; then
  exec bentoml serve "$BENTO_DIR" --host 0.0.0.0 --port "$SERVING_PORT"
fi
exec python /opt/serving/no_model_server.py
