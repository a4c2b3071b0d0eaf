#!/usr/bin/env bash
# Prints the firmware footprint figures of issue 9 (recorded in
# BENCHMARKS.md): RAM of a node per profile, bytes per slot, and the text
# size of the no_std link-check binary per profile. Fails if the VRRP-only
# node exceeds its 2 KiB RAM budget or its text exceeds 32 KiB.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== RAM, VRRP-only profile (vrrp)"
cargo test -q -p vrlb-core --no-default-features --features vrrp --test footprint -- --nocapture | grep -v -e '^$' -e '^running' -e '^test result' -e '^\.$'
echo "== RAM, full profile (the seed's: vrrp, lb, sync, check, config)"
cargo test -q -p vrlb-core --test footprint -- --nocapture | grep -v -e '^$' -e '^running' -e '^test result' -e '^\.$'
cd ci/nostd-check
for profile in vrrp-only full; do
  if [ "$profile" = full ]; then flags=""; else flags="--no-default-features --features vrrp-only"; fi
  cargo build --release --quiet $flags
  text=$(size -A target/release/vrlb-nostd-check | awk '$1==".text"{print $2}')
  echo "== text, $profile no_std binary: $text bytes"
  if [ "$profile" = vrrp-only ] && [ "$text" -gt 32768 ]; then
    echo "over the 32 KiB budget" >&2
    exit 1
  fi
done
