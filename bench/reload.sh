#!/usr/bin/env bash
# A reload storm, throng proxy beside HAProxy 2.6 (master-worker, listeners passed on by its
# stats socket's `expose-fd listeners`, HAProxy's seamless reload):
#   - HELD TLS connections, each with a request pong answers only after 600 s, through the proxy;
#   - new TLS connections at RATE a second throughout (`throng attack`, no keep-alive), one
#     request each;
#   - RELOADS reloads in STORM seconds (throng: SIGHUP, and the middle one a binary upgrade,
#     SIGUSR2; HAProxy: SIGUSR2 to its master, which re-executes its binary each time);
#   - then nothing until `hard_stop_after` (HARD) ends the generation holding the HELD
#     connections: how fast they are closed (throng: close_rate CLOSE_RATE a second; HAProxy
#     closes them at once).
# Reported per proxy: held connections dropped before HARD, new requests failed (by error),
# the kernel's ListenDrops during the storm, processes, generations and threads alive at most,
# resident memory of all of them at most, and the closing after HARD. throng runs at its
# defaults but for what the storm sets (hard_stop_after, close_rate): max_generations is not
# raised for it.
# One process holds at most 20,000 descriptors here, two per end-to-end connection: HELD=9000
# fits one process of either proxy; PROCESSES=2 (throng only: HAProxy 2.6 has no nbproc) holds
# more, and then the upgrade is a new master's (with net.ipv4.tcp_migrate_req set to 1 for the
# run, so that the old workers' queued connections move to the new ones).
# Usage: bench/reload.sh   (HELD=9000 RATE=200 RELOADS=20 STORM=60 HARD=90 CLOSE_RATE=1000
#        THREADS=2 PROCESSES=1 PROXIES="throng haproxy")
set -euo pipefail
cd "$(dirname "$0")/.."

HELD=${HELD:-9000}
RATE=${RATE:-200}
RELOADS=${RELOADS:-20}
STORM=${STORM:-60}
HARD=${HARD:-90}
CLOSE_RATE=${CLOSE_RATE:-1000}
THREADS=${THREADS:-2}
PROCESSES=${PROCESSES:-1}
PROXIES=${PROXIES:-"throng haproxy"}
out=bench/out/reload
mkdir -p "$out"

source bench/proxies.sh

pids=()
migrate_was=""
if [ "$PROCESSES" -gt 1 ] && [ -w /proc/sys/net/ipv4/tcp_migrate_req ]; then
    migrate_was=$(cat /proc/sys/net/ipv4/tcp_migrate_req)
    echo 1 > /proc/sys/net/ipv4/tcp_migrate_req
fi
cleanup() {
    [ -n "$migrate_was" ] && echo "$migrate_was" > /proc/sys/net/ipv4/tcp_migrate_req
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    pkill -9 -f "proxy -c $work/throng.toml" 2>/dev/null || true
    pkill -9 -f "haproxy .*-f $work/haproxy.cfg" 2>/dev/null || true
}
trap cleanup EXIT
listen_drops() { awk '/^TcpExt:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "ListenDrops") c = i; n = 1 } else print $c }' /proc/net/netstat; }
# Generations alive: throng's from the serving process's metrics (an old binary's, after an
# upgrade, are not in them); HAProxy's are its worker processes.
generations() {
    case $1 in
    throng) curl -s "http://$admin/metrics" | grep -c '^throng_proxy_generation_connections{' || true ;;
    # (with PROCESSES, the master's merged metrics: a generation of every worker counts once)
    haproxy) echo $(( $(proxy_pids haproxy | wc -l) - 1 )) ;;
    esac
}

work=$(mktemp -d)
certificate

for proxy in $PROXIES; do
    pong_port=$(free_port)
    "$throng" pong --listen "127.0.0.1:$pong_port" --threads 1 > "$out/pong-$proxy.log" 2>&1 &
    pids+=($!)
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$pong_port" 2>/dev/null
    tls=$(free_port)
    admin=127.0.0.1:$(free_port)
    case $proxy in
    throng)
        cat > "$work/throng.toml" <<TOML
[global]
processes = $PROCESSES
threads = $THREADS
maxconn = 9950
log = "off"
admin = "$admin"
pidfile = "$work/throng.pid"
hard_stop_after = "${HARD}s"
close_rate = $CLOSE_RATE

[defaults.timeout]
client = "1h"
server = "1h"
http-request = "1m"
connect = "5s"

[frontends.tls]
bind = ["127.0.0.1:$tls"]
default_backend = "pong"
tls = { certificates = [{ cert = "cert.pem", key = "key.pem" }] }

[backends.pong]
servers = [{ name = "pong", address = "127.0.0.1:$pong_port" }]
TOML
        "$throng" proxy -c "$work/throng.toml" > "$out/throng-proxy.log" 2>&1 &
        pids+=($!)
        wait_for 10 test -s "$work/throng.pid"
        ;;
    haproxy)
        cat > "$work/haproxy.cfg" <<CFG
