#!/usr/bin/env bash
# Run once, when the database volume is first created: a read-only role for Grafana's data source, with SELECT on
# every table the migrations create later too (docs/dashboards.md).
set -euo pipefail
password=$(head -n 1 "$GRAFANA_DB_PASSWORD_FILE")
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set password="$password" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE mes TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE mes IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
