#!/usr/bin/env bash
# The core's feature profiles (issue 9): every profile builds alone, with
# no logging back end, with defmt, and all together; log and defmt refuse
# to build together; the embassy-time conversions pass their test; the
# firmware driver (vrlb-fw) builds on the VRRP-only core.
set -euo pipefail
cd "$(dirname "$0")/.."

check() { # features ("" for none); a warning fails too
  echo "-- cargo check -p vrlb-core --no-default-features --features '$1'"
  local out
  out=$(cargo check -q -p vrlb-core --no-default-features --features "$1" 2>&1) || {
    printf '%s\n' "$out" >&2
    exit 1
  }
  if grep -q '^warning' <<<"$out"; then
    printf '%s\n' "$out" >&2
    exit 1
  fi
}

check ""
for profile in vrrp lb check config sync; do
  check "$profile"
done
for profile in vrrp lb check config sync; do
  check "$profile,defmt"
done
check "vrrp,lb,sync,check,config,defmt"
check "vrrp,defmt,embassy-time"
check "vrrp,log"
check "lb,sync,log"
check "check,config"

echo "-- log and defmt together must not build"
if out=$(cargo check -q -p vrlb-core --no-default-features --features vrrp,log,defmt 2>&1); then
  echo "vrlb-core built with both log and defmt" >&2
  exit 1
fi
grep -q "features \`log\` and \`defmt\` are mutually exclusive" <<<"$out" || {
  printf 'log+defmt failed for another reason:\n%s\n' "$out" >&2
  exit 1
}

echo "-- embassy-time conversions"
cargo test -q -p vrlb-core --no-default-features --features vrrp,embassy-time --test embassy_time

# The firmware driver alone: vrlb-core with only `vrrp` and `log` (in a
# workspace build, Cargo unifies it with the daemon's full core).
echo "-- vrlb-fw on the VRRP-only core"
fw=(-p vrlb-linux --no-default-features --features firmware --bin vrlb-fw)
core_features=$(cargo tree -e features -i vrlb-core "${fw[@]::5}" --prefix none |
  sed -n 's/^vrlb-core feature "\([a-z-]*\)".*/\1/p' | sort -u | tr '\n' ' ')
if [ "$core_features" != "log vrrp " ]; then
  echo "vrlb-fw's core has features: $core_features (want: log vrrp)" >&2
  exit 1
fi
cargo clippy -q "${fw[@]}" -- -D warnings
cargo build -q --release "${fw[@]}"
