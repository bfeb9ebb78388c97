#!/usr/bin/env bash
# The story's tipping point, side by side: `throng knee` through throng proxy and through HAProxy
# (Debian's), each with THREADS threads, the same ECDSA P-256 certificate, throng pong (1 thread)
# behind, TLS, everything on this machine's cores. Twice per proxy: with keep-alive, and with a
# new TLS connection per request (-keepalive=false: the story's ab runs, vegeta's differed).
# Then the proxy's CPU at its knee: a 10 s attack at the knee's rate, the proxy's CPU seconds
# (user + system, /proc/PID/stat) over those 10 s.
# Usage: bench/knee.sh   (THREADS=2 SLO=p99=50ms STEP=5s PROXIES="throng haproxy"
#        MODES="keepalive newconn")
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
SLO=${SLO:-p99=50ms}
STEP=${STEP:-5s}
PROXIES=${PROXIES:-"throng haproxy"}
MODES=${MODES:-"keepalive newconn"}
out=bench/out/knee
mkdir -p "$out"
command -v haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; }
cargo build --release -q -p throng
throng=$PWD/target/release/throng

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

work=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"

start_proxy() { # start_proxy NAME TLS_PORT PONG_PORT: sets proxy_pid
    local name=$1 tls=$2 pong=$3
    if [ "$name" = throng ]; then
        cat > "$work/throng.toml" <<TOML
[global]
threads = $THREADS
log = "off"
[defaults.timeout]
client = "1h"
server = "1h"
[frontends.tls]
bind = ["127.0.0.1:$tls"]
default_backend = "pong"
tls = { certificates = [{ cert = "cert.pem", key = "key.pem" }] }
[backends.pong]
servers = [{ name = "pong", address = "127.0.0.1:$pong" }]
TOML
        "$throng" proxy -c "$work/throng.toml" > "$out/throng-proxy.log" 2>&1 &
    else
        cat > "$work/haproxy.cfg" <<CFG
global
    nbthread $THREADS
    maxconn 9900
defaults
    mode http
    timeout client 1h
    timeout server 1h
    timeout connect 5s
frontend tls
    bind 127.0.0.1:$tls ssl crt $work/combined.pem alpn http/1.1
    default_backend pong
backend pong
    server pong 127.0.0.1:$pong
CFG
        haproxy -db -f "$work/haproxy.cfg" > "$out/haproxy.log" 2>&1 &
    fi
    proxy_pid=$!
    pids+=("$proxy_pid")
    wait_port "$tls"
}

printf '%-8s %-10s %10s %-11s %12s %s\n' proxy mode knee confidence cpu_at_knee steps
for proxy in $PROXIES; do
    for mode in $MODES; do
        pong=$(free_port); tls=$(free_port)
        "$throng" pong --listen "127.0.0.1:$pong" --threads 1 > "$out/pong.log" 2>&1 &
        pong_pid=$!; pids+=("$pong_pid")
        wait_port "$pong"
        start_proxy "$proxy" "$tls" "$pong"
        keepalive=true; [ "$mode" = newconn ] && keepalive=false
        dir="$out/$proxy-$mode"
        rm -rf "$dir"
        echo "GET https://127.0.0.1:$tls/" | "$throng" knee -insecure -keepalive=$keepalive --threads 1 \
            --slo "$SLO" --step "$STEP" --pause 2s --validate 10s --from 250 --to 100000 \
            --dir "$dir" --json > "$dir.json" 2> "$dir.log" || true
        read -r knee confidence steps <<<"$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["knee"] or 0, r.get("confidence", "-"), len(r["steps"]))' "$dir.json")"
        cpu="-"
        if python3 -c "import sys; sys.exit(0 if float('$knee') > 0 else 1)"; then
            sleep 2
            before=$(cpu_ticks "$proxy_pid")
            echo "GET https://127.0.0.1:$tls/" | "$throng" attack -insecure -http2=false -keepalive=$keepalive --threads 1 \
                -rate="$knee" -duration=10s -quiet > /dev/null
            after=$(cpu_ticks "$proxy_pid")
            cpu=$(python3 -c "print('%.0f%%' % (($after - $before) / $(getconf CLK_TCK) / 10 * 100))")
        fi
        printf '%-8s %-10s %10.1f %-11s %12s %s\n' "$proxy" "$mode" "$knee" "$confidence" "$cpu" "$steps"
        kill -9 "$proxy_pid" "$pong_pid" 2>/dev/null || true
        wait "$proxy_pid" "$pong_pid" 2>/dev/null || true
    done
done
