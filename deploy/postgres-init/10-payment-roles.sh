#!/usr/bin/env bash
# Run by the postgres image once, on an empty data directory
# (/docker-entrypoint-initdb.d): the payment service's two roles
# (payment-roles.psql), with the passwords of its Docker secrets. Each
# password is written once, in the connection string its role connects with
# (deploy/secrets/); it is taken from there.
set -euo pipefail

secrets="${PAYMENT_SECRETS_DIR:-/run/secrets}"
here="$(dirname "${BASH_SOURCE[0]}")"

password_of() {
  # `...;Password=secret;...`: the value after Password=, up to the next `;`.
  sed -n 's/^.*[Pp]assword=\([^;]*\).*$/\1/p' "$1" | head -n 1
}

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner="${PAYMENT_OWNER_ROLE:-payment_owner}" -v app="${PAYMENT_APP_ROLE:-payment_app}" \
  -v db="$POSTGRES_DB" \
  -v owner_password="$(password_of "$secrets/payment_owner_connection")" \
  -v app_password="$(password_of "$secrets/payment_app_connection")" \
  -f "$here/payment-roles.psql"
