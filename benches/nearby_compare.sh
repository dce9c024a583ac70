#!/usr/bin/env bash
# Nearby search through HTTP, with the same queries against Redis GEOSEARCH on the same
# points and an axum hello-world, all on this machine, for 100k and 1M scooters over Paris.
#
#   bash benches/nearby_compare.sh            # needs wrk (apt-get install wrk) and Redis on :6379
#
# With oha (`cargo install oha`) on the PATH, each size also gets an open-loop run: 20,000
# requests/s offered on a fixed schedule whatever the answers do, the latency of each
# counted from when it was due (`--latency-correction`), so a stall shows in the tail
# instead of lowering the offered rate as it does under wrk.
#
# The server is the optimised build with an embedded SQLite database in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
SIZES=${SIZES:-"100000 1000000"}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
OFFERED=${OFFERED:-20000}
PORT=18181
HELLO_PORT=18182
work=$(mktemp -d)
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    [ -n "${hello:-}" ] && kill "$hello" 2>/dev/null || true
    redis-cli -n 0 del scootfleet:bench:fleet >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet
cargo build --release --quiet --bench hello_server
hello_bin=$(ls -t target/release/deps/hello_server-* | grep -v '\.d$' | head -n 1)
HELLO_BIND=127.0.0.1:$HELLO_PORT "$hello_bin" >/dev/null 2>&1 &
hello=$!

cp benches/nearby.lua "$work/nearby.lua"
# The same queries paced: each of 72 connections waits 3 ms after every answer, which offers
# about 21,000 requests/s when answers take 0.4 ms (wrk has no open-loop mode, so a stall
# lowers the offered rate instead of queueing: the tail it reports is a lower bound).
{ cat "$work/nearby.lua"; echo 'delay = function() return 3 end'; } > "$work/paced.lua"

run_wrk() { # label url [script]
    local label=$1 url=$2 script=${3:-}
    local args=(-t2 -c"$CONNECTIONS" -d"$DURATION" --latency)
    [ -n "$script" ] && args+=(-s "$script")
    local out
    out=$(wrk "${args[@]}" "$url")
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    printf '| %s | %s req/s | p50 %s | p99 %s |\n' "$label" "$rps" "$p50" "$p99"
}

# Seconds until the server has used under 5 % of a core over half a second (at most 20 s).
settle() {
    local from now before after
    from=$(date +%s.%N)
    while :; do
        before=$(awk '{print $14 + $15}' "/proc/$server/stat")
        sleep 0.5
        after=$(awk '{print $14 + $15}' "/proc/$server/stat")
        now=$(date +%s.%N)
        if [ $((after - before)) -le $(($(getconf CLK_TCK) / 40)) ] ||
            [ "$(echo "$now - $from > 20" | bc)" = 1 ]; then
            echo "$now - $from" | bc
            return
        fi
    done
}

sleep 0.5
echo "| what | throughput | latency | |"
echo "| --- | --- | --- | --- |"
run_wrk "axum hello-world" "http://127.0.0.1:$HELLO_PORT/"

for n in $SIZES; do
    rm -rf "$work/db" && mkdir -p "$work/db"
    python3 - "$n" "$work/fleet.csv" "$work/redis.txt" <<'PY'
import random, sys
n, csv_path, redis_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
random.seed(7)
with open(csv_path, "w") as csv, open(redis_path, "w") as redis:
    csv.write("scooter_id,lat,lon,range_km,battery_pct\n")
    for i in range(n):
        lat = random.uniform(48.815, 48.902)
        lon = random.uniform(2.255, 2.415)
        rng = random.uniform(0, 45)
        csv.write(f"B-{i},{lat:.6f},{lon:.6f},{rng:.1f},50\n")
        if rng >= 5:
            redis.write(f"GEOADD scootfleet:bench:fleet {lon:.6f} {lat:.6f} B-{i}\n")
PY
    export DATABASE_URL="sqlite://$work/db/scootfleet.db"
    ./target/release/scootfleet scooters import "$work/fleet.csv" --tokens "$work/db/tokens.csv" >/dev/null 2>&1
    started=$(date +%s.%N)
    SCOOTFLEET_BIND=127.0.0.1:$PORT SCOOTFLEET_SILENCE_TIMEOUT_SECS=86400 \
        SCOOTFLEET_OPERATOR_EMAIL=bench@example.com SCOOTFLEET_OPERATOR_PASSWORD=bench-password-1 \
        RUST_LOG=warn ./target/release/scootfleet >"$work/server.log" 2>&1 &
    server=$!
    until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.05; done
    ready=$(date +%s.%N)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
    token=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/auth/login" -H 'content-type: application/json' \
        -d '{"email":"bench@example.com","password":"bench-password-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    curl -sf -X PUT "http://127.0.0.1:$PORT/v1/ops/hours" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"timezone":"Europe/Paris","open":"00:00","close":"24:00"}' >/dev/null
    printf '| start-up, %s scooters (SQLite) | %.2f s to healthy | RSS %s MiB | |\n' "$n" \
        "$(echo "$ready - $started" | bc)" "$((rss / 1024))"
    # Once healthy, the server still places its scooters in the zones and runs its first
    # sweeps (about 2 s of CPU at a million): the searches are measured once that is done.
    settled=$(settle)
    printf '| start-up work after healthy, %s scooters | done %.1f s later | | |\n' "$n" "$settled"
    run_wrk "nearby, $n scooters" "http://127.0.0.1:$PORT" "$work/nearby.lua"
    CONNECTIONS=72 run_wrk "nearby, $n scooters, paced (~21k req/s offered)" "http://127.0.0.1:$PORT" "$work/paced.lua"
    if command -v oha >/dev/null; then
        oha --no-tui -z "$DURATION" -q "$OFFERED" --latency-correction -c 256 --output-format json \
            --rand-regex-url "http://127.0.0.1:$PORT/v1/scooters/nearby[?]lat=48[.]8[3-7][0-9]{3}&lon=2[.](2[89]|3[0-9])[0-9]{3}&radius_m=500&limit=10" |
            python3 -c 'import json, sys
d = json.load(sys.stdin)
codes = d["statusCodeDistribution"]
rps, p = d["summary"]["requestsPerSec"], d["latencyPercentiles"]
print("| nearby, %s scooters, open loop (%s req/s offered, oha) | %.0f req/s, %d of %d answered 200 | p50 %.2fms | p99 %.2fms |"
      % (sys.argv[1], sys.argv[2], rps, codes.get("200", 0), sum(codes.values()), p["p50"] * 1000, p["p99"] * 1000))' "$n" "$OFFERED"
    fi
    redis-cli del scootfleet:bench:fleet >/dev/null
    redis-cli --pipe <"$work/redis.txt" >/dev/null
    # Redis slows down sharply with the fleet's size: fewer requests keep the run short.
    requests=$((n > 100000 ? 3000 : 50000))
    rps=$(redis-benchmark -q -n "$requests" -c "$CONNECTIONS" GEOSEARCH scootfleet:bench:fleet \
        FROMLONLAT 2.35 48.86 BYRADIUS 500 m ASC COUNT 10 | awk '{for (i=1;i<=NF;i++) if ($i ~ /requests/) print $(i-1)}' | tail -n 1)
    printf '| Redis GEOSEARCH, same points (500 m, 10, one centre) | %s req/s | | |\n' "$rps"
    kill "$server"; wait "$server" 2>/dev/null || true; server=
done
