#!/bin/sh
# Start `mlflow server` with the given arguments: first bring the backend store to this MLflow's schema
# (backed up into $SCHEMA_BACKUP_DIR, then `mlflow db upgrade`; a schema it cannot read, or a backup that
# fails, stops the start, untouched), then provision service users when given. With SCHEMA_MIGRATION=job
# (Kubernetes, where a Job migrates once before the rollout) the server only checks the schema is current.
# The basic-auth app needs a static Flask secret key for CSRF protection: read from the file
# MLFLOW_FLASK_SERVER_SECRET_KEY_FILE names when set (the kubernetes target's replicas share one from a
# Secret); otherwise each container start gets a fresh random key (on docker one container serves MLflow
# and `mlflow server` hands its key to its workers, so nothing has to share it; sessions simply end on
# restart).
set -eu
if [ -n "${MLFLOW_FLASK_SERVER_SECRET_KEY_FILE:-}" ]; then
  MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$MLFLOW_FLASK_SERVER_SECRET_KEY_FILE")
  if [ -z "$MLFLOW_FLASK_SERVER_SECRET_KEY" ]; then
    echo "tracking: $MLFLOW_FLASK_SERVER_SECRET_KEY_FILE is empty; it must hold MLflow's Flask secret" >&2
    exit 2
  fi
  export MLFLOW_FLASK_SERVER_SECRET_KEY
elif [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
  MLFLOW_FLASK_SERVER_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')
  export MLFLOW_FLASK_SERVER_SECRET_KEY
fi
# The store named by --backend-store-uri is migrated once here, before any server worker opens it.
previous="" backend_uri=""
for arg in "$@"; do
  [ "$previous" = "--backend-store-uri" ] && backend_uri=$arg
  previous=$arg
done
if [ -n "$backend_uri" ] && [ "${SCHEMA_MIGRATION:-}" = "job" ]; then
  python /opt/tracking/schema.py --check "$backend_uri"
elif [ -n "$backend_uri" ]; then
  python /opt/tracking/schema.py "$backend_uri"
fi
# With basic auth, the platform's service users (the monitoring job's, each team's) exist before anyone logs in;
# a team's models and experiments are created in the backend store, with the team's grants on them.
if [ -n "${SERVICE_USERS_FILE:-}" ]; then
  python /opt/tracking/service_users.py ${backend_uri:+"$backend_uri"}
fi
exec mlflow server "$@"
