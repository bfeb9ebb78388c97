#!/bin/sh
# The 100,000-connection scale run across hosts (bench/distributed-100k.toml): six network
# namespaces on one bridge stand for six machines, four client hosts (10.79.0.31-34), the proxy
# host (10.79.0.10) and the backend host (10.79.0.20). `throng scenario` runs on the proxy host
# and starts pong on the backend host and the attack's parts on the client hosts through
# `ip netns exec`; each host's monitor samples its own sockets. At the end, `throng report` over
# the four parts gives the per-host figures and the start skew.
#
#   bench/distributed.sh                 # about 7 minutes; needs root and iproute2
#   OUT=/tmp/x bench/distributed.sh
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-target/distributed}
SCENARIO=${SCENARIO:-bench/distributed-100k.toml}
PREFIX=throng-scale
cargo build --release --quiet
throng=$PWD/target/release/throng

hosts="c1:31 c2:32 c3:33 c4:34 proxy:10 backend:20"
teardown() {
    for entry in $hosts; do ip netns delete "$PREFIX-${entry%%:*}" 2>/dev/null || true; done
    ip netns delete "$PREFIX-sw" 2>/dev/null || true
}
teardown
trap teardown EXIT
ip netns add "$PREFIX-sw"
ip -n "$PREFIX-sw" link add br0 type bridge
ip -n "$PREFIX-sw" link set br0 up
for entry in $hosts; do
    host=${entry%%:*}
    ns="$PREFIX-$host"
    ip netns add "$ns"
    ip link add "ts-$host" type veth peer name "ts-$host-sw"
    ip link set "ts-$host" netns "$ns"
    ip link set "ts-$host-sw" netns "$PREFIX-sw"
    ip -n "$PREFIX-sw" link set "ts-$host-sw" master br0 up
    ip -n "$ns" addr add "10.79.0.${entry##*:}/24" dev "ts-$host"
    ip -n "$ns" link set "ts-$host" up
    ip -n "$ns" link set lo up
    # connect() takes even ports of the range: the default gives ~14,000 to one destination,
    # and each client host opens 26,250 to the proxy's one address and port.
    ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
done

rm -rf "$OUT"
mkdir -p "$OUT"
ip netns exec "$PREFIX-proxy" "$throng" scenario "$SCENARIO" --dir "$OUT/run" | tee "$OUT/summary.txt"
echo "== the ramp's four parts, one per client host"
"$throng" report "$OUT"/run/01-*.c?.bin | tee "$OUT/parts.txt"
