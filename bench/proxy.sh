#!/usr/bin/env bash
# throng proxy side by side with HAProxy (Debian's): the same thread count, the same ECDSA P-256
# certificate, throng pong behind both, logging off in both.
#   1. memory per idle end-to-end TLS connection: hold HOLD connections with an open
#      `sleep: 600000` request each (pong answers after a random 0-600 s, so a few finish and
#      stay as idle keep-alive connections); the slope (RSS at HOLD - RSS at BASE) / (HOLD - BASE) per
#      proxy process, and the kernel's slab memory per connection (all four sockets of an end-to-end
#      connection: holder, proxy's two, pong's);
#   2. full TLS handshakes per CPU-second of the proxy: ab (no keep-alive, no resumption) makes
#      HANDSHAKES of them, 16 at a time;
#   3. keep-alive requests per CPU-second of the proxy, plain and TLS: wrk, 1 thread, 50
#      connections, KEEPALIVE_SECONDS each.
# Each proxy gets a fresh backend, and the memory run comes last (it leaves thousands of requests
# sleeping in pong). The proxy's CPU time comes from /proc/PID/stat (user + system), so the clients' and pong's
# share of the two cores does not count.
# Usage: bench/proxy.sh   (HOLD=8000 BASE=1000 HANDSHAKES=4000 KEEPALIVE_SECONDS=10 THREADS=2,
#        MODES="memory handshakes keepalive", PROXIES="throng haproxy", BACKEND=pong|nginx)
set -euo pipefail
cd "$(dirname "$0")/.."

HOLD=${HOLD:-8000}
BASE=${BASE:-1000}
HANDSHAKES=${HANDSHAKES:-4000}
KEEPALIVE_SECONDS=${KEEPALIVE_SECONDS:-10}
THREADS=${THREADS:-2}
MODES=${MODES:-"memory handshakes keepalive"}
PROXIES=${PROXIES:-"throng haproxy"}
# BACKEND=nginx puts nginx behind the proxies instead of throng pong (no held requests then).
BACKEND=${BACKEND:-pong}
out=bench/out/proxy
mkdir -p "$out"

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
command -v ab >/dev/null || missing+=(apache2-utils)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build --release -q -p throng
throng=$PWD/target/release/throng

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
# Client connections the proxy holds on its port $1.
established_at() { ss -Htn state established "( sport = :$1 )" | wc -l; }
at_least() { [ "$(established_at "$1")" -ge "$2" ]; }
none_at() { [ "$(established_at "$1")" -eq 0 ]; }
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS > deadline)) && { echo "timed out: $*" >&2; return 1; }; sleep 0.2; done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"

# start_backend: a fresh backend for each proxy (pong keeps the last run's sleeping requests).
start_backend() {
    pong_port=$(free_port)
    if [ "$BACKEND" = nginx ]; then
        # nginx answering `pong` from memory: the backend costs less than pong's chunked answers.
        mkdir -p "$work/nginx"
        cat > "$work/nginx.conf" <<NGINX
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 10000; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server { listen 127.0.0.1:$pong_port; location / { return 200 "pong"; } }
}
NGINX
        nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx.conf" -g "daemon off;" > "$out/nginx.log" 2>&1 &
    else
        "$throng" pong --listen "127.0.0.1:$pong_port" --threads 1 > "$out/pong.log" 2>&1 &
    fi
    pids+=($!)
    backend_pid=$!
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$pong_port" 2>/dev/null
}

# start_proxy NAME PLAIN_PORT TLS_PORT: starts it, sets proxy_pid.
start_proxy() {
    local name=$1 plain=$2 tls=$3
    case $name in
    throng)
        cat > "$work/throng.toml" <<TOML
[global]
threads = $THREADS
maxconn = 9900
log = "off"

[defaults.timeout]
client = "1h"
server = "1h"
http-request = "1m"
connect = "5s"

[frontends.plain]
bind = ["127.0.0.1:$plain"]
default_backend = "pong"

[frontends.tls]
bind = ["127.0.0.1:$tls"]
default_backend = "pong"
tls = { certificates = [{ cert = "cert.pem", key = "key.pem" }] }

[backends.pong]
servers = [{ name = "pong", address = "127.0.0.1:$pong_port" }]
TOML
        "$throng" proxy -c "$work/throng.toml" > "$out/throng-proxy.log" 2>&1 &
        ;;
    haproxy)
        cat > "$work/haproxy.cfg" <<CFG
