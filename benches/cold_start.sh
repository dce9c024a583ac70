#!/usr/bin/env bash
# Cold start of the whole server on an embedded SQLite fleet: time from launch to /healthz
# answering, resident memory (VmRSS) then and 5 s later, and the start-up log's
# read_ms/build_ms. Several builds are run in turn, RUNS times, to compare them.
#
#   bash benches/cold_start.sh before=/path/to/old/scootfleet after=target/release/scootfleet
#
# N (1000000) scooters over Paris as in nearby_compare.sh, imported by the first build given
# (or use DB=DIR, a folder holding a scootfleet.db made so, to skip the import).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
RUNS=${RUNS:-2}
PORT=${PORT:-18191}
[ $# -gt 0 ] || { echo "usage: $0 label=binary ..." >&2; exit 1; }
work=$(mktemp -d)
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

db=${DB:-}
if [ -z "$db" ]; then
    db=$work/db && mkdir -p "$db"
    python3 - "$N" "$work/fleet.csv" <<'PY'
import random, sys
n, csv_path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
with open(csv_path, "w") as csv:
    csv.write("scooter_id,lat,lon,range_km,battery_pct\n")
    for i in range(n):
        lat = random.uniform(48.815, 48.902)
        lon = random.uniform(2.255, 2.415)
        rng = random.uniform(0, 45)
        csv.write(f"B-{i},{lat:.6f},{lon:.6f},{rng:.1f},50\n")
PY
    first=${1#*=}
    DATABASE_URL="sqlite://$db/scootfleet.db" "$first" scooters import "$work/fleet.csv" \
        --tokens "$db/tokens.csv" >/dev/null 2>&1
    # The import leaves its writes in the log: copied into the database before any run.
    python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('pragma wal_checkpoint(truncate)')" \
        "$db/scootfleet.db"
fi

echo "| build | to healthy | RSS at healthy | RSS 5 s later | start-up log | load average |"
echo "| --- | --- | --- | --- | --- | --- |"
for _ in $(seq "$RUNS"); do
    for run in "$@"; do
        label=${run%%=*} bin=${run#*=}
        load=$(cut -d' ' -f1 /proc/loadavg)
        started=$(date +%s.%N)
        DATABASE_URL="sqlite://$db/scootfleet.db" SCOOTFLEET_BIND=127.0.0.1:$PORT \
            SCOOTFLEET_SILENCE_TIMEOUT_SECS=86400 SCOOTFLEET_OPERATOR_EMAIL=bench@example.com \
            SCOOTFLEET_OPERATOR_PASSWORD=bench-password-1 RUST_LOG=info NO_COLOR=1 \
            "$bin" >"$work/server.log" 2>&1 &
        server=$!
        until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.02; done
        ready=$(date +%s.%N)
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
        sleep 5
        later=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
        kill "$server"; wait "$server" 2>/dev/null || true; server=
        times=$(sed 's/\x1b\[[0-9;]*m//g' "$work/server.log" | grep -o 'read_ms=[0-9]* build_ms=[0-9]*' | head -n 1 || true)
        printf '| %s | %.2f s | %d MiB (%.0f B a scooter) | %d MiB | %s | %s |\n' "$label" \
            "$(echo "$ready - $started" | bc)" $((rss / 1024)) "$(echo "$rss * 1024 / $N" | bc -l)" \
            $((later / 1024)) "$times" "$load"
    done
done
