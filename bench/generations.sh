#!/usr/bin/env bash
# What an old generation costs while it waits, throng proxy beside HAProxy 2.6 (master-worker,
# seamless reload): PER TLS connections are held (a request in flight each, pong answers after
# 600 s), then the proxy reloads, GENERATIONS times, so that every generation (every HAProxy
# worker) holds PER connections; then the same total held by one generation, for the baseline.
# Reported per proxy: threads, processes and resident memory of everything alive with
# GENERATIONS+1 generations and with one, and the difference per old generation. throng runs
# at its defaults (max_generations 32): one reload more than it lets live is refused, which the
# script checks.
# Usage: bench/generations.sh   (PER=100 GENERATIONS=31 THREADS=2 PROXIES="throng haproxy")
set -euo pipefail
cd "$(dirname "$0")/.."

PER=${PER:-100}
GENERATIONS=${GENERATIONS:-31}
THREADS=${THREADS:-2}
PROXIES=${PROXIES:-"throng haproxy"}
out=bench/out/generations
mkdir -p "$out"

source bench/proxies.sh

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    pkill -9 -f "proxy -c $work/throng.toml" 2>/dev/null || true
    pkill -9 -f "haproxy .*-f $work/haproxy.cfg" 2>/dev/null || true
    pkill -9 -f "bench/hold.py 127.0.0.1" 2>/dev/null || true
}
trap cleanup EXIT
measure() { # measure PROXY: "processes threads rss_kib", rss the median of 5 samples 1 s apart
    local proxy=$1 samples=() running
    mapfile -t running < <(proxy_pids "$proxy")
    for _ in 1 2 3 4 5; do samples+=("$(rss_kib_of "${running[@]}")"); sleep 1; done
    local rss
    rss=$(printf '%s\n' "${samples[@]}" | sort -n | sed -n 3p)
    echo "${#running[@]} $(threads_of "${running[@]}") $rss"
}
hold() { # hold PORT COUNT LOG: COUNT more connections held, once they are
    python3 bench/hold.py 127.0.0.1 "$1" -n "$2" --tls --header "sleep: 600000-600000" \
        --max-seconds 900 > "$3" 2>&1 &
    pids+=($!)
    wait_for 120 grep -q "^held" "$3"
}

work=$(mktemp -d)
certificate
pong_port=$(free_port)
"$throng" pong --listen "127.0.0.1:$pong_port" --threads 1 > "$out/pong.log" 2>&1 &
pids+=($!)
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$pong_port" 2>/dev/null

start_proxy() { # start_proxy PROXY PORT
    case $1 in
    throng)
        cat > "$work/throng.toml" <<TOML
[global]
threads = $THREADS
log = "off"
admin = "127.0.0.1:$admin_port"

[defaults.timeout]
client = "1h"
server = "1h"

[frontends.tls]
bind = ["127.0.0.1:$2"]
default_backend = "pong"
tls = { certificates = [{ cert = "cert.pem", key = "key.pem" }] }

[backends.pong]
servers = [{ name = "pong", address = "127.0.0.1:$pong_port" }]
TOML
        "$throng" proxy -c "$work/throng.toml" > "$out/throng-proxy.log" 2>&1 &
        pids+=($!)
        master=$!
        ;;
    haproxy)
        cat > "$work/haproxy.cfg" <<CFG
global
    nbthread $THREADS
    stats socket $work/haproxy.sock mode 600 level admin expose-fd listeners
defaults
    mode http
    timeout client 1h
    timeout server 1h
    timeout connect 5s
frontend tls
    bind 127.0.0.1:$2 ssl crt $work/combined.pem alpn http/1.1
    default_backend pong
backend pong
    server pong 127.0.0.1:$pong_port
CFG
        haproxy -W -db -f "$work/haproxy.cfg" > "$out/haproxy.log" 2>&1 &
        pids+=($!)
        master=$!
        ;;
    esac
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null
    sleep 0.5
}

stop_proxy() {
    for pid in $(proxy_pids "$1"); do kill -9 "$pid" 2>/dev/null || true; done
    pkill -9 -f "bench/hold.py 127.0.0.1" 2>/dev/null || true
    sleep 1
}

for proxy in $PROXIES; do
    admin_port=$(free_port)
    # Many generations, PER connections each.
    port=$(free_port)
    start_proxy "$proxy" "$port"
    for i in $(seq 1 "$GENERATIONS"); do
        hold "$port" "$PER" "$out/hold-$proxy-$i.log"
        kill -"$( [ "$proxy" = throng ] && echo HUP || echo USR2 )" "$master"
        sleep 1
    done
    hold "$port" "$PER" "$out/hold-$proxy-last.log"
    read -r many_processes many_threads many_rss < <(measure "$proxy")
    refused=""
    if [ "$proxy" = throng ] && [ $((GENERATIONS + 1)) -ge 32 ]; then
        # One reload past max_generations (32): refused, nothing cut.
        kill -HUP "$master"
        wait_for 10 grep -q "reload refused: max_generations" "$out/throng-proxy.log" \
            && refused="; reload number $((GENERATIONS + 1)) refused: $(grep -o 'max_generations [0-9]*: [0-9]* generations are alive' "$out/throng-proxy.log" | tail -1)"
    fi
    dropped=0
    for log in "$out"/hold-"$proxy"-[0-9]*.log "$out/hold-$proxy-last.log"; do
        closed=$( (grep "^closed" "$log" || true) | tail -1 | awk '{print $2}')
        dropped=$((dropped + ${closed:-0}))
    done
    stop_proxy "$proxy"
    # One generation holding as many.
    port=$(free_port)
    start_proxy "$proxy" "$port"
    hold "$port" $((PER * (GENERATIONS + 1))) "$out/hold-$proxy-one.log"
    read -r one_processes one_threads one_rss < <(measure "$proxy")
    stop_proxy "$proxy"
    per_rss=$(( (many_rss - one_rss) / GENERATIONS ))
    echo "$proxy: $((GENERATIONS + 1)) generations of $PER held each: $many_processes processes, $many_threads threads, $((many_rss / 1024)) MiB; one generation of $((PER * (GENERATIONS + 1))): $one_processes processes, $one_threads threads, $((one_rss / 1024)) MiB; each old generation: $(( (many_threads - one_threads) / GENERATIONS )) threads, ${per_rss} KiB; held connections closed meanwhile: $dropped$refused"
done
