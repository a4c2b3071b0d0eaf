#!/usr/bin/env bash
# Prints the firmware footprint figures of issue 9 as the tables of
# BENCHMARKS.md's "Firmware footprint" section (paste them there): RAM of a
# node per profile (core/tests/footprint.rs, which also checks each
# storage runs its case), bytes per slot, and the text size of the no_std
# link-check binary (ci/nostd-check) per profile. Fails if the VRRP-only
# profile exceeds 2 KiB of RAM or 32 KiB of text.
set -euo pipefail
cd "$(dirname "$0")/.."

figures() { # cargo test flags...
  cargo test -q -p vrlb-core "$@" --test footprint -- --nocapture --test-threads 1 |
    sed -n 's/^\.*figure //p'
}
vrrp_figures=$(figures --no-default-features --features vrrp)
full_figures=$(figures --no-default-features --features vrrp,lb,sync,check,config)
# The firmware driver's whole board (core node, smoltcp, buffers).
board_figures=$(cargo test -q -p vrlb-linux --no-default-features --features firmware --lib \
  firmware::tests::eight_vips -- --nocapture | sed -n 's/^\.*figure //p')
field() { # figures, "kind name" -> value
  awk -v k="$2" '$1" "$2==k {print $3}' <<<"$1"
}
detail() { # figures, "kind name" -> the breakdown after the value
  awk -v k="$2" '$1" "$2==k {$1=$2=$3=""; sub(/^ +/, ""); print}' <<<"$1"
}

# Text: every `.text*` output section (with defmt's linker script each
# function keeps its own section; otherwise they are all in `.text`).
text() { # features
  local env=()
  # Compile every defmt log call in (defmt keeps only `error` by default).
  [[ $1 == *defmt* ]] && env=(DEFMT_LOG=trace)
  (cd ci/nostd-check &&
    env "${env[@]}" cargo build --release --quiet --no-default-features --features "$1" &&
    size -A target/release/vrlb-nostd-check | awk '$1 ~ /^\.text/ {s += $2} END {print s}')
}
kib() { awk -v b="$1" 'BEGIN {printf "%.1f KiB", b / 1024}'; }

vrrp_text=$(text vrrp)
vrrp_defmt_text=$(text vrrp,defmt)
full_text=$(text full)
full_defmt_text=$(text full,defmt)
vrrp_ram=$(field "$vrrp_figures" "ram vrrp")
seed_ram=$(field "$full_figures" "ram seed")

met=yes
if ((vrrp_ram > 2048 || vrrp_text > 32768 || vrrp_defmt_text > 32768)); then met=no; fi

cat <<EOF
| profile | RAM | text | goal | met |
|---|---|---|---|---|
| VRRP only (\`vrrp\`), 1 instance, 8 VIPs | $vrrp_ram bytes ($(detail "$vrrp_figures" "ram vrrp")) | $vrrp_text bytes ($(kib "$vrrp_text")) | <= 2 KiB RAM, <= 32 KiB text | $met |
| VRRP only with defmt (\`vrrp,defmt\`, every log call in) | $vrrp_ram bytes | $vrrp_defmt_text bytes ($(kib "$vrrp_defmt_text")) | <= 2 KiB RAM, <= 32 KiB text | $met |
| vrlb-fw's whole board (VRRP only, smoltcp interface and raw socket, 8 VIPs) | $(field "$board_figures" "ram board") bytes ($(detail "$board_figures" "ram board")) | (a Linux binary) | - | - |
| seed (\`vrrp,lb,sync,check,config\`): 1 virtual server, 2 real servers with a TCP_CHECK each, 1024 connections | $seed_ram bytes ($(kib "$seed_ram"): $(detail "$full_figures" "ram seed")) | $full_text bytes ($(kib "$full_text")) | - | - |
| seed with defmt (\`full,defmt\`) | $seed_ram bytes | $full_defmt_text bytes ($(kib "$full_defmt_text")) | - | - |

| slot (seed profile) | bytes |
|---|---|
| connection (a persistence template takes one too) | $(field "$full_figures" "slot connection") ($(field "$full_figures" "slot connection-with-index") with its share of the hash index and timer wheel) |
| balancer service | $(field "$full_figures" "slot balancer-service") |
| balancer real server | $(field "$full_figures" "slot balancer-server") |
| node real server | $(field "$full_figures" "slot node-server") |
| checker | $(field "$full_figures" "slot checker") |
| VRRP instance, 8 VIPs / 64 VIPs inline (\`DefaultVips\`; the Linux daemon sizes each list from its configuration) | $(detail "$vrrp_figures" "ram vrrp" | sed 's/.*instance slot \([0-9]*\).*/\1/') / $(field "$vrrp_figures" "slot instance-64-vips") |
| connection sync (not in the seed figure: the seed has no lvs_sync_daemon) | $(field "$full_figures" "slot sync") |
EOF

if [ "$met" != yes ]; then
  echo "VRRP-only profile over its budget (2 KiB RAM, 32 KiB text)" >&2
  exit 1
fi
