#!/usr/bin/env bash
# TLS toward servers: throng proxy beside HAProxy (Debian's 2.6), each taking plain HTTP/1.1 from
# its clients and speaking TLS (verified against a test CA, SNI backend.test) to one throng pong
# serving TLS with an ECDSA P-256 certificate of that CA; logging off, the same thread count. The
# proxy's CPU per request, from /proc/PID/stat:
#   1. keepalive: h2load --h1 -c 50, REQUESTS requests on kept connections, the server side's TLS
#      connections pooled (handshakes only at the start);
#   2. fresh: throng attack -keepalive=false at RATE/s for SECONDS s, a new client connection per
#      request, and so a new TLS connection to the server per request (throng
#      max_idle_per_server = 0, HAProxy http-reuse never), resumed from the second on;
#   3. the same two with plain HTTP toward the server, for what TLS adds.
# throng's handshakes and resumptions toward the server are printed from its /metrics;
# HAPROXY_SERVER_EXTRA adds words to HAProxy's server line (no-ssl-reuse: what resumption saves).
# Usage: bench/server-tls.sh   (REQUESTS=200000 RATE=2000 SECONDS=10 THREADS=1,
#        PROXIES="throng haproxy", TOWARD="tls plain")
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
RATE=${RATE:-2000}
SECONDS_EACH=${SECONDS:-10}
THREADS=${THREADS:-1}
PROXIES=${PROXIES:-"throng haproxy"}
TOWARD=${TOWARD:-"tls plain"}
out=bench/out/server-tls
mkdir -p "$out"

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build --release -q -p throng
throng=$PWD/target/release/throng

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS > deadline)) && { echo "timed out: $*" >&2; return 1; }; sleep 0.2; done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

work=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=throng bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/key.pem" -out "$work/server.csr" -subj /CN=backend.test 2>/dev/null
printf 'subjectAltName=DNS:backend.test\nextendedKeyUsage=serverAuth\n' > "$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 30 -extfile "$work/ext" -out "$work/cert.pem" 2>/dev/null

pong_tls=$(free_port) pong_plain=$(free_port)
"$throng" pong --listen "127.0.0.1:$pong_tls" --threads 1 \
    --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" > "$out/pong-tls.log" 2>&1 &
pids+=($!)
"$throng" pong --listen "127.0.0.1:$pong_plain" --threads 1 > "$out/pong-plain.log" 2>&1 &
pids+=($!)
wait_for 10 listening "$pong_tls"
wait_for 10 listening "$pong_plain"

# start_proxy NAME PORT TOWARD KEEP: sets proxy_pid.
start_proxy() {
    local name=$1 port=$2 toward=$3 keep=$4
    local server=$pong_plain throng_tls="" haproxy_tls="" idle=1024 reuse=safe
    admin=$(free_port)
    if [ "$toward" = tls ]; then
        server=$pong_tls
        throng_tls='tls = { ca = "ca.pem", sni = "backend.test" }'
        haproxy_tls="ssl verify required ca-file $work/ca.pem sni str(backend.test) verifyhost backend.test alpn http/1.1"
    fi
    if [ "$keep" = fresh ]; then idle=0 reuse=never; fi
    case $name in
    throng)
        cat > "$work/throng.toml" <<TOML
[global]
threads = $THREADS
maxconn = 9000
log = "off"
admin = "127.0.0.1:$admin"

[defaults.timeout]
client = "1h"
server = "1h"
http-keep-alive = "1h"
connect = "5s"

[frontends.web]
bind = ["127.0.0.1:$port"]
default_backend = "pong"

[backends.pong]
max_idle_per_server = $idle
$throng_tls
servers = [{ name = "pong", address = "127.0.0.1:$server" }]
TOML
        "$throng" proxy -c "$work/throng.toml" > "$out/throng-proxy.log" 2>&1 &
        ;;
    haproxy)
        cat > "$work/haproxy.cfg" <<CFG
global
    nbthread $THREADS
    maxconn 9000
defaults
    mode http
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 1h
    timeout connect 5s
    http-reuse $reuse
frontend web
    bind 127.0.0.1:$port
    default_backend pong
backend pong
    server pong 127.0.0.1:$server $haproxy_tls ${HAPROXY_SERVER_EXTRA:-}
CFG
        haproxy -db -f "$work/haproxy.cfg" > "$out/haproxy.log" 2>&1 &
        ;;
    esac
    proxy_pid=$!
    pids+=("$proxy_pid")
    wait_for 10 listening "$port"
    sleep 0.5
}

per_request() { python3 -c "print(f'{($2 - $1) / $(getconf CLK_TCK) / $3 * 1e6:.1f}')"; }

for toward in $TOWARD; do
    for proxy in $PROXIES; do
        port=$(free_port)
        start_proxy "$proxy" "$port" "$toward" keep
        before=$(cpu_ticks "$proxy_pid")
        h2load --h1 -n "$REQUESTS" -c 50 -t 1 "http://127.0.0.1:$port/" > "$out/h2load-$proxy-$toward.log" 2>&1
        after=$(cpu_ticks "$proxy_pid")
        done_=$(awk '/^requests:/ {print $8}' "$out/h2load-$proxy-$toward.log")
        codes=$(grep "^status codes" "$out/h2load-$proxy-$toward.log")
        echo "$proxy to $toward, keepalive: succeeded=$done_ ($codes) proxy_cpu_us_per_request=$(per_request "$before" "$after" "$done_")"
        kill -9 "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true

        port=$(free_port)
        start_proxy "$proxy" "$port" "$toward" fresh
        before=$(cpu_ticks "$proxy_pid")
        echo "GET http://127.0.0.1:$port/" | "$throng" attack -rate "$RATE" -duration "${SECONDS_EACH}s" \
            -keepalive=false > "$out/fresh-$proxy-$toward.bin"
        after=$(cpu_ticks "$proxy_pid")
        report=$("$throng" report -type json "$out/fresh-$proxy-$toward.bin")
        ok=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(r['status_codes'].get('200', 0))" "$report")
        total=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['requests'])" "$report")
        resumed=""
        if [ "$proxy" = throng ] && [ "$toward" = tls ]; then
            resumed=" $(curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^throng_proxy_server_tls_(handshakes|resumed)_total' | sed 's/{[^}]*}//' | tr '\n' ' ')"
        fi
        echo "$proxy to $toward, fresh: 200s=$ok of $total proxy_cpu_us_per_request=$(per_request "$before" "$after" "$ok")$resumed"
        kill -9 "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
    done
done
rm -rf "$work"
