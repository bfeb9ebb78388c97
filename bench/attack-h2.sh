#!/usr/bin/env bash
# The generator over HTTP/2: throng attack beside h2load (nghttp2, Debian's), the same target, one
# generator thread each, the same request rate.
#   1. CPU per request: RATE requests/s for DURATION against nginx (1 worker, `return 200 "pong"`)
#      over h2c and over TLS with ALPN h2: the generator's user+system CPU-seconds per 100,000
#      requests (from /usr/bin/time), and the latency each reports (h2load's mean and max
#      "time for request"; throng's mean, p50, p99 and max, from each request's due time), for
#      throng's default (each request at its due time) and --batch=1ms (wrk2's trade).
#      h2load keeps the rate with --rps per client (CLIENTS clients of STREAMS streams each).
#   2. Memory per held stream: HELD streams held at once on pong --h2c (`sleep: 20000`), the
#      generator's RSS with HELD streams minus its RSS with HELD/5, over the difference.
# Usage: bench/attack-h2.sh   (RATE=10000 DURATION=10 CLIENTS=10 STREAMS=10 HELD=10000,
#        MODES="cpu memory")
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-10000}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-10}
STREAMS=${STREAMS:-10}
HELD=${HELD:-10000}
MODES=${MODES:-"cpu memory"}
out=bench/out/attack-h2
mkdir -p "$out"

missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v h2load >/dev/null || missing+=(nghttp2-client)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build --release -q -p throng
throng=$PWD/target/release/throng

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }

work=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

h2c_port=$(free_port)
tls_port=$(free_port)
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  http2_max_requests 10000000;
  client_body_temp_path $work/body;
  server {
    listen 127.0.0.1:$h2c_port http2;
    listen 127.0.0.1:$tls_port ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / { return 200 "pong"; }
  }
}
EOF
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" -g "daemon off;" 2>"$out/nginx.log" &
pids+=($!)
wait_port "$h2c_port"
wait_port "$tls_port"

# `time`'s user + system seconds, from its -f "%U %S" line.
cpu_of() { awk '{print $1 + $2}' "$1"; }
per_100k() { python3 -c "print(f'{$1 / $2 * 100000:.3f}')"; }

if [[ " $MODES " == *" cpu "* ]]; then
    total=$((RATE * DURATION))
    per_client=$((RATE / CLIENTS))
    echo "== CPU per 100,000 requests at $RATE/s for ${DURATION}s, one generator thread"
    for scheme in h2c tls; do
        case $scheme in
            h2c) url="http://127.0.0.1:$h2c_port/"; flags="-h2c" ;;
            tls) url="https://127.0.0.1:$tls_port/"; flags="-insecure" ;;
        esac
        for batch in 0s 1ms; do
            run=throng-$scheme-$batch
            echo "GET $url" | /usr/bin/time -f "%U %S" -o "$out/$run.time" \
                "$throng" attack $flags -rate "$RATE" -duration "${DURATION}s" -threads 1 -quiet \
                -batch "$batch" -output "$out/$run.bin"
            "$throng" report -type=json "$out/$run.bin" > "$out/$run.json"
            ok=$(python3 -c "import json; print(json.load(open('$out/$run.json'))['status_codes'].get('200', 0))")
            latency=$(python3 -c "
import json; r = json.load(open('$out/$run.json'))['latencies']
print(f\"mean {r['mean']/1e3:.0f} µs, p50 {r['50th']/1e3:.0f}, p99 {r['99th']/1e3:.0f}, max {r['max']/1e3:.0f}\")")
            echo "$scheme throng --batch=$batch: $ok ok, $(per_100k "$(cpu_of "$out/$run.time")" "$ok") CPU-s per 100k, latency $latency"
        done
        /usr/bin/time -f "%U %S" -o "$out/h2load-$scheme.time" \
            h2load -t 1 -c "$CLIENTS" -m "$STREAMS" --rps "$per_client" -n "$total" "$url" \
            > "$out/h2load-$scheme.txt" 2>&1
        done_h2load=$(awk '/^requests:/ {print $8}' "$out/h2load-$scheme.txt")
        h2load_latency=$(awk '/^time for request:/ {print "min " $4 ", mean " $6 ", max " $5 ", sd " $7}' "$out/h2load-$scheme.txt")
        echo "$scheme h2load: $done_h2load ok, $(per_100k "$(cpu_of "$out/h2load-$scheme.time")" "$done_h2load") CPU-s per 100k, latency $h2load_latency"
    done
fi

if [[ " $MODES " == *" memory "* ]]; then
    pong_port=$(free_port)
    "$throng" pong --h2c --listen "127.0.0.1:$pong_port" --threads 1 > "$out/pong.log" 2>&1 &
    pids+=($!)
    wait_port "$pong_port"
    url="http://127.0.0.1:$pong_port/"
    echo "== memory per held stream (pong --h2c, sleep up to 10 min): RSS holding $HELD minus holding $((HELD / 5)), over the difference"
    # hold NAME COMMAND...: the generator's RSS (KiB) 6 s after it starts, every stream sent by
    # then and nearly none answered; then it is stopped.
    hold() {
        local name=$1; shift
        "$@" > "$out/$name.log" 2>&1 &
        local pid=$!
        sleep 6
        local rss
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        local streams
        streams=$(ss -Htn state established "( dport = :$pong_port )" | wc -l)
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        echo "$rss $streams"
    }
    printf 'GET %s\nsleep: 600000\n' "$url" > "$work/targets"
    declare -A rss
    for held in $((HELD / 5)) "$HELD"; do
        # Sent over 2 s, as h2load sends its all at once: both hold them all by the 6th second.
        read -r rss[throng.$held] conns < <(hold "throng-$held" "$throng" attack -h2c \
            -rate "$((held / 2))" -duration 2s -timeout 20m -threads 1 -quiet \
            -targets "$work/targets" -output /dev/null)
        echo "held $held: throng ${rss[throng.$held]} KiB on $conns connections"
        read -r rss[h2load.$held] conns < <(hold "h2load-$held" h2load -t 1 -c "$((held / 100))" \
            -m 100 -n "$held" -H 'sleep: 600000' "$url")
        echo "held $held: h2load ${rss[h2load.$held]} KiB on $conns connections"
    done
    small=$((HELD / 5))
    for tool in throng h2load; do
        echo "$tool: $(( (rss[$tool.$HELD] - rss[$tool.$small]) * 1024 / (HELD - small) )) B per held stream"
    done
fi
