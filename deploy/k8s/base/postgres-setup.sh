#!/bin/sh
# Creates (or updates) every service's PostgreSQL role and database with postgres-roles.sql,
# as the superuser. Idempotent: run on every start by docker-compose.yml's one-shot
# `postgres-setup` and by the Kubernetes migration Job's init container.
#
# Environment:
#   PGHOST, PGPORT, PGUSER, PGPASSWORD   the superuser's connection (libpq variables)
#   DATABASE_PREFIX                      default eb_: database and role are <prefix><service>
#   DB_PASSWORD_AUTH, DB_PASSWORD_EVENTS, DB_PASSWORD_BOOKING, DB_PASSWORD_PAYMENTS,
#   DB_PASSWORD_NOTIFICATIONS, DB_PASSWORD_ANALYTICS
#                                        each service's password; must be set (empty: the role
#                                        gets no password and cannot log in with one)
#   EB_SERVICES                          default: all six (tests name fewer)
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
prefix="${DATABASE_PREFIX:-eb_}"
for service in ${EB_SERVICES:-auth events booking payments notifications analytics}; do
  var="DB_PASSWORD_$(echo "$service" | tr '[:lower:]' '[:upper:]')"
  # Unset is a mistake (a forgotten variable), not a request for a password-less role.
  eval "set_=\${$var+yes}"
  if [ "$set_" != yes ]; then
    echo "postgres-setup: $var is not set" >&2
    exit 1
  fi
  eval "password=\${$var}"
  psql -X -q -v ON_ERROR_STOP=1 -d postgres \
    -v db="$prefix$service" -v role="$prefix$service" -v password="$password" \
    -f "$here/postgres-roles.sql"
  echo "postgres-setup: role and database $prefix$service ready"
done