global
    nbthread $THREADS
    maxconn 9900
defaults
    mode http
    timeout client 1h
    timeout server 1h
    timeout http-request 1m
    timeout connect 5s
frontend plain
    bind 127.0.0.1:$plain
    default_backend pong
frontend tls
    bind 127.0.0.1:$tls ssl crt $work/combined.pem alpn http/1.1
    default_backend pong
backend pong
    server pong 127.0.0.1:$pong_port
CFG
        haproxy -db -f "$work/haproxy.cfg" > "$out/haproxy.log" 2>&1 &
        ;;
    esac
    proxy_pid=$!
    pids+=("$proxy_pid")
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$tls" 2>/dev/null
    sleep 0.5
}

stop_proxy() {
    kill -9 "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
}

# hold PORT COUNT: holds COUNT more TLS connections with a sleeping request each.
hold() {
    local port=$1 count=$2 log="$out/hold-$1-$2.log"
    python3 bench/hold.py 127.0.0.1 "$port" -n "$count" --tls --header "sleep: 600000" \
        --max-seconds 900 > "$log" 2>&1 &
    pids+=($!)
    holders+=($!)
    wait_for 300 grep -q "^held" "$log"
}

for proxy in $PROXIES; do
    start_backend
    plain=$(free_port)
    tls=$(free_port)
    start_proxy "$proxy" "$plain" "$tls"

    if [[ " $MODES " == *" handshakes "* ]]; then
        before=$(cpu_ticks "$proxy_pid")
        ab -q -n "$HANDSHAKES" -c 16 "https://127.0.0.1:$tls/" > "$out/ab-$proxy.log" 2>&1
        after=$(cpu_ticks "$proxy_pid")
        failed=$(awk '/^Failed requests/ {print $3}' "$out/ab-$proxy.log")
        complete=$(awk '/^Complete requests/ {print $3}' "$out/ab-$proxy.log")
        cpu=$(python3 -c "print(($after - $before) / $(getconf CLK_TCK))")
        echo "$proxy handshakes: complete=$complete failed=$failed proxy_cpu=${cpu}s per_cpu_second=$(python3 -c "print(round($complete / max($cpu, 0.01)))") cpu_per_1000=$(python3 -c "print(round($cpu * 1000 / $complete, 3))")s"
    fi

    if [[ " $MODES " == *" keepalive "* ]]; then
        for scheme in http https; do
            port=$plain
            [ "$scheme" = https ] && port=$tls
            before=$(cpu_ticks "$proxy_pid")
            wrk -t1 -c50 -d"${KEEPALIVE_SECONDS}s" "$scheme://127.0.0.1:$port/" > "$out/wrk-$proxy-$scheme.log" 2>&1
            after=$(cpu_ticks "$proxy_pid")
            requests=$(awk '/requests in/ {print $1}' "$out/wrk-$proxy-$scheme.log")
            errors=$(grep -E "Non-2xx|Socket errors" "$out/wrk-$proxy-$scheme.log" | tr '\n' ' ' || true)
            cpu=$(python3 -c "print(($after - $before) / $(getconf CLK_TCK))")
            echo "$proxy keep-alive $scheme: requests=$requests proxy_cpu=${cpu}s per_cpu_second=$(python3 -c "print(round($requests / max($cpu, 0.01)))") $errors"
        done
    fi
    if [[ " $MODES " == *" memory "* ]]; then
        holders=()
        hold "$tls" "$BASE"
        wait_for 120 at_least "$tls" "$BASE"
        sleep 2
        rss_base=$(rss_kib "$proxy_pid")
        slab_base=$(slab_kib)
        hold "$tls" $((HOLD - BASE))
        wait_for 300 at_least "$tls" "$HOLD"
        sleep 2
        rss_hold=$(rss_kib "$proxy_pid")
        slab_hold=$(slab_kib)
        held=$(established_at "$tls")
        per_conn=$(( (rss_hold - rss_base) * 1024 / (HOLD - BASE) ))
        kernel=$(( (slab_hold - slab_base) * 1024 / (HOLD - BASE) ))
        echo "$proxy memory: held=$held rss_base=${rss_base}KiB rss_hold=${rss_hold}KiB per_connection=${per_conn}B kernel_slab_per_connection=${kernel}B"
        for pid in "${holders[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait_for 120 none_at "$tls" || true
    fi

    stop_proxy
    kill -9 "$backend_pid" 2>/dev/null || true
done
rm -rf "$work"
