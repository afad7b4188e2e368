#!/usr/bin/env bash
# Install PostgreSQL from Debian's packages if missing, start a cluster on 127.0.0.1 only, and print
# a storage URL for odyssey's distributed tests. Debian's service autostart is blocked in containers,
# so the cluster is started explicitly; listen_addresses goes in a conf.d file (pg_conftool writes it
# unquoted, which breaks startup).
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
  pg_createcluster "$version" main >&2
fi
conf="/etc/postgresql/$version/main/conf.d"
mkdir -p "$conf"
printf "listen_addresses = '127.0.0.1'\n" > "$conf/odyssey.conf"
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -qx online; then
  pg_ctlcluster "$version" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
runuser -u postgres -- psql -p "$port" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='odyssey'" | grep -q 1 ||
  runuser -u postgres -- psql -p "$port" -qc "CREATE ROLE odyssey LOGIN CREATEDB PASSWORD 'odyssey-test'" >&2
runuser -u postgres -- psql -p "$port" -qtAc "SELECT 1 FROM pg_database WHERE datname='odyssey'" | grep -q 1 ||
  runuser -u postgres -- createdb -p "$port" -O odyssey odyssey >&2
echo "postgresql+psycopg2://odyssey:odyssey-test@127.0.0.1:$port/odyssey"
