#!/usr/bin/env bash
# The generator's CPU at fixed rates, beside wrk2 (the fixed-rate, coordinated-omission-corrected
# wrk): one thread, 50 connections (throng: -connections=50 -max-inflight=50), nginx `/ping` (1 worker),
# each side on a core of its own.
# For each rate: throng attack (default: each request at its due time, no busy-waiting),
# throng attack --batch=1ms (the requests due in each millisecond go out together, wrk2's trade),
# throng attack --precise (spins the last 100 us before each send), and wrk2 -R; CPU seconds per request (getrusage of the client),
# throng's lag p99 (how late it sent) and each client's latency p99.
# wrk2 calibrates for 10 s, so its runs last SECONDS_EACH + 10 s; CPU is divided by the requests
# each client reports, so the longer run does not favour it.
# Usage: bench/fixed-rate.sh   (RATES="1000 5000 20000 40000" SECONDS_EACH=15 ROUNDS=1; wrk2 from
#        ../shared/peers/bin when there, its columns empty when not)
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"1000 5000 20000 40000"}
SECONDS_EACH=${SECONDS_EACH:-15}
ROUNDS=${ROUNDS:-1}
out=bench/out/fixed-rate
mkdir -p "$out"
[ -x /usr/sbin/nginx ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }
wrk2=""
if [ -x ../shared/peers/bin/wrk2 ]; then wrk2=$(cd ../shared/peers/bin && pwd)/wrk2; else echo "no wrk2 in ../shared/peers/bin: its columns stay empty"; fi
cargo build --release -q -p throng
throng=$PWD/target/release/throng

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
source bench/nginx-ping.sh
start_nginx_ping "$out" 18600
cpu_of() { grep -o 'cpu=[0-9.]*' "$1" | tail -1 | cut -d= -f2; }

printf '%-7s %-16s %10s %9s %12s %10s %10s\n' rate client requests cpu_s us_per_req lag_p99_us p99_ms
for round in $(seq "$ROUNDS"); do
    for rate in $RATES; do
        for mode in default batch=1ms precise; do
            flag=()
            case $mode in precise) flag=(--precise) ;; batch=*) flag=(--batch="${mode#batch=}") ;; esac
            echo "GET $ping" | python3 bench/cpu.py "${pin_client[@]}" "$throng" attack -threads=1 -connections=50 -max-inflight=50 \
                -rate="$rate" -duration="${SECONDS_EACH}s" -quiet "${flag[@]}" -output "$out/throng.bin" 2>"$out/throng.cpu"
            read -r req lag p99 <<<"$("$throng" report -type=json "$out/throng.bin" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["requests"], r["throng"]["lag"]["99th"] // 1000, "%.2f" % (r["latencies"]["99th"] / 1e6))')"
            cpu=$(cpu_of "$out/throng.cpu")
            printf '%-7s %-16s %10s %9s %12.2f %10s %10s\n' "$rate" "throng $mode" "$req" "$cpu" \
                "$(python3 -c "print($cpu / $req * 1e6)")" "$lag" "$p99"
        done
        if [ -n "$wrk2" ]; then
            python3 bench/cpu.py "${pin_client[@]}" "$wrk2" -t1 -c50 -d"$((SECONDS_EACH + 10))s" -R"$rate" -L "$ping" \
                >"$out/wrk2.txt" 2>"$out/wrk2.cpu"
            req=$(awk '/requests in/ {print $1}' "$out/wrk2.txt")
            p99=$(awk '$1 == "99.000%" {print $2}' "$out/wrk2.txt" | head -1)
            cpu=$(cpu_of "$out/wrk2.cpu")
            printf '%-7s %-16s %10s %9s %12.2f %10s %10s\n' "$rate" "wrk2" "$req" "$cpu" \
                "$(python3 -c "print($cpu / $req * 1e6)")" "-" "$p99"
        fi
    done
done
