#!/usr/bin/env bash
# MQTT generators side by side on one mosquitto (Debian's): memory per idle connection held by
# the generator (plain and TLS), and CPU per 1,000 messages with achieved vs offered rate.
#   - idle: IDLE_N connections opened at 2,000/s and held (`conn`: keep-alive 60 s; `sub`:
#     keep-alive 10 s, so pings run while it is measured, and a subscription each); the generator's
#     RSS less its RSS with IDLE_BASE connections, over the difference: the slope, which leaves
#     out what a run takes once (its per-second histograms). throng `mqtt conn` and emqtt_bench
#     `conn` (from ../shared/peers/bin, needs erlang-nox: its rows stay empty without it).
#   - publish: 100 publishers at RATE messages/s over the run, QoS 1, 64-byte payloads, one
#     subscriber in the same run for throng (emqtt_bench's pub has none); CPU seconds of the
#     generator (getrusage) per 1,000 messages sent, and the rate achieved.
#   - proxy: memory per idle MQTT-over-TLS connection in throng proxy (mode mqtt) and HAProxy
#     (mode tcp, ssl), 2 threads each, mosquitto behind: N clients (throng mqtt conn -S) held
#     through each, the proxy's RSS less its RSS with 10, over N-10.
# Usage: bench/mqtt.sh   (IDLE_BASE=2000 IDLE_N=12000 N=5000 RATE=5000 SECONDS_EACH=10
#                         PARTS="idle publish proxy" EMQTT=no to leave emqtt_bench out)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-5000}
IDLE_BASE=${IDLE_BASE:-2000}
IDLE_N=${IDLE_N:-12000}
PARTS=${PARTS:-"idle publish proxy"}
RATE=${RATE:-5000}
SECONDS_EACH=${SECONDS_EACH:-10}
out=$PWD/bench/out/mqtt
mkdir -p "$out"
cargo build --release -q -p throng
throng=$PWD/target/release/throng
emqtt=""
if [ "${EMQTT:-yes}" = no ]; then
    echo "EMQTT=no: emqtt_bench's rows left out"
elif [ -x ../shared/peers/bin/emqtt_bench ] && command -v erl >/dev/null; then
    emqtt=$(cd ../shared/peers/bin && pwd)/emqtt_bench
else
    echo "no emqtt_bench (or no erlang-nox): its rows stay empty"