global
    nbthread $THREADS
    maxconn 9950
    hard-stop-after ${HARD}s
    stats socket $work/haproxy.sock mode 600 level admin expose-fd listeners
defaults
    mode http
    timeout client 1h
    timeout server 1h
    timeout http-request 1m
    timeout connect 5s
frontend tls
    bind 127.0.0.1:$tls ssl crt $work/combined.pem alpn http/1.1
    default_backend pong
backend pong
    server pong 127.0.0.1:$pong_port
CFG
        haproxy -W -db -f "$work/haproxy.cfg" -p "$work/haproxy.pid" > "$out/haproxy.log" 2>&1 &
        pids+=($!)
        master=$!
        ;;
    esac
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$tls" 2>/dev/null
    sleep 0.5

    hold_log="$out/hold-$proxy.log"
    python3 bench/hold.py 127.0.0.1 "$tls" -n "$HELD" --tls --header "sleep: 600000-600000" \
        --max-seconds $((HARD + STORM + 300)) > "$hold_log" 2>&1 &
    pids+=($!)
    wait_for 300 grep -q "^held" "$hold_log"
    sleep 2
    drops_before=$(listen_drops)
    results="$out/attack-$proxy.bin"
    echo "GET https://127.0.0.1:$tls/" | "$throng" attack -rate="$RATE/1s" -duration="$((STORM + 5))s" \
        -keepalive=false -insecure -http2=false -output "$results" > "$out/attack-$proxy.log" 2>&1 &
    attack=$!
    sleep 2
    first_reload=$SECONDS
    peak_generations=0 peak_processes=0 peak_rss=0 peak_threads=0
    for i in $(seq 1 "$RELOADS"); do
        case $proxy in
        throng)
            if [ "$i" -eq $((RELOADS / 2)) ]; then
                "$throng" proxy upgrade -c "$work/throng.toml" >> "$out/ctl-throng.log" 2>&1 || echo "upgrade failed" >&2
            else
                kill -HUP "$(cat "$work/throng.pid")"
            fi
            ;;
        haproxy) kill -USR2 "$master" ;;
        esac
        for _ in $(seq 1 $((STORM * 10 / RELOADS))); do
            sleep 0.1
        done
        g=$(generations "$proxy")
        mapfile -t running < <(proxy_pids "$proxy")
        rss=$(rss_kib_of "${running[@]}")
        threads=$(threads_of "${running[@]}")
        ((threads > peak_threads)) && peak_threads=$threads
        ((g > peak_generations)) && peak_generations=$g
        ((${#running[@]} > peak_processes)) && peak_processes=${#running[@]}
        ((rss > peak_rss)) && peak_rss=$rss
    done
    wait "$attack" || true
    drops_after=$(listen_drops)
    dropped=$( (grep "^closed" "$hold_log" || true) | tail -1 | awk '{print $2}')
    dropped=${dropped:-0}
    "$throng" report -type=json "$results" > "$out/report-$proxy.json"
    summary=$(python3 - "$out/report-$proxy.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errors = r.get("errors") or []
codes = r.get("status_codes", {})
print(f"requests={r['requests']} success={r['success']:.4f} codes={codes} errors={errors[:3]}")
PY
)
    echo "$proxy storm: held=$HELD dropped_before_hard_stop=$dropped new: $summary listen_drops=$((drops_after - drops_before)) peak_generations_serving=$peak_generations peak_processes=$peak_processes peak_threads_all=$peak_threads peak_rss_all=$((peak_rss / 1024))MiB"

    # hard_stop_after: from the first reload, the generation holding the HELD ends.
    wait_for $((HARD + 60)) bash -c "grep -q '^closed $HELD ' '$hold_log'" || true
    python3 - "$hold_log" "$HELD" "$proxy" <<'PY'
import sys
lines = [l.split() for l in open(sys.argv[1]) if l.startswith("closed")]
points = [(float(l[3]), int(l[1])) for l in lines]
held, name = int(sys.argv[2]), sys.argv[3]
if not points:
    print(f"{name} hard stop: nothing closed"); sys.exit()
start = points[0][0]
end = next((t for t, n in points if n >= held), points[-1][0])
per_half_second = [b[1] - a[1] for a, b in zip(points, points[1:])]
peak = max([points[0][1]] + per_half_second) * 2
print(f"{name} hard stop: closed {points[-1][1]} of {held} in {end - start:.1f}s (samples every 0.5s), at most {peak}/s")
PY
    for pid in $(proxy_pids "$proxy"); do kill -9 "$pid" 2>/dev/null || true; done
    pkill -9 -f "bench/hold.py 127.0.0.1 $tls" 2>/dev/null || true
    sleep 1
done
