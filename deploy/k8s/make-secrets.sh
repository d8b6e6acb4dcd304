#!/bin/sh
# Development clusters only: creates the credentials Secrets with fresh random passwords
# (nothing usable is in git). Production takes them from a secret manager instead.
#
#   deploy/k8s/make-secrets.sh eventbooking-dev | kubectl apply -f -
#
# Prints the Secrets (eventbooking-<service>-credentials per service, eventbooking-postgres-admin)
# and, on stderr, what to give the broker and the database: the same passwords must be set on
# the RabbitMQ users of rabbitmq-definitions.json (rabbitmqctl change_password <user> <pw>) and,
# for eventbooking-postgres-admin, be your PostgreSQL superuser's. The migration Job sets the
# per-service PostgreSQL roles' passwords itself.
set -eu
namespace="${1:?usage: make-secrets.sh <namespace>}"
secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
# A Fernet key (urlsafe base64 of 32 random bytes): notifications encrypts webhook secrets with it.
fernet_key() { head -c 32 /dev/urandom | base64 | tr '+/' '-_'; }
for service in auth events booking payments notifications analytics; do
  db="$(secret)"; mq="$(secret)"
  extra=""
  if [ "$service" = notifications ]; then extra="--from-literal=WEBHOOK_ENCRYPTION_KEY=$(fernet_key)"; fi
  # shellcheck disable=SC2086 # $extra is empty or one argument without spaces
  kubectl create secret generic "eventbooking-$service-credentials" --namespace "$namespace" \
    --from-literal=DATABASE_PASSWORD="$db" --from-literal=RABBITMQ_PASSWORD="$mq" $extra \
    --dry-run=client -o yaml
  echo "---"
  echo "rabbitmqctl change_password $service $mq" >&2
done
kubectl create secret generic eventbooking-postgres-admin --namespace "$namespace" \
  --from-literal=PGUSER=postgres --from-literal=PGPASSWORD="${PGPASSWORD:?set PGPASSWORD to the PostgreSQL superuser password}" \
  --dry-run=client -o yaml
