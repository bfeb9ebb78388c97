#!/usr/bin/env bash
# Memory per held request: throng pong against the seed's Node.js backend, side by side.
#
# Each server in turn: read its RSS, have bench/hold.py open N connections that each send one
# request with `sleep: 600000` (a random wait of up to 10 minutes) and hold them, let the numbers
# settle, read RSS again. The slope (RSS while holding - RSS before) / N is the user-space cost of
# a held request. The kernel's side: /proc/meminfo `Slab` (socket structs, files, epoll items) and
# /proc/net/sockstat TCP `mem` (pages of queued data), both machine-wide, so on loopback they count
# both ends of each connection. Node is measured again after a forced garbage collection.
#
# Usage: bench/pong-memory.sh            (N=15000 SETTLE=15 by default; loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-15000}
SETTLE=${SETTLE:-15}
out=bench/out
mkdir -p "$out"

cargo build --release -q -p throng
throng=target/release/throng

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
tcp_mem_pages() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }

wait_for() { # wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        if ((SECONDS > deadline)); then echo "timed out waiting for: $*" >&2; return 1; fi
        sleep 0.2
    done
}

# measure NAME PORT SOURCE_ADDRESS COMMAND...:
#   prints "NAME held rss0 rss1 rss_after_gc pages0 pages1 slab0 slab1"
measure() {
    local name=$1 port=$2 source=$3; shift 3
    "$@" >"$out/$name.stdout" 2>"$out/$name.stderr" &
    local server=$!
    pids+=("$server")
    wait_for 30 curl -s -o /dev/null "http://127.0.0.1:$port/"
    sleep 2
    local rss0 pages0 slab0 rss1 pages1 slab1 held rss_gc
    rss0=$(rss_kib "$server"); pages0=$(tcp_mem_pages); slab0=$(slab_kib)

    python3 bench/hold.py 127.0.0.1 "$port" -n "$N" --header "sleep: 600000" --source "$source" \
        --max-seconds 400 >"$out/$name.hold" 2>&1 &
    local holder=$!
    pids+=("$holder")
    wait_for 240 grep -q "^held" "$out/$name.hold"
    sleep "$SETTLE"
    rss1=$(rss_kib "$server"); pages1=$(tcp_mem_pages); slab1=$(slab_kib); held=$(established "$port")
    rss_gc=$rss1
    if [[ $name == node ]]; then
        kill -USR2 "$server"; sleep 5; rss_gc=$(rss_kib "$server")
    fi
    kill "$holder" 2>/dev/null || true
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    echo "$name $held $rss0 $rss1 $rss_gc $pages0 $pages1 $slab0 $slab1"
}

echo "pong-memory: N=$N held requests each, settle ${SETTLE}s, $(nproc) cores, node $(node --version)"
throng_line=$(measure throng 18282 127.0.0.2 "$throng" pong --listen 127.0.0.1:18282)
sleep 3 # let the first run's sockets go before the second starts
node_line=$(measure node 18283 127.0.0.3 node --expose-gc bench/node/httpserver.js 18283)

python3 - "$throng_line" "$node_line" <<'PY'
import sys
rows = {}
for line in sys.argv[1:]:
    name, held, rss0, rss1, rss_gc, pages0, pages1, slab0, slab1 = line.split()
    held = int(held)
    rows[name] = dict(held=held,
                      before=int(rss0) * 1024, slope=(int(rss1) - int(rss0)) * 1024 / held,
                      slope_gc=(int(rss_gc) - int(rss0)) * 1024 / held,
                      queued=(int(pages1) - int(pages0)) * 4096 / held,
                      slab=(int(slab1) - int(slab0)) * 1024 / held)
print(f"{'server':8} {'held':>6} {'RSS before':>11} {'user B/req':>11} {'after GC':>9} "
      f"{'kernel slab B/conn pair':>24} {'queued B/conn pair':>19}")
for name, r in rows.items():
    print(f"{name:8} {r['held']:>6} {r['before'] / 2**20:>9.1f}Mi {r['slope']:>11.0f} {r['slope_gc']:>9.0f} "
          f"{r['slab']:>24.0f} {r['queued']:>19.0f}")
t, n = rows["throng"], rows["node"]
print(f"summary: throng pong {t['slope']:.0f} B per held request, node {n['slope']:.0f} B "
      f"({n['slope_gc']:.0f} B after GC): node/throng = {n['slope'] / t['slope']:.1f}x "
      f"({n['slope_gc'] / t['slope']:.1f}x after GC), N={t['held']}/{n['held']}")
PY
