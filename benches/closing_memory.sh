#!/usr/bin/env bash
# Resident memory of a server holding a large fleet while every scooter changes state at
# once (closing time), and while the GBFS vehicle feed is served; one server at a time.
#
#   DB=DIR bash benches/closing_memory.sh target/release/scootfleet
#
# DIR holds pristine.db, a fleet imported as benches/cold_start.sh imports it, its log
# checkpointed; each run starts on a copy of it. The server starts with opening hours that
# have just ended (closed now, in Europe/Paris), so the closing-time worker moves the whole
# fleet to non_operational/off_hours; VmRSS and the events stored are sampled every STEP
# seconds until the sweep is done. Then the hours are set to all day (the opening sweep
# brings every scooter back), and once it is done /gbfs/v3/vehicle_status.json is fetched
# FEEDS times (3; 0 for none); VmRSS before, at its peak (sampled every 0.2 s) and after
# are shown.
# SWEEPS=0 skips both sweeps: the server starts open all day, and only the feed is measured.
# SWEEPS=silence starts it open all day with a silence timeout of 60 s instead: every
# scooter has been silent since its import, so the silence sweep marks the whole fleet
# `non_contactable` (events `comms_lost`), followed as the other sweeps are.
# TELEMETRY=SECONDS (with SWEEPS=0) first sends points for that long, one per request, from
# scooter after scooter of DIR/tokens.csv (the import's tokens) by wrk with
# benches/telemetry.lua, at 30 km of range:
# each scooter's first point re-arms it for dispatch, which the server then remembers. Each
# point is within about 2 m of where DIR/fleet.csv (the imported file) put the scooter, as
# a parked scooter's GPS wanders; WANDER=0 sends them instead to a 3 × 3.5 km square (every
# first point a long move). VmRSS is shown before, during (sampled each second: median and
# peak), 1 s after, and SETTLE (14) seconds later, past the server's next heap trim (as
# after the feed).
# NEARBY=SECONDS (with SWEEPS=0) first runs nearby searches for that long, as
# nearby_compare.sh does, saturating and then paced.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: DB=DIR $0 path/to/scootfleet}
db=${DB:?DB=DIR, a folder with pristine.db}
N=${N:-1000000}
STEP=${STEP:-5}
SWEEPS=${SWEEPS:-1}
FEEDS=${FEEDS:-3}
TELEMETRY=${TELEMETRY:-0}
PORT=${PORT:-18192}
work=$(mktemp -d)
cleanup() {
    if [ -n "${server:-}" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cp "$db/pristine.db" "$work/scootfleet.db"
url="http://127.0.0.1:$PORT"
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$server/status"; }
# VmRSS in its parts: the heap and other private memory, mapped files (SQLite's database
# and log index), shared memory.
rss_parts() { awk '/RssAnon|RssFile|RssShmem/ {printf "%s %d MiB ", $1, $2 / 1024}' "/proc/$server/status"; }
events() {
    python3 -c "import sqlite3, sys; c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); print(c.execute(\"select count(*) from scooter_events where event_type = ?\", (sys.argv[2],)).fetchone()[0])" \
        "$work/scootfleet.db" "$1"
}
# Wait until `events KIND` stops growing, printing a line every STEP seconds.
follow() {
    local kind=$1 before=-1 now started=$SECONDS
    while :; do
        sleep "$STEP"
        now=$(events "$kind")
        printf '| %s | %d s | %d MiB | %d | %d MiB |\n' "$kind" $((SECONDS - started)) "$(rss)" "$now" \
            $(( $(stat -c %s "$work/scootfleet.db-wal" 2>/dev/null || echo 0) / 1048576 ))
        [ "$now" = "$before" ] && [ "$now" -gt 0 ] && break
        before=$now
    done
}

# The hours stored before the start: 09:00–10:00, so closed now unless it is 9 in Paris;
# or all day without the sweeps.
python3 - "$work/scootfleet.db" "$SWEEPS" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
open_minute, close_minute = (540, 600) if sys.argv[2] == "1" else (0, 1440)
c.execute("insert into operating_hours (version, created_at_ms, created_by, timezone, "
          "open_minute, close_minute) select coalesce(max(version), 0) + 1, 0, null, "
          "'Europe/Paris', ?, ? from operating_hours", (open_minute, close_minute))
c.commit()
PY
DATABASE_URL="sqlite://$work/scootfleet.db" SCOOTFLEET_BIND=127.0.0.1:$PORT \
    SCOOTFLEET_SILENCE_TIMEOUT_SECS=$([ "$SWEEPS" = silence ] && echo 60 || echo 86400) \
    SCOOTFLEET_OPERATOR_EMAIL=bench@example.com \
    SCOOTFLEET_OPERATOR_PASSWORD=bench-password-1 RUST_LOG=warn,scootfleet::fleet::workers=info \
    "$bin" >"$work/server.log" 2>&1 &
server=$!
until curl -sf "$url/healthz" >/dev/null; do sleep 0.05; done
echo "healthy after $SECONDS s at $(rss) MiB ($(( $(rss) * 1048576 / N )) B a scooter): $(rss_parts)"
if [ "${NEARBY:-0}" != 0 ]; then
    # The searches of nearby_compare.sh, from 64 connections, then paced (72 connections,
    # each waiting 3 ms after every answer).
    { cat benches/nearby.lua; echo 'delay = function() return 3 end'; } > "$work/paced.lua"
    for run in "64 benches/nearby.lua" "72 $work/paced.lua"; do
        out=$(wrk -t2 -c"${run%% *}" -d"${NEARBY}s" --latency -s "${run#* }" "$url")
        echo "nearby, ${run%% *} connections$([ "${run%% *}" = 72 ] && echo ', paced'):" \
            "$(awk '/Requests\/sec/ {print $2}' <<<"$out") req/s," \
            "p50 $(awk '$1=="50%" {print $2}' <<<"$out"), p99 $(awk '$1=="99%" {print $2}' <<<"$out")"
    done
fi
if [ "$TELEMETRY" != 0 ]; then
points() { curl -sf "$url/metrics" | awk '/^scootfleet_telemetry_points_total/ {print $2}'; }
# The server's rebuilds of its worn tree, from its log: each one's time, whole and under
# the lock (builds that log none: "none logged").
rebuilds() {
    sed 's/\x1b\[[0-9;]*m//g' "$work/server.log" | awk '
        /live index tree rebuilt/ {
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^took_ms=/) { sub(/^took_ms=/, "", $i); took = $i }
                if ($i ~ /^locked_ms=/) { sub(/^locked_ms=/, "", $i); locked = $i }
            }
            list = list sprintf("%s%.0f ms (%.1f under the lock)", n++ ? ", " : "", took, locked)
        }
        END { print n ? n ": " list : "none logged" }'
}
before=$(rss)
( while sleep 1; do rss; done ) > "$work/rss-telemetry" 2>/dev/null &
sampler=$!
TOKENS="$db/tokens.csv" FLEET="$([ "${WANDER:-1}" != 0 ] && echo "$db/fleet.csv")" \
    wrk -t2 -c64 -d"${TELEMETRY}s" -s benches/telemetry.lua "$url" | awk '/Requests\/sec|non-2xx/'
