#!/usr/bin/env bash
# throng attack against wrk and oha, side by side on the same targets (loopback only):
#   1. requests per CPU-second, one thread each, 50 connections, nginx `/ping`, 10 s;
#   2. rate accuracy: throng attack at a fixed 10,000 requests/s for 10 s, one thread;
#   3. memory per held connection, plain and TLS: each client holds N `sleep: 600000` requests
#      open against throng pong; the slope (RSS at 15,000 - RSS at 1,000) / 14,000 cancels the
#      fixed cost. Connections are counted with ss before RSS is read.
# wrk and nginx come from Debian, oha from crates.io (installed if missing; it takes minutes).
# Usage: bench/attack.sh        (EFFICIENCY_SECONDS=10 ROUNDS=3 HOLD=15000 by default; CLIENTS="throng wrk oha"
#        and MODES="plain tls" choose the memory runs)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${EFFICIENCY_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
HOLD=${HOLD:-15000}
BASE=1000
out=bench/out/attack
mkdir -p "$out"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
command -v oha >/dev/null || cargo install oha --locked -q || echo "oha could not be installed: its columns stay empty"
cargo build --release -q -p throng
throng=$PWD/target/release/throng

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
established_to() { ss -Htn state established "( dport = :$1 )" | wc -l; }
# Conditions for wait_for, which runs them again on every poll.
at_least() { [ "$(established_to "$1")" -ge "$2" ]; }
none_to() { [ "$(established_to "$1")" -eq 0 ]; }
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS > deadline)) && { echo "timed out: $*" >&2; return 1; }; sleep 0.2; done
}

# --- targets: nginx (1 worker) for /ping, throng pong (plain and TLS) for held requests ------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
# nginx on the last core, the client pinned to the first (bench/nginx-ping.sh).
source bench/nginx-ping.sh
start_nginx_ping "$out" 18500
# Each holding run gets a port of its own: a client killed after holding 15,000 connections
# leaves their ports in TIME_WAIT towards that address, and one address has only ~28k ports.
"$throng" pong --listen 127.0.0.1:18510-18519 --threads 1 >/dev/null 2>&1 &
pids+=($!)
"$throng" pong --listen 127.0.0.1:18520-18529 --threads 1 --tls-cert "$out/cert.pem" --tls-key "$out/key.pem" >/dev/null 2>&1 &
pids+=($!)
wait_for 20 curl -sf -o /dev/null http://127.0.0.1:18510/

echo "== 1. requests per CPU-second: one thread, 50 connections, ${SECONDS_EACH}s against nginx /ping, $ROUNDS rounds"
cpu_of() { grep -o 'cpu=[0-9.]*' "$1" | tail -1 | cut -d= -f2; }
# Each round runs every client once, in turn, so drift on the machine falls on all of them;
# the lists hold "requests:cpu_seconds" per round.
t_runs=""; w_runs=""; o_runs=""; t_success=1
for round in $(seq "$ROUNDS"); do
    echo "GET $ping" | python3 bench/cpu.py "${pin_client[@]}" "$throng" attack -threads=1 -rate=1000000 \
        -max-inflight=50 -duration="${SECONDS_EACH}s" -quiet -output "$out/efficiency.bin" 2>"$out/throng.cpu"
    read -r t_req t_ok <<<"$("$throng" report -type=json "$out/efficiency.bin" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["requests"], r["success"])')"
    t_success=$(python3 -c "print(min($t_success, $t_ok))")
    t_runs+=" $t_req:$(cpu_of "$out/throng.cpu")"
    python3 bench/cpu.py "${pin_client[@]}" wrk -t1 -c50 -d"${SECONDS_EACH}s" "$ping" >"$out/wrk.txt" 2>"$out/wrk.cpu"
    w_runs+=" $(awk '/requests in/ {print $1}' "$out/wrk.txt"):$(cpu_of "$out/wrk.cpu")"
    if command -v oha >/dev/null; then
        # oha spreads over every core unless pinned: one core, like the others' one thread.
        python3 bench/cpu.py "${pin_client[@]}" oha -z "${SECONDS_EACH}s" -c 50 --no-tui --output-format json "$ping" \
            >"$out/oha.json" 2>"$out/oha.cpu"
        o_runs+=" $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(r["statusCodeDistribution"].values()))' "$out/oha.json"):$(cpu_of "$out/oha.cpu")"
    fi
    echo "   round $round: throng ${t_runs##* }, wrk ${w_runs##* }, oha ${o_runs##* } (requests:cpu-seconds)"
done

