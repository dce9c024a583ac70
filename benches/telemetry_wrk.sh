#!/usr/bin/env bash
# Telemetry through HTTP under wrk, the server alone in its process: one point per request,
# then batches of 100 points, each first alone and then while a second wrk serves nearby
# searches at about 5,000 requests/s.
#
#   bash benches/telemetry_wrk.sh                       # SQLite; needs wrk (apt-get install wrk)
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench bash benches/telemetry_wrk.sh
#   SCOOTFLEET_BIN=/path/to/scootfleet bash benches/telemetry_wrk.sh   # a binary built before
#   LOAD=lean bash benches/telemetry_wrk.sh     # the load from benches/telemetry_load.rs
#   ORDER=random bash benches/telemetry_wrk.sh  # scooters in a shuffled order, not the CSV's
#   CONNECTIONS=256 DURATION=8s SCOOTERS=10000 bash benches/telemetry_wrk.sh   # the defaults: 64, 10s, 10000
#
# The PostgreSQL database is dropped and created again. Every 202 comes after its points
# are committed (group commit) and shown in the live index.
#
# Each line also gives the server's CPU time over the line (from /proc): the cores it used,
# and that time per request served (telemetry and, where they run, searches). The load
# generators share the machine's cores with the server, so requests/s move with whatever
# else runs; CPU per request moves less, and tells a cheaper server from a luckier run.
# The column before the last is how many points each group commit stored on average, and how
# many each sync of SQLite's log covered (the fewer commits and syncs, the less each point
# costs). The last is what the server wrote to its files a point stored, in KiB (the pages
# it dirtied: the log's frames and the checkpoints' copies): the disk must sync all of it.
#
# The load: `wrk` running benches/telemetry.lua (and benches/nearby.lua beside it), or with
# LOAD=lean the generator of benches/telemetry_load.rs, which sends the same points and
# searches for about half of wrk's CPU a request, leaving the rest of the two cores to the
# server. The load's column gives its own CPU time a request.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
SCOOTERS=${SCOOTERS:-10000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
PORT=18183
work=$(mktemp -d)
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

LOAD=${LOAD:-wrk}
case "$LOAD" in
    wrk) ;;
    lean)
        cargo build --release --quiet --bench telemetry_load
        lean=$(ls -t target/release/deps/telemetry_load-* | grep -v '\.d$' | head -n 1)
        ;;
    *) echo "LOAD is wrk or lean, not $LOAD" >&2; exit 1 ;;
esac
command -v /usr/bin/time >/dev/null || { echo "/usr/bin/time is missing: apt-get install time" >&2; exit 1; }

bin=${SCOOTFLEET_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=./target/release/scootfleet
fi
if [ -n "${DATABASE_URL:-}" ]; then
    admin="${DATABASE_URL%/*}/postgres"
    name="${DATABASE_URL##*/}"
    psql -q "$admin" -c "drop database if exists $name" -c "create database $name" >/dev/null
    backend=PostgreSQL
else
    export DATABASE_URL="sqlite://$work/scootfleet.db"
    backend=SQLite
fi

python3 - "$SCOOTERS" "$work/fleet.csv" <<'PY'
import random, sys
n, csv_path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
with open(csv_path, "w") as csv:
    csv.write("scooter_id,lat,lon,range_km,battery_pct\n")
    for i in range(n):
        csv.write(f"B-{i},{random.uniform(48.83, 48.88):.6f},{random.uniform(2.28, 2.40):.6f},30,50\n")
PY
"$bin" scooters import "$work/fleet.csv" --tokens "$work/tokens.csv" >/dev/null 2>&1
SCOOTFLEET_BIND=127.0.0.1:$PORT SCOOTFLEET_SILENCE_TIMEOUT_SECS=86400 \
    SCOOTFLEET_OPERATOR_EMAIL=bench@example.com SCOOTFLEET_OPERATOR_PASSWORD=bench-password-1 \
    RUST_LOG=warn "$bin" >"$work/server.log" 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.05; done
token=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench-password-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sf -X PUT "http://127.0.0.1:$PORT/v1/ops/hours" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"timezone":"Europe/Paris","open":"00:00","close":"24:00"}' >/dev/null

# The points come from benches/telemetry.lua: each wrk thread sends for its own half of the
# scooters, round after round, every point newer than the last (see there).
cp benches/nearby.lua "$work/nearby.lua"
# About 5,000 searches/s: 20 connections, each waiting 3 ms after every answer (about 4 ms
# a round with the answer).
{ cat "$work/nearby.lua"; echo 'delay = function() return 3 end'; } > "$work/nearby_5k.lua"

