#!/usr/bin/env bash
# End-to-end benchmark of tapemu over VXLAN in the namespace lab (scripts/lab.sh), in one
# run, printing a Markdown report (BENCHMARKS.md holds the last one):
#
#   TCP throughput (iperf3, 10 s, phone → host and host → phone) from the phone namespace
#   to the LAN host through
#     (a) the kernel's own vxlan device in phone: the ceiling;
#     (b) a kernel TAP in phone carried over the same VXLAN by tap-vxlan-relay, the
#         simplest user-space TAP<->VXLAN relay: the cost of user space;
#     (c) tapemu on a TUN: tapemu / (b) is the cost of the emulation alone;
#   time to lease; tapemu's RSS; tapemu's CPU time per direction; wake-ups (context
#   switches of all its threads) over an idle minute.
#
# Needs root. Usage: scripts/bench-e2e.sh [--seconds N] [--idle N] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=10 IDLE=60 OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--idle N] [--out FILE]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-e2e: needs root (network namespaces)" >&2; exit 1; }
for bin in iperf3 dnsmasq ethtool python3; do
    command -v "$bin" >/dev/null || { echo "bench-e2e: $bin is missing" >&2; exit 1; }
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p tapemu-cli -p tapemu-tests --bins
BIN="$CARGO_TARGET_DIR/release"
export LAB_L2PEER="$BIN/l2peer"

# shellcheck source=scripts/lab.sh
source scripts/lab.sh
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    lab_down
}
trap cleanup EXIT
lab_up vxlan >/dev/null
P=(ip netns exec "$LAB_PHONE")
H=(ip netns exec "$LAB_HOST")

"${H[@]}" iperf3 -s -D -I "$LAB_DIR/iperf3.pid" --logfile "$LAB_DIR/iperf3.log"
PIDS+=("$(cat "$LAB_DIR/iperf3.pid" 2>/dev/null || true)")
_lab_wait 10 "iperf3 server" "${H[@]}" sh -c "ss -ltn | grep -q :5201"