fi

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
# ECDSA P-256, as throng's own: with RSA 2048 one core of mosquitto signs too slowly for a
# 2,000/s TLS ramp, and connections still waiting would pass for memory saved.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
# mosquitto started as root drops to its own user, which must read the key.
chmod 644 "$out/key.pem"
cat >"$out/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
max_queued_messages 1000000
listener 18831 127.0.0.1
listener 18832 127.0.0.1
certfile $out/cert.pem
keyfile $out/key.pem
CONF
taskset -c 1 /usr/sbin/mosquitto -c "$out/mosquitto.conf" >"$out/mosquitto.log" 2>&1 &
pids+=($!)
sleep 1

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# hold COUNT COMMAND...: starts COMMAND, waits for the ramp (and SETTLE seconds, 4 by default),
# prints the median of 5 RSS samples a second apart in KB (one sample moves by megabytes: the
# per-second figures come and go) and how many connections to $port were established then,
# stops it.
hold() {
    local count=$1; shift
    "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep $((count / 2000 + ${SETTLE:-4}))
    local rss
    rss=$(for _ in 1 2 3 4 5; do rss_kb "$pid"; sleep 1; done | sort -n | sed -n 3p)
    echo "$rss $(ss -Htn state established "( dport = :$port )" | wc -l)"
    kill -INT "$pid" 2>/dev/null; sleep 0.5; kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

if [[ $PARTS == *idle* ]]; then
echo "== idle connections held by the generator ($IDLE_BASE and $IDLE_N)"
echo "   conn: keep-alive 60 s; sub: keep-alive 10 s (pings running at the samples), a subscription each"
printf '%-22s %-6s %12s %12s %8s %8s %14s\n' client tls rss_base_kb rss_n_kb held_b held_n bytes_per_conn
# The slope over the connections really held at the samples.
row() {
    local name=$1 tls=$2 one=$3 held_one=$4 many=$5 held_many=$6
    printf '%-22s %-6s %12s %12s %8s %8s %14.0f\n' "$name" "$tls" "$one" "$many" "$held_one" "$held_many" \
        "$(python3 -c "print(($many - $one) * 1024 / max(1, $held_many - $held_one))")"
}
# 15 s after the ramp: past jemalloc's 10 s decay of the pages the handshakes freed.
SETTLE=15
for tls in plain tls; do
    port=18831; flags=()
    [ "$tls" = tls ] && { port=18832; flags=(-S --insecure); }
    for role in conn sub; do
        args=(-k 60); [ "$role" = sub ] && args=(-k 10 -t 'idle/%i' -q 1)
        read -r one held_one < <(hold "$IDLE_BASE" "$throng" mqtt $role -p $port -c "$IDLE_BASE" -R 2000 "${args[@]}" "${flags[@]}" --threads 1 --quiet)
        read -r many held_many < <(hold "$IDLE_N" "$throng" mqtt $role -p $port -c "$IDLE_N" -R 2000 "${args[@]}" "${flags[@]}" --threads 1 --quiet)
        row "throng mqtt $role" $tls "$one" "$held_one" "$many" "$held_many"
        if [ -n "$emqtt" ]; then
            eflags=(); [ "$tls" = tls ] && eflags=(-S)
            read -r one held_one < <(hold "$IDLE_BASE" "$emqtt" $role -p $port -c "$IDLE_BASE" -R 2000 "${args[@]}" "${eflags[@]}")
            read -r many held_many < <(hold "$IDLE_N" "$emqtt" $role -p $port -c "$IDLE_N" -R 2000 "${args[@]}" "${eflags[@]}")
            row "emqtt_bench $role" $tls "$one" "$held_one" "$many" "$held_many"
        fi
    done
done

fi

if [[ $PARTS == *publish* ]]; then
echo "== publishing: 100 publishers, $RATE messages/s, QoS 1, 64 B, ${SECONDS_EACH}s"
printf '%-22s %10s %10s %16s\n' client sent rate_per_s cpu_s_per_1000
python3 bench/cpu.py taskset -c 0 "$throng" mqtt pub -p 18831 -c 100 -R 2000 --rate "$RATE/1s" -q 1 -s 64 \
    -t 'b/%i' --subscribers 1 --duration "${SECONDS_EACH}s" --drain 1s --threads 1 --json --quiet \
    >"$out/throng-pub.json" 2>"$out/throng-pub.cpu"
sent=$(python3 -c "import json; print(json.load(open('$out/throng-pub.json'))['publish']['sent'])")
cpu=$(grep -o 'cpu=[0-9.]*' "$out/throng-pub.cpu" | cut -d= -f2)
printf '%-22s %10s %10.0f %16.3f\n' "throng mqtt pub" "$sent" "$(python3 -c "print($sent / $SECONDS_EACH)")" \
    "$(python3 -c "print($cpu / $sent * 1000)")"
python3 -c "
import json; r = json.load(open('$out/throng-pub.json'))
e = r['receive']['e2e']; print('  throng: received %d of %d, lost %d; end to end p50 %.2f ms p99 %.2f ms' % (
    r['receive']['unique'], r['receive']['expected'], r['receive']['lost'], e['50th'] / 1e6, e['99th'] / 1e6))"
if [ -n "$emqtt" ]; then
    # emqtt_bench paces each publisher by -I ms: 100 publishers at RATE/s in all.
    interval=$(python3 -c "print(max(1, round(100 * 1000 / $RATE)))")
    # It runs until stopped: SIGTERM after the same time (and its own ramp); its children's CPU
    # is counted by cpu.py all the same.
    python3 bench/cpu.py timeout -s TERM "$((SECONDS_EACH + 2))" taskset -c 0 "$emqtt" pub -p 18831 -c 100 \
        -R 2000 -I "$interval" -q 1 -s 64 -t 'b/%i' >"$out/emqtt-pub.txt" 2>"$out/emqtt-pub.cpu" || true
    sent=$(grep -o 'pub total=[0-9]*' "$out/emqtt-pub.txt" | tail -1 | cut -d= -f2)
    cpu=$(grep -o 'cpu=[0-9.]*' "$out/emqtt-pub.cpu" | cut -d= -f2)
    rate=$(grep -o 'pub total=[0-9]* rate=[0-9.]*' "$out/emqtt-pub.txt" | tail -1 | sed 's/.*rate=//')
    printf '%-22s %10s %10s %16s\n' "emqtt_bench pub" "${sent:-?}" "${rate:-?}" \
        "$(python3 -c "print('%.3f' % (${cpu:-0} / max(1, ${sent:-0}) * 1000))")"
fi
fi

if [[ $PARTS == *proxy* ]]; then
echo "== the proxy's memory per idle MQTT-over-TLS connection (N=$N, 2 threads, mosquitto behind)"
cat "$out/cert.pem" "$out/key.pem" >"$out/combined.pem"
cat >"$out/throng-proxy.toml" <<CONF
[global]
threads = 2
log = "off"
[defaults]
mode = "mqtt"
[frontends.mqtt]
bind = ["127.0.0.1:18841"]
default_backend = "brokers"
tls = { certificates = [{ cert = "$out/cert.pem", key = "$out/key.pem" }] }
[backends.brokers]
servers = [{ name = "m1", address = "127.0.0.1:18831" }]
CONF
cat >"$out/haproxy.cfg" <<CONF
global
    maxconn 9000
    nbthread 2
defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend mqtt
    bind 127.0.0.1:18842 ssl crt $out/combined.pem
    default_backend brokers
backend brokers
    server m1 127.0.0.1:18831
CONF
established_at() { ss -Htn state established "( sport = :$1 )" | wc -l; }
# held PROXY_PID PORT COUNT: the proxy's RSS (KB) with COUNT clients held through it.
held() {
    "$throng" mqtt conn -p "$2" -c "$3" -R 2000 -k 60 -S --insecure --threads 1 --quiet >/dev/null 2>&1 &
    local client=$!
    for _ in $(seq 300); do [ "$(established_at "$2")" -ge "$3" ] && break; sleep 0.1; done
    sleep 2
    rss_kb "$1"
    kill -INT "$client" 2>/dev/null; sleep 1; kill -9 "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    sleep 1
}
printf '%-22s %12s %12s %14s\n' proxy rss_10_kb rss_n_kb bytes_per_conn
"$throng" proxy -c "$out/throng-proxy.toml" >"$out/throng-proxy.log" 2>&1 &
proxy=$!; pids+=($proxy); sleep 1
one=$(held $proxy 18841 10); many=$(held $proxy 18841 "$N")
printf '%-22s %12s %12s %14.0f\n' "throng proxy (mqtt)" "$one" "$many" "$(python3 -c "print(($many - $one) * 1024 / ($N - 10))")"
kill $proxy
haproxy -f "$out/haproxy.cfg" -db >"$out/haproxy.log" 2>&1 &
proxy=$!; pids+=($proxy); sleep 1
one=$(held $proxy 18842 10); many=$(held $proxy 18842 "$N")
printf '%-22s %12s %12s %14.0f\n' "HAProxy 2.6 (tcp, ssl)" "$one" "$many" "$(python3 -c "print(($many - $one) * 1024 / ($N - 10))")"
fi