stored() { metric scootfleet_telemetry_points_total; }
# A counter of the server's /metrics (0 before it first counts).
metric() {
    local out
    out=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v name="$1" '$1 == name {print $2}')
    echo "${out:-0}"
}
# Telemetry commits (groups) and syncs of SQLite's log so far, "groups syncs".
groups_syncs() {
    echo "$(metric scootfleet_telemetry_commit_seconds_count) $(metric scootfleet_sqlite_log_syncs_total)"
}
# The server's CPU time so far, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
# Bytes the server has written to its files so far (counted as page-cache pages it dirtied:
# the log's frames, the checkpoints' copies into the database file).
disk_bytes() { awk '$1 == "write_bytes:" {print $2}' "/proc/$server/io"; }
ticks_per_second=$(getconf CLK_TCK)
report() { # label load-output points-before points-after seconds cpu-ticks requests groups syncs load-cpu-seconds disk-bytes
    local rps p50 p99 non points syncs="-" disk="-"
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$2")
    p50=$(awk '$1=="50%" {print $2}' <<<"$2")
    p99=$(awk '$1=="99%" {print $2}' <<<"$2")
    non=$(awk '/non-2xx answers/ {print $3}' <<<"$2")
    points=$(echo "$4 - $3" | bc -l)
    [ "$9" -gt 0 ] && syncs=$(printf '%.0f' "$(echo "$points / $9" | bc -l)")
    [ "$points" != 0 ] && disk=$(printf '%.1f' "$(echo "${11} / 1024 / $points" | bc -l)")
    printf '| %s | %s | %s req/s | %.0f points/s stored | p50 %s | p99 %s | non-2xx %s | %.2f cores, %.0f µs a request | %.0f µs a request | %.1f, %s | %s |\n' \
        "$backend" "$1" "$rps" "$(echo "$points / $5" | bc -l)" "$p50" "$p99" "${non:-?}" \
        "$(echo "$6 / $ticks_per_second / $5" | bc -l)" "$(echo "$6 * 1000000 / $ticks_per_second / $7" | bc -l)" \
        "$(echo "${10} * 1000000 / $7" | bc -l)" "$(echo "$points / ($8 + 0.000001)" | bc -l)" "$syncs" "$disk"
}
# The user and system CPU seconds /usr/bin/time wrote to a file.
load_cpu() { awk '{print $1 + $2}' "$1"; }
served() { awk '/requests in/ {print $1}' <<<"$1"; }
seconds=${DURATION%s}
telemetry() { # label points-per-request [nearby]
    local before after out nearby_out="" ticks requests counted load_seconds written
    before=$(stored)
    counted=$(groups_syncs)
    ticks=$(cpu_ticks)
    written=$(disk_bytes)
    if [ "$LOAD" = lean ]; then
        local all
        all=$(TARGET=127.0.0.1:$PORT TOKENS="$work/tokens.csv" POINTS=$2 CONNECTIONS=$CONNECTIONS \
            DURATION=$seconds NEARBY_RATE=$([ -n "${3:-}" ] && echo 5000 || echo 0) \
            /usr/bin/time -f '%U %S' -o "$work/load.time" "$lean")
        out=$(awk '/^== /{part=$2; next} part=="telemetry"' <<<"$all")
        nearby_out=$(awk '/^== /{part=$2; next} part=="nearby"' <<<"$all")
        load_seconds=$(load_cpu "$work/load.time")
    else
        if [ -n "${3:-}" ]; then
            /usr/bin/time -f '%U %S' -o "$work/nearby.time" \
                wrk -t1 -c20 -d"$DURATION" --latency -s "$work/nearby_5k.lua" "http://127.0.0.1:$PORT" >"$work/nearby.out" &
            local nearby=$!
        fi
        out=$(POINTS=$2 TOKENS="$work/tokens.csv" /usr/bin/time -f '%U %S' -o "$work/load.time" \
            wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/telemetry.lua "http://127.0.0.1:$PORT")
        load_seconds=$(load_cpu "$work/load.time")
        if [ -n "${3:-}" ]; then
            wait "$nearby"
            nearby_out=$(cat "$work/nearby.out")
            load_seconds=$(echo "$load_seconds + $(load_cpu "$work/nearby.time")" | bc -l)
        fi
    fi
    requests=$(served "$out")
    [ -n "$nearby_out" ] && requests=$((requests + $(served "$nearby_out")))
    ticks=$(($(cpu_ticks) - ticks))
    written=$(($(disk_bytes) - written))
    after=$(stored)
    read -r groups syncs <<<"$(groups_syncs)"
    read -r groups_before syncs_before <<<"$counted"
    report "$1" "$out" "$before" "$after" "$seconds" "$ticks" "$requests" \
        "$((groups - groups_before))" "$((syncs - syncs_before))" "$load_seconds" "$written"
    if [ -n "${3:-}" ]; then
        printf '| %s | nearby served meanwhile | %s req/s | | p50 %s | p99 %s | | | | | |\n' "$backend" \
            "$(awk '/Requests\/sec/ {print $2}' <<<"$nearby_out")" \
            "$(awk '$1=="50%" {print $2}' <<<"$nearby_out")" "$(awk '$1=="99%" {print $2}' <<<"$nearby_out")"
    fi
}

echo "| backend | what | requests | telemetry | latency | | | server CPU (all requests of the line) | load's CPU ($LOAD) | points a commit, a log sync | KiB written a point |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
# A first pass over every scooter: dispatch learns each one, which costs one database write
# per scooter on its first point after a start (measured apart, as the warm-up).
telemetry "warm-up: each scooter's first points after the start" 1
telemetry "1 point per request" 1
telemetry "1 point per request, with ~5k nearby/s" 1 nearby
telemetry "100 points per request" 100
telemetry "100 points per request, with ~5k nearby/s" 100 nearby
