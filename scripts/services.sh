#!/usr/bin/env bash
# Installs and starts the real services the tests talk to, on loopback only:
#   - PostgreSQL (Debian's package; 127.0.0.1:5432, trust auth, database "test")
#   - versitygw, an S3-compatible server, built once from the Go module proxy
#     into $FERRY_CACHE/bin (default $HOME/.cache/ferry/bin) and reused; the
#     tests start their own instances of it on free ports.
#   - Vault, built once from source by scripts/vault.sh into
#     $FERRY_CACHE/vault-1.21.4 (about 20-35 minutes cold); the secrets tests
#     start it in dev mode on free loopback ports.
#   - Chromium (Debian's package), which the web console's browser test
#     (controlplane/console) drives headless.
# Idempotent: what is installed or running already is left alone.
set -euo pipefail

cache="${FERRY_CACHE:-$HOME/.cache/ferry}"
mkdir -p "$cache/bin"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# PostgreSQL.
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "services: installing postgresql" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
ver=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "services: starting PostgreSQL $ver" >&2
  $sudo pg_ctlcluster --skip-systemctl-redirect "$ver" main start
fi
for i in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
pg_isready -h 127.0.0.1 -p 5432
# The tests connect over TCP as the postgres superuser; trust on loopback is
# what a fresh Debian machine of this kind has. Make sure the test database exists.
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres 2>/dev/null | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres
fi

# Chromium for the console's browser test.
if ! command -v chromium >/dev/null 2>&1; then
  echo "services: installing chromium" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

# versitygw (S3-compatible server), cached outside the repository.
if [ ! -x "$cache/bin/versitygw" ]; then
  echo "services: building versitygw v1.8.0 into $cache/bin (once; about 5 minutes)" >&2
  (cd /tmp && GOTOOLCHAIN=local GOFLAGS= GOBIN="$cache/bin" go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)
fi
# Vault (the real server, built from source once; the secrets tests start it
# in dev mode on loopback).
FERRY_CACHE="$cache" bash "$(dirname "$0")/vault.sh"
echo "services: PostgreSQL on 127.0.0.1:5432; versitygw at $cache/bin/versitygw; Vault at $cache/vault-1.21.4/vault; Chromium at $(command -v chromium)" >&2
