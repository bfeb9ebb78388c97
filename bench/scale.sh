#!/bin/sh
# The story's scale on this machine: a scenario of many concurrent end-to-end TLS connections
# (scenarios/100k.toml by default) run with throng proxy, then the same with HAProxy (Debian's,
# as many processes of as many threads, sharing the port), generator and backends on the box.
# Each run's folder and summary go to $OUT; the summaries give peak connections, memory per
# connection of each component and of the kernel, handshakes per second and errors.
#
#   bench/scale.sh                                   # 100k, throng then HAProxy (~15 min)
#   SCENARIO=scenarios/500k.toml PROXIES=throng bench/scale.sh
set -eu
cd "$(dirname "$0")/.."
SCENARIO=${SCENARIO:-scenarios/100k.toml}
PROXIES=${PROXIES:-"throng haproxy"}
OUT=${OUT:-target/scale}
mkdir -p "$OUT"
cargo build --release --quiet
name=$(basename "$SCENARIO" .toml)
for proxy in $PROXIES; do
    file="$OUT/$name-$proxy.toml"
    sed "s/^\[proxy\]\$/[proxy]\nkind = \"$proxy\"/" "$SCENARIO" > "$file"
    rm -rf "$OUT/$name-$proxy"
    echo "== $name with $proxy"
    target/release/throng scenario "$file" --dir "$OUT/$name-$proxy" | tee "$OUT/$name-$proxy.txt"
done
