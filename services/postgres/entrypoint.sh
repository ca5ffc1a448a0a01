#!/bin/sh
# Start PostgreSQL on $PGDATA; on the first start (an empty volume), create the cluster with the
# superuser $POSTGRES_USER, whose password is the first line of $POSTGRES_PASSWORD_FILE, and the
# database $POSTGRES_DB. The password is read from the file only; it never reaches env or arguments.
set -eu
: "${POSTGRES_USER:=mlflow}" "${POSTGRES_DB:=mlflow}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ ! -r "${POSTGRES_PASSWORD_FILE:-}" ]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD_FILE must name a readable file with the password" >&2
    exit 1
  fi
  echo "postgres-entrypoint: creating the cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" \
    --encoding=UTF8 --locale=C.UTF-8 --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  # Over TCP every client needs the password; the local socket is only reachable from inside this
  # container (health check, `docker exec pg_dump` backups), where the password file is readable anyway.
  cat > "$PGDATA/pg_hba.conf" <<HBA
local all all trust
host  all all all scram-sha-256
HBA
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" -j postgres >/dev/null
fi
exec postgres -D "$PGDATA"
