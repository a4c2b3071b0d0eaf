#!/usr/bin/env bash
# Captures real VRRP adverts from Debian's keepalived (2.2.7 when these files
# were made) for vrlb's golden-packet tests. Run as root from any directory;
# writes <name>.hex next to this script: one line "SRC DST HEXBYTES" per
# advert, the IP addresses and the VRRP message (IP payload).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ns=vrlbgold$$
work=$(mktemp -d)
cleanup() {
  ip netns pids "$ns-a" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns-a" 2>/dev/null || true
  ip netns del "$ns-b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns-a"; ip netns add "$ns-b"
ip link add va netns "$ns-a" type veth peer name vb netns "$ns-b"
for n in a b; do
  ip -n "$ns-$n" link set lo up; ip -n "$ns-$n" link set "v$n" up
done
ip -n "$ns-a" addr add 192.0.2.1/24 dev va
ip -n "$ns-b" addr add 192.0.2.2/24 dev vb
ip -n "$ns-a" addr add 2001:db8::1/64 dev va nodad

capture() { # name, keepalived instance body, tcpdump filter
  local name=$1 body=$2 filter=$3
  cat > "$work/$name.conf" <<CONF
global_defs { router_id golden }
vrrp_instance G {
$body
}
CONF
  ip netns exec "$ns-b" timeout 8 tcpdump -i vb -c 3 -w "$work/$name.pcap" "$filter" 2>/dev/null &
  local dump=$!
  sleep 0.5
  ip netns exec "$ns-a" keepalived -P -n -l -f "$work/$name.conf" -p "$work/$name.pid" -r "$work/$name.vpid" >/dev/null 2>&1 &
  local ka=$!
  wait $dump || true
  kill -9 $ka 2>/dev/null || true
  wait $ka 2>/dev/null || true
  ip netns pids "$ns-a" | xargs -r kill -9 2>/dev/null || true
  sleep 0.3
  python3 - "$work/$name.pcap" > "$here/$name.hex" <<'PY'
import sys, struct
data = open(sys.argv[1], 'rb').read()
magic = struct.unpack('<I', data[:4])[0]
endian = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
off = 24
import ipaddress
while off + 16 <= len(data):
    _, _, incl, _ = struct.unpack(endian + 'IIII', data[off:off+16]); off += 16
    frame = data[off:off+incl]; off += incl
    eth = struct.unpack('!H', frame[12:14])[0]
    if eth == 0x0800:
        ihl = (frame[14] & 0xf) * 4
        total = struct.unpack('!H', frame[16:18])[0]
        ip = frame[14:14+total]
        src, dst = ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
        payload = ip[ihl:]
    elif eth == 0x86dd:
        plen = struct.unpack('!H', frame[18:20])[0]
        src, dst = ipaddress.ip_address(frame[22:38]), ipaddress.ip_address(frame[38:54])
        payload = frame[54:54+plen]
    else:
        continue
    print(src, dst, payload.hex())
PY
  echo "$name: $(wc -l < "$here/$name.hex") adverts"
}

capture v2-pass "  state MASTER
  interface va
  virtual_router_id 51
  priority 150
  advert_int 1
  authentication { auth_type PASS
    auth_pass 1111 }
  virtual_ipaddress {
    192.0.2.240
    192.0.2.241
  }" "ip proto 112"

capture v3-ipv4 "  state MASTER
  version 3
  interface va
  virtual_router_id 52
  priority 200
  advert_int 0.5
  virtual_ipaddress { 192.0.2.250 }" "ip proto 112"

capture v3-ipv6 "  state MASTER
  version 3
  interface va
  virtual_router_id 53
  priority 120
  advert_int 1
  virtual_ipaddress {
    2001:db8::240
    2001:db8::241
  }" "ip6 proto 112"

# keepalived 2.2.7 predates `v3_checksum_as_v2` (it rejects the keyword), so
# that form is covered by vrlb's own round-trip tests, not a capture.
