#!/usr/bin/env bash
# The whole test suite on this machine, set up first: the Debian packages the tests use are
# installed when missing (the one list of them, which .ci/run uses too), throng's own Debian
# package is built (packaging/deb.sh, for the package's test; it installs cargo-deb when
# missing), then every test binary runs to its end (`--no-fail-fast`), and one line sums them
# up: passed, failed, ignored, and
# skipped (a test that could not find a peer built beside the project says so; see
# crates/throng/tests/common/mod.rs, `skip`). Exits non-zero when a test failed or a package
# could not be installed (naming it and what needs it).
# Usage: ./test.sh [cargo test arguments, e.g. -p throng-proxy]
set -euo pipefail
cd "$(dirname "$0")"

# What the tests need: the command that shows it is there | the package | what uses it.
needs=(
    "curl|curl|the tests' HTTP client and the README's quickstart"
    "h2load|nghttp2-client|the HTTP/2 tests (h2load and nghttp as clients)"
    "/usr/lib/python3/dist-packages/h2/__init__.py|python3-h2|the HTTP/2 flood tests (tests/h2_adversary.py: hyperframe and hpack)"
    "openssl|openssl|the proxy's tests (s_client as a TLS client)"
    "/usr/sbin/nginx|nginx-light|the attack's tests (nginx over HTTP and TLS)"
    "/usr/sbin/mosquitto|mosquitto|the MQTT tests and the proxy in front of brokers"
    "mosquitto_sub|mosquitto-clients|the MQTT tests"
    "ip|iproute2|the tests that make hosts of network namespaces"
    "pdsh|pdsh|the distributed test (its parts start through pdsh)"
    "/usr/bin/chromium|chromium|throng plot's test (its page in a real browser)"
    "runuser|util-linux|the admin socket's test (another user refused)"
    "man|man-db|the package's test (man throng-attack)"
    "adduser|adduser|the package's test (its postinst makes the throng user)"
    "/usr/sbin/slurmctld|slurm-wlm|the Slurm test (a one-node cluster: slurmctld, slurmd, srun)"
    "/usr/sbin/munged|munge|the Slurm test (its authentication)"
    "envsubst|gettext-base|the Kubernetes manifest's test"
    "python3|python3|the Kubernetes manifest's test (kubernetes-validate, below)"
)
missing=() uses=()
for need in "${needs[@]}"; do
    IFS='|' read -r command package use <<< "$need"
    if [[ $command == /* ]]; then [ -e "$command" ] && continue; else command -v "$command" >/dev/null 2>&1 && continue; fi
    missing+=("$package")
    uses+=("$package: $use")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing what the tests need: ${missing[*]}" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }; then
        echo "test.sh: cannot install ${missing[*]} (run as root on Debian, or install them yourself); they are for:" >&2
        printf '  %s\n' "${uses[@]}" >&2
        exit 2
    fi
fi

# kubernetes-validate (PyPI: Kubernetes' schemas) for the Kubernetes manifest's test, in a
# virtual environment of the project's own, as Debian's Python takes no system-wide pip install.
venv=target/python
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    mkdir -p target
    if ! python3 -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }; then
            echo "test.sh: cannot make a Python virtual environment (python3-venv): the Kubernetes manifest's test needs one" >&2
            exit 2
        fi
    fi
    if ! "$venv/bin/pip" install -q kubernetes-validate; then
        echo "test.sh: cannot install kubernetes-validate from PyPI into $venv: the Kubernetes manifest's test needs it" >&2
        exit 2
    fi
fi

# httpwg-cli (a crate: RFC 9113's conformance cases, h2spec's successor) for the HTTP/2
# conformance test, built into target/tools at a fixed version.
httpwg=target/tools/bin/httpwg
if [ ! -x "$httpwg" ]; then
    if ! cargo install -q --locked --root target/tools httpwg-cli --version 0.2.5; then
        echo "test.sh: cannot install httpwg-cli from crates.io into target/tools: the HTTP/2 conformance test needs it" >&2
        exit 2
    fi
fi
THRONG_TEST_HTTPWG=$(realpath "$httpwg")
export THRONG_TEST_HTTPWG

# The Debian package, built from these sources for the package's test (tests/package.rs); a
# dev build, as the tests are (packaging/deb.sh with no argument makes the release package).
if ! deb=$(packaging/deb.sh dev | tail -1) || [ ! -f "$deb" ]; then
    echo "test.sh: cannot build the package (packaging/deb.sh dev; it installs cargo-deb when missing): the package's test needs it" >&2
    exit 2
fi
THRONG_TEST_DEB=$(realpath "$deb")
export THRONG_TEST_DEB

skipped=target/test-skipped
rm -rf "$skipped"
mkdir -p "$skipped"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
THRONG_TEST_SKIPPED="$PWD/$skipped" cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
skips=$(find "$skipped" -type f | wc -l)
awk -v skips="$skips" '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
    END { printf "tests: %d passed, %d failed, %d ignored, %d skipped\n", passed - skips, failed, ignored, skips }' "$log"
for file in "$skipped"/*; do
    [ -f "$file" ] && echo "skipped: $(basename "$file"): $(cat "$file")"
done
exit "$status"
