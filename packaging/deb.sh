#!/usr/bin/env bash
# Builds throng's Debian package with cargo-deb: the binary, then from it a man page per
# subcommand and the shell completions (so they are the binary's own), then the .deb in
# target/debian/ (its path is the last line printed). What goes where is in
# crates/throng/Cargo.toml, [package.metadata.deb].
# Usage: packaging/deb.sh [PROFILE]   (release by default; the tests package a dev build)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
case $profile in dev) dir=debug ;; *) dir=$profile ;; esac

if ! cargo deb --version >/dev/null 2>&1; then
    echo "deb.sh: installing cargo-deb" >&2
    cargo install cargo-deb --locked
fi
cargo build --profile "$profile" -p throng --bin throng
bin=target/$dir/throng
out=target/package
rm -rf "$out"
mkdir -p "$out/completions"
"$bin" manpages "$out/man"
gzip -9n "$out"/man/*.1
"$bin" completions bash > "$out/completions/throng.bash"
"$bin" completions zsh > "$out/completions/_throng"
"$bin" completions fish > "$out/completions/throng.fish"
cargo deb -p throng --no-build --profile "$profile" --no-strip -q | tail -1