# iperf3 gbps SRC_IP [-R]: goodput in Gbit/s received, phone → host (or reversed).
gbps() {
    local src=$1
    shift
    "${P[@]}" iperf3 -c "$LAB_LAN_HOST" -B "$src" -t "$SECS" -J "$@" >"$LAB_DIR/iperf.json"
    python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9))' "$LAB_DIR/iperf.json"
}
# cpu_seconds PID: user+system CPU time of a process (all threads).
cpu_seconds() {
    python3 -c 'import os,sys; f=open("/proc/%s/stat"%sys.argv[1]).read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
ctx_switches() {
    cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'
}

# (a) the kernel's vxlan device in phone
"${P[@]}" ip link add kvx0 type vxlan id 42 local 198.51.100.2 remote 198.51.100.1 dstport 4789 dev up0
"${P[@]}" ip link set kvx0 mtu 1500 up
"${P[@]}" ip addr add 192.0.2.60/24 dev kvx0
_lab_wait 10 "kernel vxlan path" "${P[@]}" ping -c1 -W1 -I 192.0.2.60 "$LAB_LAN_HOST"
K_UP=$(gbps 192.0.2.60)
K_DOWN=$(gbps 192.0.2.60 -R)
"${P[@]}" ip link del kvx0

# (b) kernel TAP + tap-vxlan-relay in phone
"${P[@]}" "$BIN/tap-vxlan-relay" --tap rtap0 --remote 198.51.100.1:4789 --vni 42 --up \
    >"$LAB_DIR/relay.out" 2>"$LAB_DIR/relay.err" &
RELAY=$!
PIDS+=("$RELAY")
_lab_wait_ready 10 "$RELAY" "$LAB_DIR/relay.out" "^ready$" "tap-vxlan-relay"
"${P[@]}" ip link set rtap0 mtu 1500 up
"${P[@]}" ip addr add 192.0.2.61/24 dev rtap0
_lab_wait 10 "relay path" "${P[@]}" ping -c1 -W1 -I 192.0.2.61 "$LAB_LAN_HOST"
R_UP=$(gbps 192.0.2.61)
R_DOWN=$(gbps 192.0.2.61 -R)
kill "$RELAY"
wait "$RELAY" 2>/dev/null || true
"${P[@]}" ip link del rtap0 2>/dev/null || true

# (c) tapemu on a TUN
T0=$(date +%s%N)
"${P[@]}" "$BIN/tapemu" run --link "vxlan://198.51.100.1:4789?vni=42" --json --no-ipv6 \
    >"$LAB_DIR/tapemu.out" 2>"$LAB_DIR/tapemu.err" &
TAPEMU=$!
PIDS+=("$TAPEMU")
_lab_wait_ready 20 "$TAPEMU" "$LAB_DIR/tapemu.out" '"event":"lease"' "tapemu's lease"
T1=$(date +%s%N)
LEASE_MS=$(((T1 - T0) / 1000000))
ADDR=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    v=json.loads(l)
    if v["event"]=="lease": print(v["address"]); break' "$LAB_DIR/tapemu.out")
_lab_wait 10 "tapemu path" "${P[@]}" ping -c1 -W1 -I "$ADDR" "$LAB_LAN_HOST"
# The real process (ip netns exec execs it, so the pid is tapemu's).
RSS_IDLE=$(awk '/VmRSS/ {print $2}' /proc/$TAPEMU/status)
C0=$(cpu_seconds $TAPEMU)
T_UP=$(gbps "$ADDR")
C1=$(cpu_seconds $TAPEMU)
T_DOWN=$(gbps "$ADDR" -R)
C2=$(cpu_seconds $TAPEMU)
RSS_PEAK=$(awk '/VmHWM/ {print $2}' /proc/$TAPEMU/status)
S0=$(ctx_switches $TAPEMU)
sleep "$IDLE"
S1=$(ctx_switches $TAPEMU)
WAKE_PER_MIN=$(python3 -c "print(round(($S1-$S0)*60/$IDLE))")
kill -INT "$TAPEMU"
wait "$TAPEMU" || true

ratio() { python3 -c "print('%.2f' % ($1/$2))"; }
cpu_pct() { python3 -c "print('%.0f' % (100*($2-$1)/$SECS))"; }
REPORT=$(cat <<MD
| path (phone → LAN host, iperf3 TCP, ${SECS} s) | phone → host Gbit/s | host → phone Gbit/s |
|---|---|---|
| (a) kernel vxlan device in phone (ceiling) | $K_UP | $K_DOWN |
| (b) kernel TAP + tap-vxlan-relay (user-space baseline) | $R_UP | $R_DOWN |
| (c) tapemu on a TUN, vxlan link | $T_UP | $T_DOWN |
| tapemu / (b) | $(ratio "$T_UP" "$R_UP") | $(ratio "$T_DOWN" "$R_DOWN") |
| tapemu / (a) | $(ratio "$T_UP" "$K_UP") | $(ratio "$T_DOWN" "$K_DOWN") |

| tapemu | value |
|---|---|
| time to lease (process start → lease printed, incl. 1 s RFC 5227 probe) | ${LEASE_MS} ms |
| RSS after the lease / peak during iperf3 | $((RSS_IDLE / 1024)) MiB / $((RSS_PEAK / 1024)) MiB |
| CPU while sending / receiving (one core = 100 %) | $(cpu_pct "$C0" "$C1") % / $(cpu_pct "$C1" "$C2") % |
| wake-ups while idle (context switches, all threads, over ${IDLE} s) | ${WAKE_PER_MIN} per minute |

Machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d).
MD
)
echo "$REPORT"
if [ -n "$OUT" ]; then echo "$REPORT" >"$OUT"; fi
