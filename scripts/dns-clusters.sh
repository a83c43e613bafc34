#!/usr/bin/env bash
# A paid and a free PowerDNS Authoritative server on loopback, as plain processes, for
# trying release against real DNS: each with its own SQLite database, DNS port and API.
#
#   scripts/dns-clusters.sh start     start both; stdout is the line that exports their API
#                                     keys: eval "$(scripts/dns-clusters.sh start)"
#   scripts/dns-clusters.sh stop      stop both
#   scripts/dns-clusters.sh status    which are running
#
# Needs Debian's pdns-server and pdns-backend-sqlite3. Folder, addresses and ports:
#   DNS_CLUSTERS_DIR (var/dns-clusters), PAID_DNS (127.0.0.1:5301), FREE_DNS (127.0.0.1:5302),
#   PAID_API_PORT (8181), FREE_API_PORT (8182). scripts/live-clusters.sample.json uses these.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${DNS_CLUSTERS_DIR:-var/dns-clusters}"
PAID_DNS="${PAID_DNS:-127.0.0.1:5301}"
FREE_DNS="${FREE_DNS:-127.0.0.1:5302}"
PAID_API_PORT="${PAID_API_PORT:-8181}"
FREE_API_PORT="${FREE_API_PORT:-8182}"
PDNS="$(command -v pdns_server || echo /usr/sbin/pdns_server)"
SCHEMA=/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
[ -f "$SCHEMA" ] || SCHEMA=/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql

start_one() {  # name dns-address api-port primary-name-server
  local name=$1 address=${2%:*} port=${2##*:} api_port=$3 primary=$4 folder="$DIR/$1"
  mkdir -p "$folder"
  folder="$(cd "$folder" && pwd)"
  if [ -f "$folder/pid" ] && kill -0 "$(cat "$folder/pid")" 2>/dev/null; then
    echo "$name: already running (pid $(cat "$folder/pid"))" >&2
    return
  fi
  [ -s "$folder/api-key" ] || python3 -c 'import secrets; print(secrets.token_hex(16))' > "$folder/api-key"
  [ -f "$folder/pdns.sqlite3" ] || python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).executescript(open(sys.argv[2]).read())' "$folder/pdns.sqlite3" "$SCHEMA"
  cat > "$folder/pdns.conf" <<CONF
launch=gsqlite3
gsqlite3-database=$folder/pdns.sqlite3
local-address=$address
local-port=$port
api=yes
api-key=$(cat "$folder/api-key")
webserver=yes
webserver-address=127.0.0.1
webserver-port=$api_port
webserver-allow-from=127.0.0.0/8
socket-dir=$folder
# The SOA of zones created without one (release never sends SOA): the cluster's own
# primary name server, not PowerDNS's "a.misconfigured.dns.server.invalid".
default-soa-content=$primary hostmaster.@ 0 10800 3600 604800 3600
CONF
  nohup "$PDNS" --config-dir="$folder" --daemon=no --guardian=no > "$folder/pdns.log" 2>&1 &
  echo $! > "$folder/pid"
  for _ in $(seq 100); do
    if python3 - "$api_port" "$(cat "$folder/api-key")" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/v1/servers/localhost",
                             headers={"X-API-Key": sys.argv[2]})
urllib.request.urlopen(req, timeout=1)
PY
    kill -0 "$(cat "$folder/pid")" 2>/dev/null || { echo "$name: pdns_server exited:" >&2; tail -20 "$folder/pdns.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name: DNS on $2, API on http://127.0.0.1:$api_port (pid $(cat "$folder/pid"))" >&2
}

stop_one() {
  local folder="$DIR/$1"
  if [ -f "$folder/pid" ] && kill -0 "$(cat "$folder/pid")" 2>/dev/null; then
    kill "$(cat "$folder/pid")" && echo "$1: stopped"
  else
    echo "$1: not running"
  fi
  rm -f "$folder/pid"
}

case "${1:-}" in
  start)
    [ -x "$PDNS" ] || { echo "pdns_server not found: apt-get install pdns-server pdns-backend-sqlite3" >&2; exit 2; }
    # The primary name servers of scripts/live-clusters.sample.json's clusters.
    start_one paid-1 "$PAID_DNS" "$PAID_API_PORT" ns1.paid-dns.example.
    start_one free "$FREE_DNS" "$FREE_API_PORT" ns1.free-dns.example.
    # Talk goes to stderr; stdout is only this line, for eval "$(... start)".
    echo "export DNSL_CLUSTER_API_KEYS='{\"paid-1\": \"$(cat "$DIR/paid-1/api-key")\", \"free\": \"$(cat "$DIR/free/api-key")\"}'"
    ;;
  stop)
    stop_one paid-1
    stop_one free
    ;;
  status)
    for name in paid-1 free; do
      if [ -f "$DIR/$name/pid" ] && kill -0 "$(cat "$DIR/$name/pid")" 2>/dev/null; then
        echo "$name: running (pid $(cat "$DIR/$name/pid"))"
      else
        echo "$name: not running"
      fi
    done
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
