#!/bin/sh
# PostgreSQL for the demo platform: a fresh cluster in the volume on first start, a
# role for postgres_exporter (pg_monitor) with the password from the stack's .env.
set -eu
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
export PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    "$PGBIN/initdb" --auth-local=trust --auth-host=scram-sha-256 -U postgres >/dev/null
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    "$PGBIN/pg_ctl" -w -o "-c listen_addresses=''" start >/dev/null
    psql -v ON_ERROR_STOP=1 -U postgres -q <<SQL
CREATE ROLE postgres_exporter LOGIN PASSWORD '$(printf %s "$POSTGRES_EXPORTER_PASSWORD" | sed "s/'/''/g")';
GRANT pg_monitor TO postgres_exporter;
CREATE ROLE app LOGIN PASSWORD 'app';
SQL
    "$PGBIN/pg_ctl" -w stop >/dev/null
fi
exec "$PGBIN/postgres" -c listen_addresses='*' -c max_connections=50
