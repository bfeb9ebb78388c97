# What the benchmarks that run throng proxy beside HAProxy share (sourced, not run):
# `source bench/proxies.sh` from the repository's root, after `set -euo pipefail`. Needs `$work`
# (a scratch folder) before proxy_pids and certificate are used.

# HAProxy from Debian's packages, and throng's release build as $throng.
command -v haproxy >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy
}
cargo build --release -q -p throng
throng=$PWD/target/release/throng

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS > deadline)) && { echo "timed out: $*" >&2; return 1; }; sleep 0.2; done
}
# The proxy's processes: every generation's, old and new binaries, master and workers.
proxy_pids() {
    case $1 in
    throng) pgrep -f "proxy -c $work/throng.toml" || true ;;
    # A reloaded master starts its new worker as `haproxy -sf OLD -x sockpair@N -W ...`.
    haproxy) pgrep -f "haproxy .*-f $work/haproxy.cfg" || true ;;
    esac
}
# Summed over PIDS: a /proc/PID/status field (VmRSS in KiB, Threads).
status_sum() { # status_sum FIELD PIDS...
    local field=$1 total=0; shift
    for pid in "$@"; do total=$((total + $(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0))); done
    echo $total
}
threads_of() { status_sum Threads "$@"; }
rss_kib_of() { status_sum VmRSS "$@"; }
# An ECDSA P-256 certificate for localhost in $work: cert.pem, key.pem, and both in combined.pem
# (HAProxy's crt).
certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
    cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"
}
