#!/usr/bin/env bash
# End-to-end benchmark of tapemu over VXLAN in the namespace lab (scripts/lab.sh), in one
# run, printing a Markdown report (BENCHMARKS.md records its runs):
#
#   TCP throughput (iperf3, 10 s, phone → host and host → phone) from the phone namespace
#   to the LAN host through
#     (a) the kernel's own vxlan device in phone: the ceiling;
#     (b) a kernel TAP in phone carried over the same VXLAN by tap-vxlan-relay, the
#         simplest user-space TAP<->VXLAN relay: the cost of user space;
#     (c) tapemu on a TUN with segmentation offloads (IFF_VNET_HDR, TSO/USO, GRO);
#     (d) tapemu on a plain TUN (--no-offload): the path of an Android VpnService fd;
#   tapemu / (a) per direction; tapemu's CPU seconds per GB moved; UDP (iperf3 -u,
#   1400-byte datagrams) through (a) and (c) at the highest rate found with < 1 % loss
#   (bisection, 3 s per try: noisy on a busy machine), with iperf3's default socket
#   buffers and again with 4 MiB ones (-w 4M: the receiver's buffer, not the path, limits
#   the first when datagrams arrive in bursts); time to
#   lease; tapemu's RSS; wake-ups (context switches of all its threads) over an idle
#   minute.
#
# With --perf FILE, tapemu (c) runs under `perf record -g` during the phone → host
# transfer and the report's top entries go to FILE.
#
# Needs root. Usage: scripts/bench-e2e.sh [--seconds N] [--idle N] [--out FILE] [--perf FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=10 IDLE=60 OUT="" PERF=""
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --perf) PERF=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--idle N] [--out FILE] [--perf FILE]" >&2; exit 2 ;;
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

# Its own namespace names, so a demo running at the same time does not collide.
export LAB_NAME="${LAB_NAME:-tpbench}"
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

