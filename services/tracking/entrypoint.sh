#!/bin/sh
# Start `mlflow server` with the given arguments (after provisioning service users, when given). The basic-auth app needs a static Flask secret key
# for CSRF protection; unless one is provided, each container start gets a fresh random key (one
# container serves MLflow, so nothing has to share it; sessions simply end on restart).
set -eu
if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
  MLFLOW_FLASK_SERVER_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')
  export MLFLOW_FLASK_SERVER_SECRET_KEY
fi
# With basic auth, the platform's service users (the monitoring job's) exist before anyone logs in.
if [ -n "${SERVICE_USERS_FILE:-}" ]; then
  python /opt/tracking/service_users.py
fi
exec mlflow server "$@"