kill "$sampler"; wait "$sampler" 2>/dev/null || true
during=$(sort -n "$work/rss-telemetry" | awk '{v[NR] = $1} END {printf "median %d, peak %d", v[int((NR + 1) / 2)], v[NR]}')
sleep 1
echo "telemetry for $TELEMETRY s: $(points) points stored (of $N scooters); VmRSS $before MiB before, $during MiB during (each second), $(rss) MiB 1 s after ($(( $(rss) * 1048576 / N )) B a scooter): $(rss_parts)"
sleep "${SETTLE:-14}"
echo "VmRSS $(rss) MiB ($(( $(rss) * 1048576 / N )) B a scooter) $((${SETTLE:-14} + 1)) s after: $(rss_parts)"
echo "live index rebuilds so far: $(rebuilds)"
fi
if [ "$SWEEPS" = silence ]; then
echo "| sweep | since healthy | VmRSS | events stored | log file |"
echo "| --- | --- | --- | --- | --- |"
follow comms_lost
elif [ "$SWEEPS" != 0 ]; then
echo "| sweep | since healthy | VmRSS | events stored | log file |"
echo "| --- | --- | --- | --- | --- |"
follow off_hours

token=$(curl -sf -X POST "$url/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench-password-1"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sf -X PUT "$url/v1/ops/hours" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' \
    -d '{"timezone":"Europe/Paris","open":"00:00","close":"24:00"}' >/dev/null
follow on_hours
fi

[ "$FEEDS" != 0 ] || exit 0
before=$(rss)
peak=$before
( while sleep 0.2; do rss; done ) > "$work/rss" 2>/dev/null &
sampler=$!
for _ in $(seq "$FEEDS"); do
    curl -sf "$url/gbfs/v3/vehicle_status.json" -o "$work/feed.json" -w '%{size_download} B in %{time_total} s\n'
done
sleep 1
kill "$sampler"; wait "$sampler" 2>/dev/null || true
peak=$(sort -n "$work/rss" | tail -n 1)
vehicles=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['data']['vehicles']))" "$work/feed.json")
echo "vehicle_status ($vehicles vehicles, $FEEDS fetches): VmRSS $before MiB before, peak $peak MiB, $(rss) MiB 1 s after: $(rss_parts)"
sleep "${SETTLE:-14}"
echo "VmRSS $(rss) MiB $((${SETTLE:-14} + 1)) s after the feed: $(rss_parts)"