# iperf3 gbps SRC_IP [-R]: goodput in Gbit/s received, phone → host (or reversed); the
# bytes received go to $LAB_DIR/bytes.
gbps() {
    local src=$1
    shift
    "${P[@]}" iperf3 -c "$LAB_LAN_HOST" -B "$src" -t "$SECS" -J "$@" >"$LAB_DIR/iperf.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["end"]["sum_received"]; open(sys.argv[2],"w").write("%d" % r["bytes"]); print("%.2f" % (r["bits_per_second"]/1e9))' "$LAB_DIR/iperf.json" "$LAB_DIR/bytes"
}
# udp_loss SRC_IP RATE [-R]: loss in percent of 1400-byte UDP datagrams at RATE (3 s).
udp_loss() {
    local src=$1 rate=$2
    shift 2
    "${P[@]}" iperf3 -c "$LAB_LAN_HOST" -B "$src" -u -l 1400 -b "$rate" -t 3 -J "$@" >"$LAB_DIR/udp.json"
    python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["end"]["sum"]["lost_percent"])' "$LAB_DIR/udp.json"
}
# udp_rate SRC_IP [-R]: the highest rate (Mbit/s, to 5 %) with < 1 % loss, by bisection
# between 50 Mbit/s and 8 Gbit/s.
udp_rate() {
    local src=$1 lo=50 hi=8000 mid loss
    shift
    while python3 -c "import sys; sys.exit(0 if $hi > $lo * 1.05 else 1)"; do
        mid=$(python3 -c "print(int(($lo * $hi) ** 0.5))")
        loss=$(udp_loss "$src" "${mid}M" "$@")
        if python3 -c "import sys; sys.exit(0 if $loss < 1 else 1)"; then lo=$mid; else hi=$mid; fi
    done
    echo "$lo"
}
# cpu_seconds PID: user+system CPU time of a process (all threads).
cpu_seconds() {
    python3 -c 'import os,sys; f=open("/proc/%s/stat"%sys.argv[1]).read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
# per_gb CPU0 CPU1: CPU seconds per GB (1e9 bytes) of the last transfer.
per_gb() {
    python3 -c "print('%.2f' % (($2 - $1) / ($(cat "$LAB_DIR/bytes") / 1e9)))"
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
KU_UP=$(udp_rate 192.0.2.60)
KU_DOWN=$(udp_rate 192.0.2.60 -R)
KW_UP=$(udp_rate 192.0.2.60 -w 4M)
KW_DOWN=$(udp_rate 192.0.2.60 -R -w 4M)
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

# start_tapemu ARGS...: tapemu run in phone; sets TAPEMU (pid) and ADDR (its lease).
start_tapemu() {
    "${P[@]}" "$BIN/tapemu" run --link "vxlan://198.51.100.1:4789?vni=42" --json --no-ipv6 \
        --no-lease-file "$@" \
        >"$LAB_DIR/tapemu.out" 2>"$LAB_DIR/tapemu.err" &
    TAPEMU=$!
    PIDS+=("$TAPEMU")
    _lab_wait_ready 20 "$TAPEMU" "$LAB_DIR/tapemu.out" '"event":"lease"' "tapemu's lease"
    ADDR=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    v=json.loads(l)
    if v["event"]=="lease": print(v["address"]); break' "$LAB_DIR/tapemu.out")
    _lab_wait 10 "tapemu path" "${P[@]}" ping -c1 -W1 -I "$ADDR" "$LAB_LAN_HOST"
}
stop_tapemu() {
    kill -INT "$TAPEMU"
    wait "$TAPEMU" || true
}

# (c) tapemu on a TUN with offloads
T0=$(date +%s%N)
start_tapemu
T1=$(date +%s%N)
LEASE_MS=$(((T1 - T0) / 1000000))
OFFLOADS=$(grep -o 'offloads [A-Za-z]*' "$LAB_DIR/tapemu.err" | head -1 || true)
# The real process (ip netns exec execs it, so the pid is tapemu's).
RSS_IDLE=$(awk '/VmRSS/ {print $2}' /proc/$TAPEMU/status)
if [ -n "$PERF" ]; then
    perf record -g -o "$LAB_DIR/perf.data" -p "$TAPEMU" >/dev/null 2>&1 &
    PERF_PID=$!
fi
C0=$(cpu_seconds $TAPEMU)
T_UP=$(gbps "$ADDR")
C1=$(cpu_seconds $TAPEMU)
T_UP_GB=$(per_gb "$C0" "$C1")
if [ -n "$PERF" ]; then
    kill -INT "$PERF_PID"
    wait "$PERF_PID" || true
    perf report -i "$LAB_DIR/perf.data" --no-children --percent-limit 1 --stdio \
        >"$PERF" 2>/dev/null || true
    cp "$LAB_DIR/perf.data" "$PERF.data" 2>/dev/null || true
fi
C1=$(cpu_seconds $TAPEMU)
T_DOWN=$(gbps "$ADDR" -R)
C2=$(cpu_seconds $TAPEMU)
T_DOWN_GB=$(per_gb "$C1" "$C2")
U_UP=$(udp_rate "$ADDR")
U_DOWN=$(udp_rate "$ADDR" -R)
UW_UP=$(udp_rate "$ADDR" -w 4M)
UW_DOWN=$(udp_rate "$ADDR" -R -w 4M)
RSS_PEAK=$(awk '/VmHWM/ {print $2}' /proc/$TAPEMU/status)
S0=$(ctx_switches $TAPEMU)
sleep "$IDLE"
S1=$(ctx_switches $TAPEMU)
WAKE_PER_MIN=$(python3 -c "print(round(($S1-$S0)*60/$IDLE))")
stop_tapemu

# (d) tapemu on a plain TUN (the Android path)
start_tapemu --no-offload
C0=$(cpu_seconds $TAPEMU)
N_UP=$(gbps "$ADDR")
C1=$(cpu_seconds $TAPEMU)
N_UP_GB=$(per_gb "$C0" "$C1")
N_DOWN=$(gbps "$ADDR" -R)
C2=$(cpu_seconds $TAPEMU)
N_DOWN_GB=$(per_gb "$C1" "$C2")
stop_tapemu

ratio() { python3 -c "print('%.2f' % ($1/$2))"; }
REPORT=$(cat <<MD
| path (phone ↔ LAN host, iperf3 TCP, ${SECS} s) | phone → host Gbit/s | host → phone Gbit/s | tapemu CPU s/GB (→ / ←) |
|---|---|---|---|
| (a) kernel vxlan device in phone (ceiling) | $K_UP | $K_DOWN | |
| (b) kernel TAP + tap-vxlan-relay (user-space baseline) | $R_UP | $R_DOWN | |
| (c) tapemu, TUN with offloads ($OFFLOADS) | $T_UP | $T_DOWN | $T_UP_GB / $T_DOWN_GB |
| (d) tapemu, plain TUN (--no-offload, the Android path) | $N_UP | $N_DOWN | $N_UP_GB / $N_DOWN_GB |
| (c) / (a) | **$(ratio "$T_UP" "$K_UP")** | **$(ratio "$T_DOWN" "$K_DOWN")** | |
| (d) / (a) | $(ratio "$N_UP" "$K_UP") | $(ratio "$N_DOWN" "$K_DOWN") | |
| (c) / (b) | $(ratio "$T_UP" "$R_UP") | $(ratio "$T_DOWN" "$R_DOWN") | |
| UDP, iperf3 -u -l 1400, highest rate with < 1 % loss: (a) kernel vxlan | ${KU_UP} Mbit/s | ${KU_DOWN} Mbit/s | |
| UDP, iperf3 -u -l 1400, highest rate with < 1 % loss: (c) tapemu | ${U_UP} Mbit/s | ${U_DOWN} Mbit/s | |
| the same with 4 MiB socket buffers (-w 4M): (a) kernel vxlan | ${KW_UP} Mbit/s | ${KW_DOWN} Mbit/s | |
| the same with 4 MiB socket buffers (-w 4M): (c) tapemu | ${UW_UP} Mbit/s | ${UW_DOWN} Mbit/s | |

| tapemu (c) | value |
|---|---|
| time to lease (process start → lease printed, incl. 1 s RFC 5227 probe) | ${LEASE_MS} ms |
| RSS after the lease / peak during iperf3 | $((RSS_IDLE / 1024)) MiB / $((RSS_PEAK / 1024)) MiB |
| wake-ups while idle (context switches, all threads, over ${IDLE} s) | ${WAKE_PER_MIN} per minute |

Machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d\ %H:%M) UTC.
MD
)
echo "$REPORT"
if [ -n "$OUT" ]; then echo "$REPORT" >"$OUT"; fi
