#!/usr/bin/env bash
# A paid and a free PowerDNS Authoritative server on loopback, as plain processes, for
# trying release against real DNS: each with its own SQLite database, DNS port and API.
#
#   scripts/dns-clusters.sh start     start both; stdout is the line that exports their API
#                                     keys: eval "$(scripts/dns-clusters.sh start)"
#   scripts/dns-clusters.sh start-secondaries
#                                     the same, but the free PowerDNS is a hidden primary
#                                     whose catalog zone two BIND 9 secondaries consume
#   scripts/dns-clusters.sh stop      stop them all
#   scripts/dns-clusters.sh status    which are running
#
# Needs Debian's pdns-server and pdns-backend-sqlite3 (and bind9 for the secondaries).
# Folder, addresses and ports: DNS_CLUSTERS_DIR (var/dns-clusters), PAID_DNS
# (127.0.0.1:5301), FREE_DNS (127.0.0.1:5302), PAID_API_PORT (8181), FREE_API_PORT (8182),
# FREE_SECONDARY_PORTS ("5303 5304", on 127.0.0.1: BIND listens only on an interface's
# addresses). scripts/live-clusters.sample.json and live-secondaries.sample.json use these.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${DNS_CLUSTERS_DIR:-var/dns-clusters}"
PAID_DNS="${PAID_DNS:-127.0.0.1:5301}"
FREE_DNS="${FREE_DNS:-127.0.0.1:5302}"
PAID_API_PORT="${PAID_API_PORT:-8181}"
FREE_API_PORT="${FREE_API_PORT:-8182}"
FREE_SECONDARY_PORTS="${FREE_SECONDARY_PORTS:-5303 5304}"
FREE_CATALOG=catalog.free-dns.example
NAMED="$(command -v named || echo /usr/sbin/named)"
# More pdns.conf lines for the next start_one (a primary's).
EXTRA_CONF=""
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
$EXTRA_CONF
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

start_bind() {  # name port catalog primary-port: a secondary consuming the catalog
  local name=$1 port=$2 catalog=$3 primary="127.0.0.1 port $4" folder="$DIR/$1"
  mkdir -p "$folder/zones"
  folder="$(cd "$folder" && pwd)"
  if [ -f "$folder/pid" ] && kill -0 "$(cat "$folder/pid")" 2>/dev/null; then
    echo "$name: already running (pid $(cat "$folder/pid"))" >&2
    return
  fi
  cat > "$folder/named.conf" <<CONF
options {
    directory "$folder";
    pid-file "$folder/named.pid";
    session-keyfile "$folder/session.key";
    managed-keys-directory "$folder";
    listen-on port $port { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
    allow-notify { 127.0.0.0/8; };
    catalog-zones {
        zone "$catalog." default-primaries { $primary; }
            zone-directory "$folder/zones" in-memory no min-update-interval 1;
    };
};
controls { };
zone "$catalog." { type secondary; primaries { $primary; }; file "$folder/catalog.db"; };
CONF
  nohup "$NAMED" -g -u root -c "$folder/named.conf" > "$folder/named.log" 2>&1 &
  echo $! > "$folder/pid"
  for _ in $(seq 100); do
    if python3 - "$port" <<'PY' 2>/dev/null; then break; fi
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.sendto(bytes.fromhex("12340000000100000000000000000600010001"), ("127.0.0.1", int(sys.argv[1])))
s.recv(512)
PY
    kill -0 "$(cat "$folder/pid")" 2>/dev/null || { echo "$name: named exited:" >&2; tail -20 "$folder/named.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name: BIND secondary on 127.0.0.1:$port, catalog $catalog (pid $(cat "$folder/pid"))" >&2
}

producer_zone() {  # api-port api-key zone: the catalog zone of a primary, once
  python3 - "$@" <<'PY'
import json, sys, urllib.error, urllib.request
port, key, zone = sys.argv[1:]
body = {"name": zone + ".", "kind": "Producer", "soa_edit_api": "EPOCH", "nameservers": []}
req = urllib.request.Request(
    f"http://127.0.0.1:{port}/api/v1/servers/localhost/zones", data=json.dumps(body).encode(),
    headers={"X-API-Key": key, "Content-Type": "application/json"}, method="POST")
try:
    urllib.request.urlopen(req, timeout=5)
except urllib.error.HTTPError as exc:
    if exc.code != 409:  # 409: there already
        sys.exit(f"catalog zone {zone}: HTTP {exc.code} {exc.read()[:200]!r}")
PY
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
  start-secondaries)
    [ -x "$PDNS" ] || { echo "pdns_server not found: apt-get install pdns-server pdns-backend-sqlite3" >&2; exit 2; }
    [ -x "$NAMED" ] || { echo "named not found: apt-get install bind9" >&2; exit 2; }
    start_one paid-1 "$PAID_DNS" "$PAID_API_PORT" ns1.paid-dns.example.
    # The free PowerDNS as a hidden primary: it notifies the secondaries alone, lets
    # them transfer, and looks for changes every second (a copy takes seconds).
    notify=""
    for p in $FREE_SECONDARY_PORTS; do notify="$notify${notify:+,}127.0.0.1:$p"; done
    EXTRA_CONF="primary=yes
allow-axfr-ips=127.0.0.0/8
only-notify=
also-notify=$notify
xfr-cycle-interval=1"
    start_one free "$FREE_DNS" "$FREE_API_PORT" ns1.free-dns.example.
    EXTRA_CONF=""
    producer_zone "$FREE_API_PORT" "$(cat "$DIR/free/api-key")" "$FREE_CATALOG"
    i=0
    for p in $FREE_SECONDARY_PORTS; do
      i=$((i + 1))
      start_bind "free-bind$i" "$p" "$FREE_CATALOG" "${FREE_DNS##*:}"
    done
    # Talk goes to stderr; stdout is only this line, for eval "$(... start-secondaries)".
    echo "export DNSL_CLUSTER_API_KEYS='{\"paid-1\": \"$(cat "$DIR/paid-1/api-key")\", \"free\": \"$(cat "$DIR/free/api-key")\"}'"
    ;;
  stop)
    # The secondaries first, so that no transfer fails on its way out.
    for folder in "$DIR"/free-bind* "$DIR/paid-1" "$DIR/free"; do
      if [ -d "$folder" ]; then stop_one "$(basename "$folder")"; fi
    done
    ;;
  status)
    for name in paid-1 free $(cd "$DIR" 2>/dev/null && ls -d free-bind* 2>/dev/null); do
      if [ -f "$DIR/$name/pid" ] && kill -0 "$(cat "$DIR/$name/pid")" 2>/dev/null; then
        echo "$name: running (pid $(cat "$DIR/$name/pid"))"
      else
        echo "$name: not running"
      fi
    done
    ;;
  *)
    echo "usage: $0 start|start-secondaries|stop|status" >&2
    exit 2
    ;;
esac
