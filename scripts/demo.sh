#!/usr/bin/env bash
# The tapemu demo, self-contained: installs what it needs, builds, creates a lab in network
# namespaces (a Linux bridge with dnsmasq and a LAN host, reached through the kernel's
# vxlan), runs `tapemu run` on a TUN in the "phone" namespace, shows the lease, pings the
# LAN host and back, moves TCP both ways with iperf3, stops tapemu (DHCPRELEASE) and tears
# everything down. Needs root. Usage: scripts/demo.sh [vxlan|tap|udp|tcp2|tcp4]
set -euo pipefail
cd "$(dirname "$0")/.."
LINK=${1:-vxlan}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces and a TUN)" >&2; exit 1; }

need=()
for pkg_bin in dnsmasq-base:dnsmasq iproute2:ip iputils-ping:ping iperf3:iperf3 ethtool:ethtool; do
    command -v "${pkg_bin##*:}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pkg_bin##*:}" ] || need+=("${pkg_bin%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null || { echo "demo: cargo (Rust) is needed to build tapemu" >&2; exit 1; }

echo "== building"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p tapemu-cli -p tapemu-tests --bins
TAPEMU="$CARGO_TARGET_DIR/release/tapemu"
export LAB_L2PEER="$CARGO_TARGET_DIR/release/l2peer"

# shellcheck source=scripts/lab.sh
source scripts/lab.sh
TAPEMU_PID=""
cleanup() {
    [ -n "$TAPEMU_PID" ] && kill "$TAPEMU_PID" 2>/dev/null || true
    lab_down
}
trap cleanup EXIT
echo "== lab: bridge br0 + dnsmasq + LAN host 192.0.2.10 in namespaces, link $LINK"
lab_up "$LINK"
P=(ip netns exec "$LAB_PHONE")
H=(ip netns exec "$LAB_HOST")

echo "== tapemu run --link $LAB_LINK_URL   (in namespace $LAB_PHONE)"
"${P[@]}" "$TAPEMU" run --link "$LAB_LINK_URL" --hostname demo-phone --pcap "$LAB_DIR/tapemu.pcap" \
    >"$LAB_DIR/tapemu.out" 2>"$LAB_DIR/tapemu.err" &
TAPEMU_PID=$!
[ "$LINK" = tap ] && lab_enslave_to_phone_bridge tap0
_lab_wait_ready 30 "$TAPEMU_PID" "$LAB_DIR/tapemu.err" " lease " "the lease"
grep " lease " "$LAB_DIR/tapemu.err"
ADDR=$("${P[@]}" ip -4 -o addr show dev tapemu0 | awk '{print $4}' | cut -d/ -f1)
echo "== the TUN in the phone namespace"
"${P[@]}" ip addr show dev tapemu0
"${P[@]}" ip route show dev tapemu0
echo "== dnsmasq's lease file"
cat "$LAB_LEASES"

echo "== ping the LAN host from the phone, and the phone from the LAN host (it ARPs for us)"
"${P[@]}" ping -n -c 3 -i 0.2 192.0.2.10
"${H[@]}" ping -n -c 3 -i 0.2 "$ADDR"
"${H[@]}" ip neigh show "$ADDR"

echo "== TCP: iperf3 phone -> host and host -> phone, 3 s each"
"${H[@]}" iperf3 -s -D -1 -I "$LAB_DIR/iperf3-1.pid"
_lab_wait 10 "iperf3 server" "${H[@]}" sh -c "ss -ltn | grep -q :5201"
"${P[@]}" iperf3 -c 192.0.2.10 -t 3 -f m | tail -4
"${H[@]}" iperf3 -s -D -1 -I "$LAB_DIR/iperf3-2.pid"
_lab_wait 10 "iperf3 server" "${H[@]}" sh -c "ss -ltn | grep -q :5201"
"${P[@]}" iperf3 -c 192.0.2.10 -t 3 -f m -R | tail -4

echo "== stopping tapemu (SIGINT): it releases the lease and removes its configuration"
kill -INT "$TAPEMU_PID"
wait "$TAPEMU_PID" || true
TAPEMU_PID=""
tail -3 "$LAB_DIR/tapemu.err"
grep DHCPRELEASE "$LAB_DNSMASQ_LOG" || { echo "demo: no DHCPRELEASE in dnsmasq's log" >&2; exit 1; }
echo "== frames captured: $(tcpdump -r "$LAB_DIR/tapemu.pcap" -nn 2>/dev/null | wc -l 2>/dev/null || echo '?') (pcap: $LAB_DIR/tapemu.pcap)"
echo "== done; tearing the lab down"
