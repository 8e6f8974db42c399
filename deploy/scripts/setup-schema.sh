#!/bin/sh
# One-shot (service temporal-schema-setup): create Temporal's two PostgreSQL databases and
# bring their schemas to the version this admin-tools image ships. It runs on every
# `docker compose up`, so it must be idempotent: setup-schema -v 0.0 leaves an existing
# version alone and update-schema applies only the newer steps. That is also how an upgrade
# works: bump temporalio/server and temporalio/admin-tools together and the schema is
# migrated before the new server starts.
set -eu

: "${POSTGRES_SEEDS:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql_tool() {
    # SQL_PASSWORD is read from the environment, which keeps it out of the process list.
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
        -u "$SQL_USER" "$@"
}

setup_database() {
    database=$1
    schema_dir=$2
    # `create` fails whenever the database already exists, i.e. on every start but the
    # first. A real connection or password problem still stops us at setup-schema.
    sql_tool --db "$database" create || echo "database $database already exists"
    sql_tool --db "$database" setup-schema -v 0.0
    sql_tool --db "$database" update-schema -d "$schema_dir"
}

echo "waiting for PostgreSQL at $POSTGRES_SEEDS"
until nc -z "$POSTGRES_SEEDS" "${DB_PORT:-5432}"; do sleep 1; done

setup_database temporal "$SCHEMA_ROOT/temporal/versioned"
setup_database temporal_visibility "$SCHEMA_ROOT/visibility/versioned"
echo "Temporal schemas are up to date"