echo "== 2. rate accuracy: 10,000 requests/s for 10 s, one thread"
echo "GET $ping" | "$throng" attack -threads=1 -rate=10000 -duration=10s -quiet -output "$out/accuracy.bin"
accuracy=$("$throng" report -type=json "$out/accuracy.bin" | python3 -c '
import json, sys
r = json.load(sys.stdin)["throng"]
lag = r["lag"]
print("%.1f %.0f %.0f" % (r["achieved_rate"], lag["99th"] / 1e3, lag["max"] / 1e3))')
read -r a_rate a_lag99_us a_lagmax_us <<<"$accuracy"

echo "== 3. memory per held connection (N=$BASE and N=$HOLD, sleep: 600000)"
# hold CLIENT MODE N PORT: starts the client holding N requests to pong on PORT, waits until
# the connections stop growing, prints "RSS_KiB CONNECTIONS", then stops it. throng's rate is one
# this machine keeps (a pong thread does ~1,000 TLS handshakes a second); the slope divides by
# the connections counted, not by N.
hold() {
    local client=$1 mode=$2 n=$3 port=$4 url rate
    if [[ $mode == tls ]]; then url=https://localhost:$port/; rate=1000; else url=http://127.0.0.1:$port/; rate=2500; fi
    case $client in
        # Two source addresses: past ~14,000 connections from one address to one port, each
        # connect() spends ~0.7 ms searching for a free port (Linux gives connect() the even
        # ports first), the schedule falls behind and the ramp ends short of N.
        throng) printf 'GET %s\nsleep: 600000\n' "$url" | "$throng" attack -threads=1 -rate=$rate \
                    -source=127.0.0.1-127.0.0.2 -duration="$(python3 -c "print($n / $rate)")s" \
                    -timeout=20m -insecure -http2=false -quiet -output /dev/null &;;
        wrk) wrk -t1 -c"$n" -d300s --timeout 600s -H 'sleep: 600000' "$url" >/dev/null &;;
        oha) oha -c "$n" -n "$n" --no-tui --insecure -t 600s -H 'sleep: 600000' "$url" >/dev/null 2>&1 &;;
    esac
    local pid=$!
    pids+=("$pid")
    local want=$((n * 97 / 100)) count previous=-1
    if ! wait_for 180 at_least "$port" "$want"; then
        echo "? ?"; kill -9 "$pid" 2>/dev/null; return
    fi
    count=$(established_to "$port")
    while [ "$count" != "$previous" ]; do sleep 3; previous=$count; count=$(established_to "$port"); done
    if [ -r "/proc/$pid/status" ]; then
        echo "$(rss_kib "$pid") $count"
    else
        echo "? ?" # the client exited on its own: no figure
    fi
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    wait_for 60 none_to "$port" || true
}
declare -A slope
declare -A next_port=([plain]=18510 [tls]=18520)
for mode in ${MODES:-plain tls}; do
    for client in ${CLIENTS:-throng wrk oha}; do
        if [[ $client == oha ]] && ! command -v oha >/dev/null; then slope[$client.$mode]="-"; continue; fi
        read -r low low_n <<<"$(hold "$client" "$mode" "$BASE" "${next_port[$mode]}")"
        next_port[$mode]=$((next_port[$mode] + 1))
        read -r high high_n <<<"$(hold "$client" "$mode" "$HOLD" "${next_port[$mode]}")"
        next_port[$mode]=$((next_port[$mode] + 1))
        if [[ $low == "?" || $high == "?" ]]; then slope[$client.$mode]="?"; continue; fi
        slope[$client.$mode]=$(( (high - low) * 1024 / (high_n - low_n) ))
        echo "   $client $mode: RSS ${low} KiB with $low_n held, ${high} KiB with $high_n: ${slope[$client.$mode]} B per connection"
    done
done

python3 - "$t_runs" "$w_runs" "$o_runs" "$t_success" "$a_rate" "$a_lag99_us" "$a_lagmax_us" \
    "${slope[throng.plain]:--}" "${slope[wrk.plain]:--}" "${slope[oha.plain]:--}" "${slope[throng.tls]:--}" "${slope[wrk.tls]:--}" "${slope[oha.tls]:--}" <<'PY'
import statistics, sys
(t_runs, w_runs, o_runs, t_ok, a_rate, lag99, lagmax, tp, wp, op, tt, wt, ot) = sys.argv[1:]
def rates(runs):
    return [float(req) / float(cpu) for req, cpu in (run.split(":") for run in runs.split()) if req and cpu]
t, w, o = rates(t_runs), rates(w_runs), rates(o_runs)
fmt = lambda xs: ", ".join(f"{x:,.0f}" for x in xs) or "-"
median = lambda xs: statistics.median(xs) if xs else None
print()
print(f"requests per CPU-second (1 thread, 50 connections), per round: throng {fmt(t)} (success {float(t_ok):.2%}); "
      f"wrk {fmt(w)}; oha {fmt(o)}")
ratios = [a / b for a, b in zip(t, w)]
print(f"throng / wrk per round: {', '.join(f'{r:.2f}x' for r in ratios) or '-'}")
print(f"accuracy at 10,000/s: achieved {a_rate}/s, lag p99 {lag99} us, max {lagmax} us")
print(f"bytes per held connection, plain: throng {tp}, wrk {wp}, oha {op}; TLS: throng {tt}, wrk {wt}, oha {ot}")
ratio = f"{median(ratios):.2f}x wrk (median of {len(ratios)} rounds)" if ratios else "-"
print(f"summary: throng/wrk requests per CPU-second {ratio}; "
      f"held connection plain {tp} B (wrk {wp}, oha {op}), TLS {tt} B (wrk {wt}, oha {ot}); "
      f"10k/s achieved {a_rate}, lag p99 {lag99} us")
PY
