#!/usr/bin/env bash
# HTTP/2 at the front door: throng proxy beside HAProxy (Debian's 2.6) and nginx (1.22), each
# terminating TLS with the same ECDSA P-256 certificate, ALPN h2, throng pong behind, logging off,
# the same thread count.
#   1. memory per idle h2-over-TLS client connection: HOLD connections, each after one GET
#      answered (bench/h2hold.py), the slope (RSS at HOLD - RSS at BASE) / (HOLD - BASE) of the
#      proxy's processes;
#   2. h2 requests per CPU-second of the proxy: h2load -c 100 -m 10 over TLS, REQUESTS requests.
# Usage: bench/h2.sh   (HOLD=3000 BASE=500 REQUESTS=200000 THREADS=2, PROXIES="throng haproxy nginx",
#        MODES="memory requests")
set -euo pipefail
cd "$(dirname "$0")/.."

HOLD=${HOLD:-3000}
BASE=${BASE:-500}
REQUESTS=${REQUESTS:-200000}
THREADS=${THREADS:-2}
PROXIES=${PROXIES:-"throng haproxy nginx"}
MODES=${MODES:-"memory requests"}
out=bench/out/h2
mkdir -p "$out"

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build --release -q -p throng
throng=$PWD/target/release/throng

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
# The proxy's memory and CPU: all its processes (nginx: master and workers).
proxy_pids() { echo "$proxy_pid"; if [ "$1" = nginx ]; then pgrep -P "$proxy_pid" || true; fi; }
rss_kib() { local total=0; for p in $(proxy_pids "$1"); do total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$total"; }
cpu_ticks() { local total=0; for p in $(proxy_pids "$1"); do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$total"; }
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

start_backend() {
    pong_port=$(free_port)
    "$throng" pong --listen "127.0.0.1:$pong_port" --threads 1 > "$out/pong.log" 2>&1 &
    backend_pid=$!
    pids+=("$backend_pid")
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$pong_port" 2>/dev/null
}

# start_proxy NAME TLS_PORT: sets proxy_pid.
start_proxy() {
    local name=$1 tls=$2
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
http-keep-alive = "1h"
connect = "5s"

[frontends.tls]
bind = ["127.0.0.1:$tls"]
default_backend = "pong"
tls = { certificates = [{ cert = "cert.pem", key = "key.pem" }], alpn = ["h2", "http/1.1"] }

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
    timeout http-keep-alive 1h
    timeout connect 5s
frontend tls
    bind 127.0.0.1:$tls ssl crt $work/combined.pem alpn h2,http/1.1
    default_backend pong
backend pong
    server pong 127.0.0.1:$pong_port
CFG
        haproxy -db -f "$work/haproxy.cfg" > "$out/haproxy.log" 2>&1 &
        ;;
    nginx)
        mkdir -p "$work/nginx"
        cat > "$work/nginx-proxy.conf" <<NGINX
worker_processes $THREADS;
pid $work/nginx-proxy.pid;
error_log $work/nginx/error.log;
events { worker_connections 10000; }
http {
    access_log off;
    keepalive_timeout 1h;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream pong { server 127.0.0.1:$pong_port; keepalive 64; }
    server {
        listen 127.0.0.1:$tls ssl http2;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        location / { proxy_pass http://pong; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
NGINX
        nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx-proxy.conf" -g "daemon off;" > "$out/nginx.log" 2>&1 &
        ;;
    esac
    proxy_pid=$!
    pids+=("$proxy_pid")
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$tls" 2>/dev/null
    sleep 0.5
}

stop_proxy() {
    for p in $(proxy_pids "$1"); do kill -9 "$p" 2>/dev/null || true; done
    wait "$proxy_pid" 2>/dev/null || true
}

# hold PORT COUNT: COUNT more idle h2 connections, each after one GET.
hold() {
    local port=$1 count=$2 log="$out/hold-$1-$2.log"
    python3 bench/h2hold.py 127.0.0.1 "$port" -n "$count" --max-seconds 900 > "$log" 2>&1 &
    pids+=($!)
    holders+=($!)
    wait_for 300 grep -q "^held" "$log"
    grep "^held" "$log"
}

for proxy in $PROXIES; do
    start_backend
    tls=$(free_port)
    start_proxy "$proxy" "$tls"
    if [[ " $MODES " == *" requests "* ]]; then
        before=$(cpu_ticks "$proxy")
        h2load -n "$REQUESTS" -c 100 -m 10 -t 1 "https://127.0.0.1:$tls/" > "$out/h2load-$proxy.log" 2>&1
        after=$(cpu_ticks "$proxy")
        done_=$(awk '/^requests:/ {print $8}' "$out/h2load-$proxy.log")
        codes=$(grep "^status codes" "$out/h2load-$proxy.log")
        cpu=$(python3 -c "print(($after - $before) / $(getconf CLK_TCK))")
        echo "$proxy h2 requests: succeeded=$done_ ($codes) proxy_cpu=${cpu}s per_cpu_second=$(python3 -c "print(round($done_ / max($cpu, 0.01)))")"
    fi
    if [[ " $MODES " == *" memory "* ]]; then
        holders=()
        hold "$tls" "$BASE"
        wait_for 120 at_least "$tls" "$BASE"
        sleep 2
        rss_base=$(rss_kib "$proxy")
        hold "$tls" $((HOLD - BASE))
        wait_for 300 at_least "$tls" "$HOLD"
        sleep 2
        rss_hold=$(rss_kib "$proxy")
        held=$(established_at "$tls")
        per_conn=$(( (rss_hold - rss_base) * 1024 / (HOLD - BASE) ))
        echo "$proxy h2 memory: held=$held rss_base=${rss_base}KiB rss_hold=${rss_hold}KiB per_connection=${per_conn}B"
        for pid in "${holders[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait_for 120 none_at "$tls" || true
    fi
    stop_proxy "$proxy"
    kill -9 "$backend_pid" 2>/dev/null || true
done
rm -rf "$work"
